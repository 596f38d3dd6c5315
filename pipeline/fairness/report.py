"""The fairness report: every breakdown's group table, disparity metrics and intervals, as JSON.

The report is deterministic for given inputs and seed: groups are in category order, floats are
rounded to 6 decimals, undefined values are None (``null``), and it holds only str, int, float,
bool, None, lists and dicts, so ``json.dumps(report, allow_nan=False)`` always works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.fairness._inputs import check_labels, check_thresholds
from pipeline.fairness.bootstrap import GROUP_RATES, Interval, bootstrap_intervals
from pipeline.fairness.catalog import (
    DISPARITY_METRICS,
    MetricSpec,
    evaluate_metric,
    resolve_metrics,
)
from pipeline.fairness.disparity import lowest_group, metric_impact_ratios, reference_group
from pipeline.fairness.groups import group_stats, intersection
from pipeline.fairness.names import SHORT
from pipeline.runtime.outputs import rounded as _r

SCHEMA_VERSION = 1
CONVENTION = (
    "differences are max - min over eligible groups (>= 0, 0 = parity); ratios are min / max "
    "(in [0, 1], 1 = parity); null = undefined (fewer than 2 eligible groups), fail closed"
)




def _ci(interval: Interval) -> dict:
    return {"low": _r(interval.low), "high": _r(interval.high), "n_valid": interval.n_valid}


def _breakdown(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: pd.Series,
    *,
    kind: str,
    columns: list[str],
    metrics: dict,
    n_boot: int,
    seed: int,
    alpha: float,
    min_count: int,
    min_share: float,
) -> dict:
    stats = group_stats(y_true, y_pred, groups, min_count=min_count, min_share=min_share)
    boot = bootstrap_intervals(
        y_true,
        y_pred,
        groups,
        n_boot=n_boot,
        seed=seed,
        alpha=alpha,
        min_count=min_count,
        min_share=min_share,
        metrics=list(metrics.items()),
        full_sample_stats=stats,
    )
    ratios = metric_impact_ratios(stats)
    rows = []
    for s in stats:
        rows.append(
            {
                "group": s.group,
                "count": s.count,
                "share": _r(s.share),
                "positives": s.positives,
                "negatives": s.negatives,
                "selected": s.selected,
                "true_positives": s.true_positives,
                "false_positives": s.false_positives,
                "selection_rate": _r(s.selection_rate),
                "tpr": _r(s.tpr),
                "fpr": _r(s.fpr),
                "impact_ratio": _r(ratios[s.group]),
                "excluded": s.excluded,
                "exclusion_reason": s.exclusion_reason,
                "ci": {rate: _ci(boot.groups[s.group][rate]) for rate in GROUP_RATES},
            }
        )
    return {
        "kind": kind,
        "columns": columns,
        "n_groups": len(stats),
        "eligible_groups": [s.group for s in stats if not s.excluded],
        "reference_group": reference_group(stats),
        "lowest_group": lowest_group(stats),
        "metrics": {
            name: {"value": _r(evaluate_metric(name, fn, stats)), "ci": _ci(boot.metrics[name])}
            for name, fn in metrics.items()
        },
        "groups": rows,
        "excluded_groups": [
            {"group": s.group, "count": s.count, "reason": s.exclusion_reason}
            for s in stats
            if s.excluded
        ],
    }


def fairness_report(
    y_true,
    y_pred,
    sensitive: pd.DataFrame,
    attributes: Sequence[str],
    *,
    intersections: Sequence[Sequence[str]],
    n_boot: int,
    seed: int,
    alpha: float,
    min_count: int,
    min_share: float,
    extra_metrics: Sequence[MetricSpec] = (),
) -> dict:
    """JSON-ready fairness report for each attribute and each intersection of attributes.

    `y_true`/`y_pred` are 0/1 (1 = positive label); `sensitive` holds one column per attribute,
    row-aligned with them (its index is ignored). Intersections are keyed ``"a*b"``. The four
    built-in metrics are always computed; `extra_metrics` adds plug-in metrics (see
    `registry.resolve_metric`). Every breakdown is bootstrapped with the same `seed`, so all
    breakdowns see the same resampled rows. Shape::

        {"schema_version": 1, "n": int, "convention": str,
         "settings": {"n_boot", "seed", "alpha", "min_count", "min_share", "metrics": [name]},
         "overall": {"count", "positives", "selected", "selection_rate", "tpr", "fpr"},
         "breakdowns": {key: {
             "kind": "attribute" | "intersection", "columns": [str], "n_groups": int,
             "eligible_groups": [str], "reference_group": str | None, "lowest_group": str | None,
             "metrics": {name: {"value": float | None, "ci": CI}},
             "groups": [{"group", "count", "share", "positives", "negatives", "selected",
                         "true_positives", "false_positives", "selection_rate", "tpr", "fpr",
                         "impact_ratio", "excluded", "exclusion_reason",
                         "ci": {"selection_rate": CI, "tpr": CI, "fpr": CI}}],
             "excluded_groups": [{"group", "count", "reason"}]}}}

    where ``CI = {"low": float | None, "high": float | None, "n_valid": int}``.
    """
    import pandas as pd

    yt, yp = check_labels(y_true, y_pred)
    check_thresholds(min_count, min_share)
    if not isinstance(sensitive, pd.DataFrame):
        raise ValueError(f"sensitive must be a pandas DataFrame, got {type(sensitive).__name__}")
    if len(sensitive) != len(yt):
        raise ValueError(f"sensitive has {len(sensitive)} rows but y_true has {len(yt)}")
    attributes = list(attributes)
    intersections = [list(cols) for cols in intersections]
    if not attributes and not intersections:
        raise ValueError("fairness_report needs at least one attribute or intersection")
    unknown = [
        c
        for c in dict.fromkeys([*attributes, *(c for cols in intersections for c in cols)])
        if c not in sensitive.columns
    ]
    if unknown:
        raise ValueError(
            f"sensitive attributes {unknown} not among columns {list(sensitive.columns)}"
        )
    for cols in intersections:
        if len(cols) < 2:
            raise ValueError(f"an intersection needs at least 2 attributes, got {cols}")

    metrics = resolve_metrics([*DISPARITY_METRICS, *extra_metrics])
    common = dict(
        metrics=metrics,
        n_boot=n_boot,
        seed=seed,
        alpha=alpha,
        min_count=min_count,
        min_share=min_share,
    )
    plan = [(attr, "attribute", [attr]) for attr in attributes]
    plan += [("*".join(map(str, cols)), "intersection", cols) for cols in intersections]
    keys = [key for key, _, _ in plan]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"breakdowns {repeated} are listed more than once")

    sensitive = sensitive.reset_index(drop=True)
    breakdowns: dict[str, dict] = {}
    for key, kind, cols in plan:
        groups = (
            sensitive[key].rename(key) if kind == "attribute" else intersection(sensitive, cols)
        )
        breakdowns[key] = _breakdown(yt, yp, groups, kind=kind, columns=cols, **common)

    positives = int(yt.sum())
    negatives = len(yt) - positives
    return {
        "schema_version": SCHEMA_VERSION,
        "n": len(yt),
        "convention": CONVENTION,
        "settings": {
            "n_boot": int(n_boot),
            "seed": int(seed),
            "alpha": _r(alpha),
            "min_count": int(min_count),
            "min_share": _r(min_share),
            "metrics": list(metrics),
        },
        "overall": {
            "count": len(yt),
            "positives": positives,
            "selected": int(yp.sum()),
            "selection_rate": _r(yp.mean()),
            "tpr": _r(yp[yt == 1].mean()) if positives else None,
            "fpr": _r(yp[yt == 0].mean()) if negatives else None,
        },
        "breakdowns": breakdowns,
    }


def summary(report: dict) -> dict:
    """The few numbers per breakdown that fit in a `dvc exp show` table (short metric keys)."""
    return {key: {SHORT.get(k, k): v["value"] for k, v in b["metrics"].items()}
            for key, b in report["breakdowns"].items()}
