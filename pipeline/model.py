"""The trained artefact: one object the metrics stage, the registry and the server all call.

`GovernedModel` wraps a fitted scikit-learn Pipeline (preprocessing + estimator), or a fairlearn
mitigator around one, behind a small, stable surface:

    model.input_columns                 # features, then sensitive inputs a mitigator needs
    model.score(X) -> P(positive)       # deterministic, shape (n,)
    model.predict_proba(X) -> (n, 2)    # columns [negative, positive]
    model.predict(X, threshold=0.5)     # 0/1 labels; 1 is `positive_label`

Mitigators' own `predict` is randomised; `score` uses their expected positive rate (fairlearn's
`_pmf_predict`) instead, so the same input always gets the same answer.

Saved with pickle (protocol 5): it is the MLflow sklearn flavour's own format, so the registry
logs this object as it is and `mlflow.sklearn.load_model` gives it back. Pickle runs code on load,
so only a file whose sha256 matches the governance report and the registry tag is ever loaded.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

PICKLE_PROTOCOL = 5
# Rows scored at once. 2**15 rows × ~110 one-hot float64 columns ≈ 29 MB per batch, about what
# the CPU cache can help with: scoring 2**20 Adult rows (hgb + ThresholdOptimizer, one thread)
# took 20.8 µs a row in 2**18-row batches, 12.3 at 2**17, 9.4-9.6 at 2**16 and 2**15, 11.3 at
# 2**14 (same scores to the bit). Larger batches made the metrics stage grow faster than its rows.
SCORE_ROWS = 2**15


class GovernedModel:
    def __init__(self, *, fitted: Any, kind: str, features: list[str],
                 sensitive_inputs: list[str], positive_label: str, negative_label: str,
                 model_name: str, mitigation: str, dataset: str,
                 categories: dict[str, list[str]]) -> None:
        self.fitted = fitted
        self.kind = kind  # "plain" | "reduction" | "postprocessing"
        self.features = list(features)
        self.sensitive_inputs = list(sensitive_inputs)
        self.positive_label = positive_label
        self.negative_label = negative_label
        self.model_name = model_name
        self.mitigation = mitigation
        self.dataset = dataset
        self.categories = categories  # allowed values of categorical inputs
        self.classes_ = np.array([0, 1])

    @property
    def input_columns(self) -> list[str]:
        return [*self.features, *[c for c in self.sensitive_inputs if c not in self.features]]

    def _check(self, X: pd.DataFrame) -> None:
        missing = [c for c in self.input_columns if c not in X.columns]
        if missing:
            raise ValueError(f"input is missing column(s) {missing}")

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """P(positive label) for each row, scored SCORE_ROWS rows at a time: every estimator
        here scores rows independently, and the preprocessed (one-hot) matrix of millions of
        rows at once would not fit in memory."""
        self._check(X)
        if len(X) <= SCORE_ROWS:
            return self._score(X)
        return np.concatenate([self._score(X.iloc[i:i + SCORE_ROWS])
                               for i in range(0, len(X), SCORE_ROWS)])

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        if self.kind == "plain":
            return self.fitted.predict_proba(X[self.features])[:, 1]
        if self.kind == "reduction":
            return self.fitted._pmf_predict(X[self.features])[:, 1]
        sens = X[self.sensitive_inputs[0]].astype(str)
        return self.fitted._pmf_predict(X[self.features], sensitive_features=sens)[:, 1]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.score(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        return (self.score(X) >= threshold).astype(np.int64)


def as_text(column: pd.Series) -> pd.Series:
    """A free-text feature as strings, missing as "" (the text encoders refuse NaN). Lives here,
    in the one module shipped with the pickle, because the fitted pipeline refers to it."""
    import pandas as pd

    return pd.Series(column).fillna("").astype(str)


def save(model: GovernedModel, path: Path) -> None:
    with path.open("wb") as fh:
        pickle.dump(model, fh, protocol=PICKLE_PROTOCOL)


def load(path: Path, expected_sha256: str | None = None) -> GovernedModel:
    """Load a model artefact, refusing one whose hash differs from the expected one."""
    # Imported here, not at the top: register ships this file alone with the pickle (MLflow's
    # code_paths), so at import time it may need nothing else from pipeline.
    from pipeline.runtime.hashing import file_sha256

    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise ValueError(f"{path}: sha256 differs from the expected {expected_sha256[:12]}…")
    with path.open("rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - see module docstring
    if not isinstance(model, GovernedModel):
        raise ValueError(f"{path}: not a GovernedModel artefact ({type(model).__name__})")
    return model
