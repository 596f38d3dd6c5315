"""Feature and prediction drift of live records against the training data.

PSI (population stability index) = sum over bins of (live - ref) * ln(live / ref), on the
training data's bins: quantile edges of each numeric feature (``bins`` of them, duplicates
merged), one bin per declared category plus one for values outside them. Shares are floored
at EPS so an empty bin gives a large but finite figure. Numerics also get the two-sample
Kolmogorov-Smirnov statistic (scipy.stats.ks_2samp). Prediction drift is the PSI of the
predicted probability against the model's scores on the training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.runtime.outputs import rounded

EPS = 1e-4


def psi(ref_share: np.ndarray, live_share: np.ndarray) -> float:
    r, c = np.maximum(ref_share, EPS), np.maximum(live_share, EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_edges(ref: np.ndarray, bins: int) -> np.ndarray:
    qs = np.quantile(ref[~np.isnan(ref)], np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def _shares_numeric(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    values = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, values, side="right"),
                         minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _shares_category(values: Any, categories: list[str]) -> np.ndarray:
    import pandas as pd

    s = pd.Series(values, dtype="object").astype(str)
    counts = s.value_counts()
    known = [int(counts.get(c, 0)) for c in categories]
    other = len(s) - sum(known)
    return np.array([*known, other]) / max(len(s), 1)


class Baseline:
    """The training data's bins and samples, computed once for every window."""

    def __init__(self, reference: Any, columns: dict[str, str], bins: int,
                 ref_scores: np.ndarray | None) -> None:
        self.columns = columns  # feature -> spec type
        self.bins: dict[str, Any] = {}
        self.ref: dict[str, np.ndarray] = {}
        self.shares: dict[str, np.ndarray] = {}
        for c, kind in columns.items():
            if c not in reference.columns:
                continue
            if kind in ("int", "float"):
                v = reference[c].to_numpy(dtype="float64")
                self.bins[c] = numeric_edges(v, bins)
                self.ref[c] = v[~np.isnan(v)]
                self.shares[c] = _shares_numeric(v, self.bins[c])
            elif kind == "category":
                cats = [str(x) for x in reference[c].astype("category").cat.categories]
                self.bins[c] = cats
                self.shares[c] = _shares_category(reference[c], cats)
        self.scores = ref_scores
        if ref_scores is not None:
            self.score_edges = numeric_edges(ref_scores.astype("float64"), bins)
            self.score_shares = _shares_numeric(ref_scores.astype("float64"), self.score_edges)

    def features(self, live: Any) -> list[dict]:
        from scipy.stats import ks_2samp

        out = []
        for c, edges in self.bins.items():
            if c not in live.columns:
                continue
            if isinstance(edges, np.ndarray):
                v = live[c].to_numpy(dtype="float64")
                shares = _shares_numeric(v, edges)
                v = v[~np.isnan(v)]
                ks = ks_2samp(self.ref[c], v).statistic if len(v) else None
                out.append({"feature": c, "type": "numeric", "psi": rounded(psi(
                    self.shares[c], shares)), "ks": rounded(ks) if ks is not None else None,
                    "n": int(len(v))})
            else:
                shares = _shares_category(live[c], edges)
                out.append({"feature": c, "type": "category", "psi": rounded(psi(
                    self.shares[c], shares)), "ks": None, "n": int(len(live))})
        return out

    def prediction(self, probability: np.ndarray) -> dict | None:
        if self.scores is None:
            return None
        p = probability.astype("float64")
        return {"psi": rounded(psi(self.score_shares, _shares_numeric(p, self.score_edges))),
                "live_mean": rounded(float(p.mean())) if len(p) else None,
                "reference_mean": rounded(float(self.scores.mean()))}
