"""Group statistics, exclusion, intersections and disparity metrics on hand-computed fixtures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
)

from pipeline.fairness import disparity
from pipeline.fairness.groups import encode_groups, group_stats, intersection


def cells(group: str, *, tp: int, fn: int, fp: int, tn: int):
    """Rows of one group with the given confusion counts: (group labels, y_true, y_pred)."""
    y_true = [1] * tp + [1] * fn + [0] * fp + [0] * tn
    y_pred = [1] * tp + [0] * fn + [1] * fp + [0] * tn
    return [group] * len(y_true), y_true, y_pred


def dataset(*parts, categories=None):
    g, yt, yp = [], [], []
    for pg, pt, pp in parts:
        g += pg
        yt += pt
        yp += pp
    groups = pd.Series(g, name="g")
    if categories is not None:
        groups = groups.astype(pd.CategoricalDtype(categories))
    return np.array(yt), np.array(yp), groups


# Group A: 10 rows, 5 positives (TP 4, FN 1), 5 negatives (FP 2, TN 3)
#   selection rate = (4 + 2) / 10 = 0.6, TPR = 4 / 5 = 0.8, FPR = 2 / 5 = 0.4
# Group B: 10 rows, 4 positives (TP 2, FN 2), 6 negatives (FP 0, TN 6)
#   selection rate = (2 + 0) / 10 = 0.2, TPR = 2 / 4 = 0.5, FPR = 0 / 6 = 0.0
# SPD    = 0.6 - 0.2 = 0.4
# DIR    = 0.2 / 0.6 = 1/3
# EOD    = 0.8 - 0.5 = 0.3
# EqOdds = max(TPR spread 0.3, FPR spread 0.4 - 0.0 = 0.4) = 0.4
A = cells("A", tp=4, fn=1, fp=2, tn=3)
B = cells("B", tp=2, fn=2, fp=0, tn=6)


def test_two_groups_known_rates_and_metrics():
    y_true, y_pred, groups = dataset(A, B)
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    a, b = stats
    assert (a.group, a.count, a.share, a.positives, a.negatives, a.selected) == (
        "A",
        10,
        0.5,
        5,
        5,
        6,
    )
    assert (a.true_positives, a.false_positives) == (4, 2)
    assert (a.selection_rate, a.tpr, a.fpr) == pytest.approx((0.6, 0.8, 0.4))
    assert (b.selection_rate, b.tpr, b.fpr) == pytest.approx((0.2, 0.5, 0.0))
    assert not a.excluded and a.exclusion_reason is None

    assert disparity.statistical_parity_difference(stats) == pytest.approx(0.4)
    assert disparity.disparate_impact_ratio(stats) == pytest.approx(1 / 3)
    assert disparity.equal_opportunity_difference(stats) == pytest.approx(0.3)
    assert disparity.equalized_odds_difference(stats) == pytest.approx(0.4)
    assert disparity.reference_group(stats) == "A"
    assert disparity.lowest_group(stats) == "B"
    assert disparity.metric_impact_ratios(stats) == pytest.approx({"A": 1.0, "B": 1 / 3})


def test_tpr_spread_can_dominate_equalized_odds():
    # C: TP 1, FN 4 -> TPR 0.2; FP 1, TN 4 -> FPR 0.2.  D: TP 4, FN 1 -> TPR 0.8; FP 2, TN 3
    # -> FPR 0.4.  TPR spread 0.6 > FPR spread 0.2, so EqOdds = EOD = 0.6.
    y_true, y_pred, groups = dataset(
        cells("C", tp=1, fn=4, fp=1, tn=4), cells("D", tp=4, fn=1, fp=2, tn=3)
    )
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    assert disparity.equal_opportunity_difference(stats) == pytest.approx(0.6)
    assert disparity.equalized_odds_difference(stats) == pytest.approx(0.6)


def test_empty_declared_group_is_listed_excluded_and_not_in_metrics():
    y_true, y_pred, groups = dataset(A, B, categories=["A", "Empty", "B"])
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    assert [s.group for s in stats] == ["A", "Empty", "B"]  # category order, not sorted
    empty = stats[1]
    assert (empty.count, empty.share, empty.selection_rate, empty.tpr, empty.fpr) == (
        0,
        0.0,
        None,
        None,
        None,
    )
    assert empty.excluded and empty.exclusion_reason == "empty group"
    # Same metrics as the two-group fixture.
    assert disparity.statistical_parity_difference(stats) == pytest.approx(0.4)
    assert disparity.disparate_impact_ratio(stats) == pytest.approx(1 / 3)
    assert disparity.equalized_odds_difference(stats) == pytest.approx(0.4)
    assert disparity.metric_impact_ratios(stats)["Empty"] is None


def test_group_without_positives_has_undefined_tpr_not_zero():
    # N: no positives; FP 1, TN 4 -> selection rate 0.2, TPR undefined, FPR 0.2.
    # EOD over A and B only = 0.8 - 0.5 = 0.3 (fairlearn would count N's TPR as 0 -> 0.8).
    # SPD = 0.6 - 0.2 = 0.4 (B and N both 0.2); EqOdds = max(0.3, FPR 0.4 - 0.0) = 0.4.
    y_true, y_pred, groups = dataset(A, B, cells("N", tp=0, fn=0, fp=1, tn=4))
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    n = stats[2]
    assert n.positives == 0 and n.tpr is None
    assert n.fpr == pytest.approx(0.2) and not n.excluded
    assert disparity.equal_opportunity_difference(stats) == pytest.approx(0.3)
    assert disparity.statistical_parity_difference(stats) == pytest.approx(0.4)
    assert disparity.equalized_odds_difference(stats) == pytest.approx(0.4)
    assert disparity.lowest_group(stats) == "B"  # ties broken by group order
    fairlearn_eod = equal_opportunity_difference(y_true, y_pred, sensitive_features=groups)
    assert fairlearn_eod == pytest.approx(0.8)  # the 0-for-undefined behaviour we avoid


def test_group_without_negatives_has_undefined_fpr():
    y_true, y_pred, groups = dataset(A, B, cells("P", tp=3, fn=1, fp=0, tn=0))
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    assert stats[2].fpr is None and stats[2].tpr == pytest.approx(0.75)


def test_intersection_labels_categories_and_size_one_cell_excluded():
    sensitive = pd.DataFrame(
        {
            "sex": pd.Categorical(["Female"] * 3 + ["Male"] * 4, categories=["Female", "Male"]),
            "race": ["White", "White", "Black", "White", "White", "White", "White"],
        }
    )
    inter = intersection(sensitive, ["sex", "race"])
    assert inter.name == "sex*race"
    # race is not categorical: sorted unique values; the product keeps sex varying slowest.
    assert list(inter.cat.categories) == [
        "Female|Black",
        "Female|White",
        "Male|Black",
        "Male|White",
    ]
    assert inter.tolist() == ["Female|White"] * 2 + ["Female|Black"] + ["Male|White"] * 4
    y_true = np.array([1, 0, 1, 1, 0, 1, 0])
    y_pred = np.array([1, 0, 0, 1, 1, 0, 0])
    stats = group_stats(y_true, y_pred, inter, min_count=2, min_share=0.0)
    by = {s.group: s for s in stats}
    assert by["Female|Black"].count == 1 and by["Female|Black"].excluded
    assert by["Female|Black"].exclusion_reason == "count 1 < min_count 2"
    assert by["Male|Black"].count == 0 and by["Male|Black"].exclusion_reason == "empty group"
    assert not by["Female|White"].excluded and not by["Male|White"].excluded
    # Eligible: Female|White (SR 1/2) and Male|White (SR 2/4): SPD 0 over those two.
    assert disparity.statistical_parity_difference(stats) == pytest.approx(0.0)


def test_intersection_rejects_separator_in_values_and_unknown_columns():
    sensitive = pd.DataFrame({"a": ["x|y", "z"], "b": ["p", "q"]})
    with pytest.raises(ValueError, match="separator"):
        intersection(sensitive, ["a", "b"])
    with pytest.raises(ValueError, match="not in sensitive columns"):
        intersection(sensitive, ["a", "nope"])


def test_borderline_exclusion_is_inclusive():
    # A has 10 rows, B has 10 rows; n = 20, each share 0.5.
    y_true, y_pred, groups = dataset(A, B)
    kept = group_stats(y_true, y_pred, groups, min_count=10, min_share=0.5)
    assert [s.excluded for s in kept] == [False, False]
    dropped = group_stats(y_true, y_pred, groups, min_count=11, min_share=0.0)
    assert [s.exclusion_reason for s in dropped] == ["count 10 < min_count 11"] * 2


def test_share_threshold_and_combined_reason():
    # S: 2 rows of 100 -> share 0.02 == min_share: kept; T: 1 row -> share 0.01: excluded.
    big = cells("R", tp=30, fn=20, fp=17, tn=30)
    y_true, y_pred, groups = dataset(
        big, cells("S", tp=1, fn=0, fp=0, tn=1), cells("T", tp=1, fn=0, fp=0, tn=0)
    )
    assert len(y_true) == 100
    stats = group_stats(y_true, y_pred, groups, min_count=2, min_share=0.02)
    by = {s.group: s for s in stats}
    assert not by["S"].excluded
    assert by["T"].exclusion_reason == "count 1 < min_count 2; share 0.01 < min_share 0.02"


def test_fewer_than_two_eligible_groups_gives_none():
    y_true, y_pred, groups = dataset(A, cells("tiny", tp=1, fn=0, fp=0, tn=0))
    stats = group_stats(y_true, y_pred, groups, min_count=2, min_share=0.0)
    for metric in (
        disparity.statistical_parity_difference,
        disparity.disparate_impact_ratio,
        disparity.equal_opportunity_difference,
        disparity.equalized_odds_difference,
    ):
        assert metric(stats) is None
    assert disparity.reference_group(stats) == "A"
    # Two eligible groups but only one with positives: EOD and EqOdds undefined, SPD defined.
    y_true, y_pred, groups = dataset(A, cells("N", tp=0, fn=0, fp=1, tn=4))
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    assert disparity.equal_opportunity_difference(stats) is None
    assert disparity.equalized_odds_difference(stats) is None
    assert disparity.statistical_parity_difference(stats) == pytest.approx(0.4)


def test_disparate_impact_ratio_undefined_when_nobody_selected():
    y_true, y_pred, groups = dataset(
        cells("A", tp=0, fn=3, fp=0, tn=3), cells("B", tp=0, fn=2, fp=0, tn=2)
    )
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    assert disparity.statistical_parity_difference(stats) == 0.0
    assert disparity.disparate_impact_ratio(stats) is None
    assert disparity.metric_impact_ratios(stats) == {"A": None, "B": None}


@pytest.mark.parametrize(
    "y_true, y_pred",
    [
        ([0, 1, 2, 1], [0, 1, 1, 0]),
        ([0, 1, -1, 1], [0, 1, 1, 0]),
        ([0, 1, 1, 0], [0, 1, 0.5, 0]),
        ([0, 1, 1, 0], [0.0, 1.0, np.nan, 0.0]),
        (["no", "yes", "yes", "no"], [0, 1, 1, 0]),
        ([0, 1, 1, 0], ["0", "1", "1", "0"]),
    ],
)
def test_labels_other_than_0_1_raise(y_true, y_pred):
    groups = pd.Series(["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="0"):
        group_stats(np.array(y_true), np.array(y_pred), groups, min_count=1, min_share=0.0)


def test_bool_and_float_0_1_labels_accepted():
    groups = pd.Series(["a", "a", "b", "b"])
    y_true = np.array([True, False, True, False])
    y_pred = np.array([1.0, 0.0, 0.0, 0.0])
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    assert stats[0].tpr == 1.0 and stats[1].tpr == 0.0


def test_input_shape_and_missing_groups_raise():
    with pytest.raises(ValueError, match="rows"):
        group_stats(
            np.array([0, 1]), np.array([0, 1, 1]), pd.Series(["a", "b"]), min_count=1, min_share=0.0
        )
    with pytest.raises(ValueError, match="groups has 3 rows"):
        group_stats(
            np.array([0, 1]),
            np.array([0, 1]),
            pd.Series(["a", "b", "c"]),
            min_count=1,
            min_share=0.0,
        )
    with pytest.raises(ValueError, match="missing value"):
        group_stats(
            np.array([0, 1]), np.array([0, 1]), pd.Series(["a", None]), min_count=1, min_share=0.0
        )
    with pytest.raises(ValueError, match="min_share"):
        group_stats(
            np.array([0, 1]), np.array([0, 1]), pd.Series(["a", "b"]), min_count=1, min_share=2.0
        )


def test_group_order_is_sorted_for_plain_values():
    labels, codes = encode_groups(pd.Series([10, 2, 2, 10, 1]))
    assert labels == ["1", "2", "10"]  # numeric sort, then str
    assert codes.tolist() == [2, 1, 1, 2, 0]


def test_metrics_match_fairlearn_where_defined():
    rng = np.random.default_rng(7)
    n = 4000
    groups = pd.Series(rng.choice(["p", "q", "r", "s"], size=n, p=[0.4, 0.3, 0.2, 0.1]))
    y_true = rng.integers(0, 2, size=n)
    bias = groups.map({"p": 0.0, "q": 0.1, "r": 0.2, "s": 0.3}).to_numpy()
    y_pred = (rng.random(n) < 0.3 + bias * y_true + bias / 2).astype(int)
    stats = group_stats(y_true, y_pred, groups, min_count=1, min_share=0.0)
    kw = dict(sensitive_features=groups, method="between_groups")
    assert disparity.statistical_parity_difference(stats) == pytest.approx(
        demographic_parity_difference(y_true, y_pred, **kw)
    )
    assert disparity.disparate_impact_ratio(stats) == pytest.approx(
        demographic_parity_ratio(y_true, y_pred, **kw)
    )
    assert disparity.equal_opportunity_difference(stats) == pytest.approx(
        equal_opportunity_difference(y_true, y_pred, **kw)
    )
    assert disparity.equalized_odds_difference(stats) == pytest.approx(
        equalized_odds_difference(y_true, y_pred, agg="worst_case", **kw)
    )
