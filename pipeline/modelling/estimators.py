"""Build the unfitted scikit-learn Pipeline (and fairlearn mitigator) from config."""

from __future__ import annotations

from typing import Any

from pipeline.config import DatasetSpec


def preprocessing(spec: DatasetSpec, features: list[str]):
    """One-hot categoricals (categories fixed by the spec, so columns never depend on the data
    seen) and impute + standardise numerics."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [f for f in features if spec.columns[f].type == "category"]
    nums = [f for f in features if spec.columns[f].type in ("int", "float")]
    other = [f for f in features if f not in cats and f not in nums]
    if other:
        raise ValueError(f"features of type string/date cannot be model inputs yet: {other}")
    return ColumnTransformer(
        [
            ("cat", OneHotEncoder(categories=[spec.columns[c].categories for c in cats],
                                  handle_unknown="ignore", sparse_output=False), cats),
            ("num", Pipeline([("impute", SimpleImputer(strategy="median")),
                              ("scale", StandardScaler())]), nums),
        ],
        verbose_feature_names_out=False,
    )


# Arguments the config does not choose. HGB's default early stopping would quietly hold out
# 10% of a training split over 10,000 rows; the model trains on the split it is given.
FIXED: dict[str, dict[str, Any]] = {"hgb": {"early_stopping": False}}


def estimator(model: Any, seed: int):
    """The spec's sklearn class with the spec's fields as arguments (pipeline.config.model)."""
    cls = model.sklearn_class()
    return cls(**model.sklearn_params(), **FIXED.get(model.name, {}), random_state=seed)


def pipeline(spec: DatasetSpec, features: list[str], model: Any, seed: int):
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", preprocessing(spec, features)), ("est", estimator(model, seed))])
