"""Group fairness metrics: pure functions over 0/1 labels, 0/1 predictions and sensitive groups.

Modules, in the order data flows through them:

* `groups`     — per-group counts and rates (`group_stats`, via fairlearn's MetricFrame), group
                 exclusion (min_count / min_share), intersectional groups (`intersection`).
* `disparity`  — between-group metrics from those stats: statistical parity difference,
                 disparate impact ratio, equal opportunity difference, equalized odds difference,
                 reference/lowest group and the report's per-group impact ratios (the formula is
                 `impact`, shared with the model card's audit). Differences are max - min,
                 ratios min / max; None means undefined and must fail closed.
* `registry`   — the built-in metrics by name and `resolve_metric` for plug-ins via `_target_`.
* `bootstrap`  — percentile-bootstrap intervals (vectorised with np.bincount).
* `report`     — `fairness_report`, the JSON-ready report the metrics and governance stages use.

The positive (favourable) label is always 1: callers encode labels first; any value other than
0/1 raises ValueError.
"""

# Lazy re-exports: config validation imports this package in every stage (see runtime.lazy).
from pipeline.runtime.lazy import lazy_exports

_EXPORTS = {
    "BootstrapResult": "pipeline.fairness.bootstrap",
    "Interval": "pipeline.fairness.bootstrap",
    "bootstrap_intervals": "pipeline.fairness.bootstrap",
    "disparate_impact_ratio": "pipeline.fairness.disparity",
    "equal_opportunity_difference": "pipeline.fairness.disparity",
    "equalized_odds_difference": "pipeline.fairness.disparity",
    "impact_ratios": "pipeline.fairness.impact",
    "metric_impact_ratios": "pipeline.fairness.disparity",
    "lowest_group": "pipeline.fairness.disparity",
    "reference_group": "pipeline.fairness.disparity",
    "statistical_parity_difference": "pipeline.fairness.disparity",
    "GroupStats": "pipeline.fairness.groups",
    "encode_groups": "pipeline.fairness.groups",
    "group_stats": "pipeline.fairness.groups",
    "intersection": "pipeline.fairness.groups",
    "DISPARITY_METRICS": "pipeline.fairness.catalog",
    "MetricSpecError": "pipeline.fairness.catalog",
    "evaluate_metric": "pipeline.fairness.catalog",
    "resolve_metric": "pipeline.fairness.catalog",
    "resolve_metrics": "pipeline.fairness.catalog",
    "fairness_report": "pipeline.fairness.report",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
