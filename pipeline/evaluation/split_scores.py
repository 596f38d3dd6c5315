"""One model on one split: the figures the metrics stage reports, computed in one place so
that the register stage's re-scoring of a champion on a candidate's split (the promotion
policy's comparison) is the metrics stage's own evaluation, not a second implementation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluation.performance import performance
from pipeline.fairness.report import fairness_report


@dataclass(frozen=True)
class SplitScores:
    y: Any  # 1 = favourable label
    score: Any
    pred: Any
    performance: dict  # pipeline.evaluation.performance.performance
    fairness: dict  # pipeline.fairness.report.fairness_report


def score_split(model, df, spec, metrics, *, threshold: float, seed: int,
                n_boot: int) -> SplitScores:
    """`spec` the dataset section, `metrics` the metrics section; n_boot=0 skips the
    bootstrap intervals (point figures only)."""

    attributes = list(spec.sensitive)
    y = (df[spec.target.column] == spec.target.positive).to_numpy(dtype=np.int64)
    score = model.score(df)
    pred = (score >= threshold).astype(np.int64)
    report = fairness_report(
        y, pred, df[attributes], attributes, intersections=metrics.crossings(attributes),
        n_boot=n_boot, seed=seed, alpha=metrics.alpha, min_count=metrics.min_count,
        min_share=metrics.min_share, extra_metrics=metrics.extra_fairness_metrics,
    )
    return SplitScores(y, score, pred, performance(y, score, threshold), report)
