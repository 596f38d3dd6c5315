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


def estimator(model: Any, seed: int):
    if model.name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=model.C, max_iter=model.max_iter,
                                  class_weight=model.class_weight, random_state=seed)
    if model.name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            learning_rate=model.learning_rate, max_iter=model.max_iter,
            max_leaf_nodes=model.max_leaf_nodes, min_samples_leaf=model.min_samples_leaf,
            l2_regularization=model.l2_regularization, early_stopping=False, random_state=seed,
        )
    if model.name == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=model.n_estimators, max_depth=model.max_depth,
            min_samples_leaf=model.min_samples_leaf, max_features=model.max_features,
            n_jobs=model.n_jobs, random_state=seed,
        )
    raise ValueError(f"model.name: unknown model '{model.name}'")  # pydantic already refuses


def pipeline(spec: DatasetSpec, features: list[str], model: Any, seed: int):
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", preprocessing(spec, features)), ("est", estimator(model, seed))])
