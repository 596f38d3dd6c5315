"""Build the unfitted scikit-learn Pipeline (and fairlearn mitigator) from config."""

from __future__ import annotations

from typing import Any

from pipeline.config import DatasetSpec
from pipeline.config.dataset import TextSpec
from pipeline.model import as_text


def text_encoder(column: str, text: TextSpec):
    """One free-text column -> `text.max_features` numbers (see `TextSpec`). Missing text is
    the empty string (`pipeline.model.as_text`, a function of the shipped model module)."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    ngrams = (1, text.ngram_max)
    vec = (TfidfVectorizer(max_features=text.max_features, ngram_range=ngrams)
           if text.encoder == "tfidf" else
           HashingVectorizer(n_features=text.max_features, ngram_range=ngrams,
                             alternate_sign=False))
    return Pipeline([("text", FunctionTransformer(as_text)), ("vec", vec)])


def preprocessing(spec: DatasetSpec, features: list[str]):
    """One-hot categoricals (categories fixed by the spec, so columns never depend on the data
    seen), impute + standardise numerics (booleans as 0/1), encode declared free text. The
    config refuses every other feature type before any work (DatasetSpec._check_features)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [f for f in features if spec.columns[f].type == "category"]
    nums = [f for f in features if spec.columns[f].type in ("int", "float", "bool")]
    texts = [f for f in features if spec.columns[f].text is not None]
    other = [f for f in features if f not in cats and f not in nums and f not in texts]
    if other:  # unreachable through a validated config; a guard for direct callers
        raise ValueError(f"features {other} have no encoder")
    steps = [
        ("cat", OneHotEncoder(categories=[spec.columns[c].categories for c in cats],
                              handle_unknown="ignore", sparse_output=False), cats),
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                          ("scale", StandardScaler())]), nums),
    ]
    # A scalar column name hands the vectoriser the 1-D column it expects.
    steps += [(f"text:{t}", text_encoder(t, spec.columns[t].text), t) for t in texts]
    # sparse_threshold=0: always dense, as HGB and the score blocks expect.
    return ColumnTransformer(steps, verbose_feature_names_out=False, sparse_threshold=0.0)


# Arguments the config does not choose. HGB's default early stopping would quietly hold out
# 10% of a training split over 10,000 rows; the model trains on the split it is given.
FIXED: dict[str, dict[str, Any]] = {"hgb": {"early_stopping": False}}


def estimator(model: Any, seed: int):
    """The spec's sklearn class with the spec's fields as arguments (pipeline.config.model)."""
    cls = model.sklearn_class()
    return cls(**model.sklearn_params(), **FIXED.get(model.name, {}), random_state=seed)


def encoded_width(spec: DatasetSpec, features: list[str]) -> int:
    """Columns of `preprocessing`'s output: one per category, numeric and text feature."""
    width = 0
    for f in features:
        col = spec.columns[f]
        width += (len(col.categories or []) if col.type == "category" else
                  col.text.max_features if col.text is not None else 1)
    return width


def pipeline(spec: DatasetSpec, features: list[str], model: Any, seed: int):
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", preprocessing(spec, features)), ("est", estimator(model, seed))])
