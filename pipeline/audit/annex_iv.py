"""A short map from the headings of the EU AI Act's Annex IV (technical documentation,
Regulation (EU) 2024/1689) to the model card sections that cover them, and the ones it does not.

A card is not the technical documentation: it covers what a model card can know, and says
which headings need documents from elsewhere rather than leaving that to be guessed.
"""

from __future__ import annotations

from pipeline.audit.document import Section, Table

# (Annex IV point, heading, card sections that cover it; empty: not covered by the card)
MAP = (
    ("1", "General description of the AI system (intended purpose, provider, version)",
     ("Model details", "Intended use")),
    ("2(b)", "Design specifications: general logic, key design choices, what the system is "
             "designed to optimise",
     ("Model details", "Metrics")),
    ("2(d)", "Data requirements: training data, its provenance, scope, characteristics, "
             "selection and cleaning",
     ("Training data", "Evaluation data")),
    ("2(e)", "Assessment of the human oversight measures needed (Article 14)", ()),
    ("2(g)", "Validation and testing: data used, metrics for accuracy and for potentially "
             "discriminatory impacts, test results",
     ("Metrics", "Evaluation data", "Quantitative analyses", "Bias audit (NYC Local Law 144)")),
    ("3", "Monitoring, functioning and control: capabilities and limitations, accuracy for "
          "specific persons or groups, foreseeable unintended outcomes, risks to fundamental "
          "rights and of discrimination, input data specifications",
     ("Quantitative analyses", "Ethical considerations", "Caveats and recommendations",
      "Model details")),
    ("4", "Appropriateness of the performance metrics", ("Metrics",)),
    ("5", "Risk management system (Article 9)", ()),
    ("6", "Changes made to the system through its lifecycle", ()),
    ("7", "Harmonised standards applied", ()),
    ("8", "EU declaration of conformity", ()),
    ("9", "Post-market monitoring plan (Article 72)", ()),
)


def section(titles: list[str]) -> Section:
    """The map, naming only sections the card has (`titles`)."""
    rows = []
    for point, heading, covered in MAP:
        have = [t for t in covered if t in titles]
        rows.append([point, heading, "; ".join(have) if have else
                     "not covered by this card: a document of the provider's"])
    return Section("EU AI Act Annex IV map").add(
        "Where this card gives what the technical documentation of Annex IV asks for. Points "
        "not listed (2(a), 2(c), 2(f), 2(h)) and the rows marked not covered need documents "
        "from elsewhere.",
        Table(["Annex IV point", "heading (abridged)", "card section"], rows))
