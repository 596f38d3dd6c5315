"""Between-group disparity metrics computed from `GroupStats`.

Sign convention
---------------
* Differences are ``max - min`` over the eligible groups, so they are never negative; 0 means
  parity.
* Ratios are ``min / max``, so they lie in [0, 1]; 1 means parity.

This matches fairlearn's ``demographic_parity_difference`` / ``demographic_parity_ratio``,
``equal_opportunity_difference`` and ``equalized_odds_difference`` with
``method="between_groups"`` (and, for equalized odds, ``agg="worst_case"``) — the tests
cross-check against them where both are defined.

Eligibility
-----------
A group is *eligible* for a metric when it is not excluded (see `groups.group_stats`: empty,
too small or too rare a group is excluded) and the rate the metric needs is defined for it (a
group with no positives has no TPR; one with no negatives has no FPR). Every metric is None —
undefined — when fewer than 2 groups are eligible. Callers must treat None as failing closed:
an unmeasurable disparity is not evidence of fairness.

Note that fairlearn itself reports TPR = 0 for a group without positives and so counts it in
its equal-opportunity spread; here that group is skipped for TPR and still counted for FPR and
selection rate.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.fairness.groups import GroupStats
from pipeline.fairness.impact import impact_ratios


def eligible_values(stats: Sequence[GroupStats], attr: str) -> list[tuple[str, float]]:
    """(group, value of `attr`) for the non-excluded groups where `attr` is defined, in order."""
    out = []
    for s in stats:
        value = getattr(s, attr)
        if not s.excluded and value is not None:
            out.append((s.group, float(value)))
    return out


def rate_spread(stats: Sequence[GroupStats], attr: str) -> float | None:
    """``max(attr) - min(attr)`` over eligible groups; None when fewer than 2 are eligible."""
    values = [v for _, v in eligible_values(stats, attr)]
    if len(values) < 2:
        return None
    return max(values) - min(values)


def statistical_parity_difference(stats: Sequence[GroupStats]) -> float | None:
    """Statistical (demographic) parity difference.

    ``SPD = max_g P(ŷ=1 | G=g) - min_g P(ŷ=1 | G=g)`` over eligible groups; in [0, 1].
    """
    return rate_spread(stats, "selection_rate")


def disparate_impact_ratio(stats: Sequence[GroupStats]) -> float | None:
    """Disparate impact ratio (demographic parity ratio; the "four-fifths rule" quantity).

    ``DIR = min_g P(ŷ=1 | G=g) / max_g P(ŷ=1 | G=g)`` over eligible groups; in [0, 1].
    None when fewer than 2 groups are eligible or when every eligible selection rate is 0.
    """
    values = [v for _, v in eligible_values(stats, "selection_rate")]
    if len(values) < 2 or max(values) == 0:
        return None
    return min(values) / max(values)


def equal_opportunity_difference(stats: Sequence[GroupStats]) -> float | None:
    """Equal opportunity difference (TPR spread).

    ``EOD = max_g P(ŷ=1 | y=1, G=g) - min_g P(ŷ=1 | y=1, G=g)`` over eligible groups with at
    least one positive; in [0, 1].
    """
    return rate_spread(stats, "tpr")


def equalized_odds_difference(stats: Sequence[GroupStats]) -> float | None:
    """Equalized odds difference (worst of the TPR and FPR spreads).

    ``EqOdds = max(max_g TPR_g - min_g TPR_g, max_g FPR_g - min_g FPR_g)``; in [0, 1].
    Each spread is over the eligible groups where that rate is defined; None if either spread
    is undefined (the worst case cannot be known from one of them).
    """
    tpr_spread = rate_spread(stats, "tpr")
    fpr_spread = rate_spread(stats, "fpr")
    if tpr_spread is None or fpr_spread is None:
        return None
    return max(tpr_spread, fpr_spread)


def reference_group(stats: Sequence[GroupStats]) -> str | None:
    """Eligible group with the highest selection rate (first in group order on ties)."""
    values = eligible_values(stats, "selection_rate")
    if not values:
        return None
    best = max(v for _, v in values)
    return next(g for g, v in values if v == best)


def lowest_group(stats: Sequence[GroupStats]) -> str | None:
    """Eligible group with the lowest selection rate (first in group order on ties)."""
    values = eligible_values(stats, "selection_rate")
    if not values:
        return None
    worst = min(v for _, v in values)
    return next(g for g, v in values if v == worst)


def metric_impact_ratios(stats: Sequence[GroupStats]) -> dict[str, float | None]:
    """Impact ratio of every group over the groups the fairness metrics keep (see `impact`:
    excluded groups and groups without a selection rate get None)."""
    return impact_ratios({s.group: s.selection_rate for s in stats},
                         {g for g, _ in eligible_values(stats, "selection_rate")})
