"""Percentile-bootstrap confidence intervals for group rates and disparity metrics.

Each replicate resamples the n rows with replacement (``numpy.random.default_rng(seed)``, one
``integers(0, n, n)`` draw per replicate, so results are deterministic for a given seed and
data), recomputes every group's confusion counts and rates (formulas in `groups`), and then
every disparity metric. The interval is the percentile interval::

    [q(alpha / 2), q(1 - alpha / 2)]   of the replicate values that are defined

A statistic undefined in a replicate (None/NaN — e.g. a group that drew no positives has no
TPR) is skipped, and the number of valid replicates is reported; the interval is None when
fewer than half of the replicates are valid.

Group exclusion is decided once, on the full sample, and kept fixed: a group excluded there
never enters a replicate's disparity computation, and a kept group stays kept even if a
replicate happens to draw it small.

Why not MetricFrame here: it rebuilds a pandas groupby, copies the columns and calls each metric
once per group, which costs a quarter of a second per call (4 metrics, 15,000 rows, 12 groups);
n_boot = 200 replicates would take close to a minute per breakdown. One ``np.bincount`` over
``group * 4 + y * 2 + ŷ`` yields a replicate's whole per-group confusion matrix in
microseconds (~35 ms for all 200 replicates). The tests check that these vectorised point
values equal MetricFrame's (`groups.group_stats`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.fairness._inputs import check_labels, check_thresholds
from pipeline.fairness.catalog import (
    DISPARITY_METRICS,
    MetricSpec,
    evaluate_metric,
    resolve_metrics,
)
from pipeline.fairness.groups import GroupStats, encode_groups, group_stats

GROUP_RATES = ("selection_rate", "tpr", "fpr")


@dataclass(frozen=True, slots=True)
class Interval:
    """A percentile interval; `low`/`high` are None when fewer than half the replicates are
    valid (or the bootstrap is off, ``n_boot == 0``)."""

    low: float | None
    high: float | None
    n_valid: int


@dataclass(frozen=True)
class BootstrapResult:
    n_boot: int
    seed: int
    alpha: float
    metrics: dict[str, Interval]
    """Disparity metric name -> interval."""
    groups: dict[str, dict[str, Interval]]
    """Group label -> {"selection_rate" | "tpr" | "fpr" -> interval}."""


def _rates(cm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counts and rates from `cm` (last three axes ``(group, y, ŷ)``); NaN where undefined."""
    count = cm.sum(axis=(-2, -1))
    positives = cm[..., 1, :].sum(axis=-1)
    negatives = cm[..., 0, :].sum(axis=-1)
    selected = cm[..., :, 1].sum(axis=-1)
    tp = cm[..., 1, 1]
    fp = cm[..., 0, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = np.where(count > 0, selected / count, np.nan)
        tpr = np.where(positives > 0, tp / positives, np.nan)
        fpr = np.where(negatives > 0, fp / negatives, np.nan)
    return count, positives, negatives, selected, tp, fp, sr, tpr, fpr


def stats_from_confusion(
    labels: Sequence[str], cm: np.ndarray, exclusion_reasons: Sequence[str | None]
) -> list[GroupStats]:
    """GroupStats from per-group confusion counts, with exclusion given (not recomputed)."""
    count, pos, neg, sel, tp, fp, sr, tpr, fpr = (a.tolist() for a in _rates(cm))
    n = sum(count)
    out = []
    for i, label in enumerate(labels):
        reason = exclusion_reasons[i]
        out.append(
            GroupStats(
                group=label,
                count=count[i],
                share=count[i] / n if n else 0.0,
                positives=pos[i],
                negatives=neg[i],
                selected=sel[i],
                true_positives=tp[i],
                false_positives=fp[i],
                selection_rate=None if sr[i] != sr[i] else sr[i],  # NaN -> None
                tpr=None if tpr[i] != tpr[i] else tpr[i],
                fpr=None if fpr[i] != fpr[i] else fpr[i],
                excluded=reason is not None,
                exclusion_reason=reason,
            )
        )
    return out


def replicate_indices(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The row indices of each bootstrap replicate: the one resampling stream, so the
    performance and the fairness intervals of a split (same n and seed) are drawn from the
    same replicates."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, size=n)


def percentile_interval(values: np.ndarray, n_boot: int, alpha: float) -> Interval:
    """The percentile interval of the defined (non-NaN) replicate values; None bounds when
    fewer than half the replicates are defined."""
    valid = values[~np.isnan(values)]
    n_valid = int(valid.size)
    if n_valid == 0 or 2 * n_valid < n_boot:
        return Interval(None, None, n_valid)
    low, high = np.quantile(valid, [alpha / 2, 1 - alpha / 2])
    return Interval(float(low), float(high), n_valid)


def bootstrap_intervals(
    y_true,
    y_pred,
    groups: pd.Series,
    *,
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
    min_count: int,
    min_share: float,
    metrics: Sequence[MetricSpec] = tuple(DISPARITY_METRICS),
    full_sample_stats: Sequence[GroupStats] | None = None,
) -> BootstrapResult:
    """Percentile-bootstrap intervals of each group's rates and of each disparity metric.

    `metrics` are specs as accepted by `registry.resolve_metric` (names, ``_target_`` dicts,
    callables, ``(name, fn)`` pairs). Exclusion is taken from `full_sample_stats` when given
    (must come from `group_stats` on the same inputs), else computed with `group_stats`.
    ``n_boot == 0`` turns the bootstrap off: every interval is ``Interval(None, None, 0)``.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be an int >= 0, got {n_boot!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    yt, yp = check_labels(y_true, y_pred)
    check_thresholds(min_count, min_share)
    resolved = resolve_metrics(metrics)
    labels, codes = encode_groups(groups)
    if len(codes) != len(yt):
        raise ValueError(f"groups has {len(codes)} rows but y_true has {len(yt)}")
    if full_sample_stats is None:
        full_sample_stats = group_stats(yt, yp, groups, min_count=min_count, min_share=min_share)
    if [s.group for s in full_sample_stats] != labels:
        raise ValueError("full_sample_stats do not match the groups of `groups`")
    reasons = [s.exclusion_reason for s in full_sample_stats]

    n, k = len(yt), len(labels)
    cell = codes * 4 + yt * 2 + yp  # as in confusion_by_group, hoisted out of the loop
    group_rates = np.full((n_boot, 3, k), np.nan)
    metric_values = np.full((n_boot, len(resolved)), np.nan)
    for b, idx in enumerate(replicate_indices(n, n_boot, seed)):
        cm = np.bincount(cell[idx], minlength=4 * k).reshape(k, 2, 2)
        group_rates[b] = _rates(cm)[-3:]
        stats = stats_from_confusion(labels, cm, reasons)
        for j, (name, fn) in enumerate(resolved.items()):
            value = evaluate_metric(name, fn, stats)
            if value is not None:
                metric_values[b, j] = value

    return BootstrapResult(
        n_boot=int(n_boot),
        seed=int(seed),
        alpha=float(alpha),
        metrics={
            name: percentile_interval(metric_values[:, j], n_boot, alpha)
            for j, name in enumerate(resolved)
        },
        groups={
            label: {
                rate: percentile_interval(group_rates[:, r, i], n_boot, alpha)
                for r, rate in enumerate(GROUP_RATES)
            }
            for i, label in enumerate(labels)
        },
    )
