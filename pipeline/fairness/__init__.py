"""Group fairness metrics: pure functions over 0/1 labels, 0/1 predictions and sensitive groups.

Modules, in the order data flows through them:

* `groups`     — per-group counts and rates (`group_stats`, via fairlearn's MetricFrame), group
                 exclusion (min_count / min_share), intersectional groups (`intersection`).
* `disparity`  — between-group metrics from those stats: statistical parity difference,
                 disparate impact ratio, equal opportunity difference, equalized odds difference,
                 reference/lowest group and per-group impact ratios. Differences are max - min,
                 ratios min / max; None means undefined and must fail closed.
* `registry`   — the built-in metrics by name and `resolve_metric` for plug-ins via `_target_`.
* `bootstrap`  — percentile-bootstrap intervals (vectorised with np.bincount).
* `report`     — `fairness_report`, the JSON-ready report the metrics and governance stages use.

The positive (favourable) label is always 1: callers encode labels first; any value other than
0/1 raises ValueError.
"""

from pipeline.fairness.bootstrap import BootstrapResult, Interval, bootstrap_intervals
from pipeline.fairness.disparity import (
    disparate_impact_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    impact_ratios,
    lowest_group,
    reference_group,
    statistical_parity_difference,
)
from pipeline.fairness.groups import GroupStats, encode_groups, group_stats, intersection
from pipeline.fairness.registry import (
    DISPARITY_METRICS,
    MetricSpecError,
    evaluate_metric,
    resolve_metric,
    resolve_metrics,
)
from pipeline.fairness.report import fairness_report

__all__ = [
    "DISPARITY_METRICS",
    "BootstrapResult",
    "GroupStats",
    "Interval",
    "MetricSpecError",
    "bootstrap_intervals",
    "disparate_impact_ratio",
    "encode_groups",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "evaluate_metric",
    "fairness_report",
    "group_stats",
    "impact_ratios",
    "intersection",
    "lowest_group",
    "reference_group",
    "resolve_metric",
    "resolve_metrics",
    "statistical_parity_difference",
]
