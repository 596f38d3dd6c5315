"""Plain words for the model card: the favourable label, and what each rate means relative to it.

Every rate the pipeline reports counts decisions for the favourable label (the target's
`positive` value, encoded 1): a "selection" is the model giving that label. When the favourable
label is "0" or "no", or reads like a bad outcome, a bare "selection rate" or "FPR" is easy to
read backwards, so the card spells each one out with the label's own name and, where the
dataset spec gives them, the plain meanings (`data.target.favourable_means`,
`unfavourable_means`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Labels:
    column: str
    favourable: str
    unfavourable: str  # the other value(s), as one phrase
    favourable_means: str | None
    unfavourable_means: str | None

    @property
    def fav(self) -> str:
        """`"X"` (what X means), for use inside a sentence."""
        return f'"{self.favourable}"' + (f" ({self.favourable_means})"
                                         if self.favourable_means else "")

    @property
    def unfav(self) -> str:
        return self.unfavourable + (f" ({self.unfavourable_means})"
                                    if self.unfavourable_means else "")


def labels(spec) -> Labels:
    """The dataset spec's target, as the card words it."""
    t = spec.target
    col = spec.columns.get(t.column)
    others = [c for c in (getattr(col, "categories", None) or []) if str(c) != t.positive]
    unfav = (" / ".join(f'"{c}"' for c in others) if others
             else f'any value other than "{t.positive}"')
    return Labels(t.column, t.positive, unfav, getattr(t, "favourable_means", None),
                  getattr(t, "unfavourable_means", None))


def target_sentence(lab: Labels) -> str:
    return (f"Target: column '{lab.column}'. The favourable label is {lab.fav}; the model "
            f"scores the probability of it, and every rate on this card counts decisions for "
            f"it. The unfavourable label is {lab.unfav}.")


def glossary(lab: Labels, threshold: float) -> list[list[str]]:
    """(term, meaning) rows for the card's Metrics section."""
    f, u = f'"{lab.favourable}"', lab.unfavourable
    return [
        ["score (probability)", f"the model's estimated probability that the favourable label "
                                f"{lab.fav} applies"],
        ["decision", f"the favourable label {f} when the score is at least {threshold:g} "
                     f"(metrics.threshold), otherwise {u}"],
        ["selection rate", f"share of a group's people the model gives the favourable label "
                           f"{f}"],
        ["TPR (true positive rate)", f"among people whose true label is {f}, the share the "
                                     f"model gives {f}; 1 − TPR is the share wrongly denied it"],
        ["FPR (false positive rate)", f"among people whose true label is {u}, the share the "
                                      f"model gives {f} anyway"],
        ["impact ratio", "a group's selection rate ÷ the highest selection rate among the "
                         "groups compared (1 = that group fares as well as the best)"],
        ["scoring rate (LL 144)", "share of a group's people whose score is above the median "
                                  "score of everyone evaluated"],
        ["disparate impact ratio", "lowest ÷ highest selection rate over the eligible groups "
                                   "(1 = parity; the four-fifths rule asks ≥ 0.8)"],
        ["statistical parity difference", "highest − lowest selection rate (0 = parity)"],
        ["equal opportunity difference", "highest − lowest TPR (0 = parity)"],
        ["equalized odds difference", "the larger of the TPR gap and the FPR gap (0 = parity)"],
        ["accuracy / balanced accuracy", "share of decisions that match the true label / the "
                                         f"mean of TPR and the true negative rate (TNR: among "
                                         f"people whose true label is {u}, the share given it)"],
        ["precision", f"among people the model gives {f}, the share whose true label is {f}"],
        ["ROC AUC", f"probability that a random person with true label {f} scores higher than "
                    f"a random person with {u} (0.5 = chance)"],
        ["Brier score", "mean squared error of the score against the true label (0 = perfect)"],
    ]
