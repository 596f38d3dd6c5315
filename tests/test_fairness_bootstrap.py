"""Bootstrap intervals: determinism, coverage of the point estimate, validity rule, speed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.fairness.bootstrap import (
    GROUP_RATES,
    Interval,
    bootstrap_intervals,
    percentile_interval,
    replicate_indices,
    stats_from_confusion,
)
from pipeline.fairness.catalog import DISPARITY_METRICS, evaluate_metric
from pipeline.fairness.groups import confusion_by_group, encode_groups, group_stats

BOOT = dict(min_count=30, min_share=0.01)


def synthetic(n: int, seed: int, groups=("g0", "g1", "g2", "g3", "g4")):
    rng = np.random.default_rng(seed)
    k = len(groups)
    p = np.linspace(2.0, 1.0, k)
    g = rng.choice(len(groups), size=n, p=p / p.sum())
    y_true = (rng.random(n) < 0.3 + 0.04 * g).astype(int)
    y_pred = (rng.random(n) < 0.15 + 0.5 * y_true + 0.03 * g).astype(int)
    return y_true, y_pred, pd.Series(np.asarray(groups)[g], name="grp")


@pytest.fixture(scope="module")
def medium():
    return synthetic(3000, seed=11)


def test_same_seed_same_intervals_other_seed_different(medium):
    y_true, y_pred, groups = medium
    first = bootstrap_intervals(y_true, y_pred, groups, n_boot=100, seed=5, **BOOT)
    again = bootstrap_intervals(y_true, y_pred, groups, n_boot=100, seed=5, **BOOT)
    other = bootstrap_intervals(y_true, y_pred, groups, n_boot=100, seed=6, **BOOT)
    assert first == again
    assert first.metrics != other.metrics
    assert set(first.metrics) == set(DISPARITY_METRICS)
    assert set(first.groups) == {"g0", "g1", "g2", "g3", "g4"}


def test_intervals_contain_point_estimates(medium):
    y_true, y_pred, groups = medium
    stats = group_stats(y_true, y_pred, groups, **BOOT)
    result = bootstrap_intervals(y_true, y_pred, groups, n_boot=300, seed=1, alpha=0.05, **BOOT)
    for name, fn in DISPARITY_METRICS.items():
        point = evaluate_metric(name, fn, stats)
        ci = result.metrics[name]
        assert ci.n_valid == 300
        assert ci.low <= point <= ci.high, name
    for s in stats:
        for rate in GROUP_RATES:
            ci = result.groups[s.group][rate]
            assert ci.low <= getattr(s, rate) <= ci.high
            assert ci.high - ci.low < 0.2
    wider = bootstrap_intervals(y_true, y_pred, groups, n_boot=300, seed=1, alpha=0.01, **BOOT)
    spd = "statistical_parity_difference"
    assert wider.metrics[spd].low <= result.metrics[spd].low
    assert wider.metrics[spd].high >= result.metrics[spd].high


def test_vectorised_point_values_equal_metricframe(medium):
    y_true, y_pred, groups = medium
    groups = groups.astype(pd.CategoricalDtype(["g0", "g1", "g2", "g3", "g4", "never"]))
    via_frame = group_stats(y_true, y_pred, groups, **BOOT)
    labels, codes = encode_groups(groups)
    cm = confusion_by_group(codes, y_true, y_pred, len(labels))
    vectorised = stats_from_confusion(labels, cm, [s.exclusion_reason for s in via_frame])
    assert len(vectorised) == len(via_frame) == 6
    for v, f in zip(vectorised, via_frame, strict=True):
        assert v.group == f.group and v.count == f.count and v.share == pytest.approx(f.share)
        for rate in GROUP_RATES:
            if getattr(f, rate) is None:
                assert getattr(v, rate) is None
            else:
                assert getattr(v, rate) == pytest.approx(getattr(f, rate), rel=1e-12, abs=1e-15)


def test_undefined_replicates_are_skipped_and_rare_statistics_have_no_interval():
    # Groups a and b have 50 rows each and ONE positive each. A replicate defines a's TPR only
    # if it draws that row (P = 1 - (1 - 1/100)^100 ~ 0.63), and EOD needs both (~0.40): so
    # TPR intervals exist (> half valid) while EOD's does not (< half valid).
    y_true = np.zeros(100, dtype=int)
    y_true[[0, 50]] = 1
    y_pred = np.zeros(100, dtype=int)
    y_pred[[0, 1, 2, 51]] = 1
    groups = pd.Series(["a"] * 50 + ["b"] * 50)
    result = bootstrap_intervals(
        y_true, y_pred, groups, n_boot=400, seed=0, min_count=1, min_share=0.0
    )
    eod = result.metrics["equal_opportunity_difference"]
    assert eod.low is None and eod.high is None
    assert 100 < eod.n_valid < 200
    tpr_a = result.groups["a"]["tpr"]
    assert 200 <= tpr_a.n_valid < 400 and tpr_a.low is not None
    spd = result.metrics["statistical_parity_difference"]
    assert spd.n_valid == 400


def test_exclusion_is_fixed_from_full_sample():
    # "small" has 20 rows < min_count 30: excluded from every replicate's metrics, even when a
    # replicate draws more than 30 of its rows. Its own rate intervals are still reported.
    y_true, y_pred, groups = synthetic(600, seed=2, groups=("big", "mid"))
    small = pd.Series(["small"] * 20)
    y_true = np.concatenate([y_true, np.ones(20, dtype=int)])
    y_pred = np.concatenate([y_pred, np.zeros(20, dtype=int)])  # SR 0: would dominate SPD
    groups = pd.concat([groups, small], ignore_index=True)

    def uses_small(stats):
        return float(any(s.group == "small" and not s.excluded for s in stats))

    result = bootstrap_intervals(
        y_true,
        y_pred,
        groups,
        n_boot=50,
        seed=3,
        min_count=30,
        min_share=0.0,
        metrics=["statistical_parity_difference", ("uses_small", uses_small)],
    )
    assert result.metrics["uses_small"] == Interval(0.0, 0.0, 50)
    assert result.metrics["statistical_parity_difference"].high < 0.15  # with small: ~0.3
    assert result.groups["small"]["selection_rate"] == Interval(0.0, 0.0, 50)


def test_n_boot_zero_disables_intervals(medium):
    y_true, y_pred, groups = medium
    result = bootstrap_intervals(y_true, y_pred, groups, n_boot=0, seed=0, **BOOT)
    assert all(ci == Interval(None, None, 0) for ci in result.metrics.values())
    assert all(ci == Interval(None, None, 0) for g in result.groups.values() for ci in g.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_boot=-1, seed=0), "n_boot"),
        (dict(n_boot=10, seed=None), "seed"),
        (dict(n_boot=10, seed=0, alpha=1.0), "alpha"),
        (dict(n_boot=10, seed=0, metrics=["nope"]), "unknown fairness metric"),
    ],
)
def test_bad_arguments_raise(medium, kwargs, message):
    y_true, y_pred, groups = medium
    with pytest.raises(ValueError, match=message):
        bootstrap_intervals(y_true, y_pred, groups, **BOOT, **kwargs)


def test_15000_rows_10_groups_give_every_replicate():
    # How long it takes is measured in bench/, never asserted here.
    y_true, y_pred, groups = synthetic(15_000, seed=4, groups=tuple(f"g{i}" for i in range(10)))
    stats = group_stats(y_true, y_pred, groups, **BOOT)
    result = bootstrap_intervals(
        y_true, y_pred, groups, n_boot=200, seed=0, full_sample_stats=stats, **BOOT
    )
    assert all(ci.n_valid == 200 for ci in result.metrics.values())


def test_performance_and_fairness_intervals_share_one_replicate_stream():
    """Same split, same seed: the performance CIs and the fairness CIs are computed on the
    same resampled rows, so they can be read side by side."""
    from pipeline.evaluation.performance import bootstrap_performance
    from pipeline.runtime.outputs import rounded

    rng = np.random.default_rng(0)
    n, n_boot, seed = 400, 50, 7
    y, score = rng.integers(0, 2, n), rng.random(n)
    pred = (score >= 0.5).astype(np.int64)
    fair = bootstrap_intervals(y, pred, pd.Series(["all"] * n), n_boot=n_boot, seed=seed,
                               min_count=1, min_share=0.0)
    perf = bootstrap_performance(y, score, 0.5, n_boot=n_boot, seed=seed, alpha=0.05)
    sel = np.array([pred[i].mean() for i in replicate_indices(n, n_boot, seed)])
    acc = np.array([np.mean(y[i] == pred[i]) for i in replicate_indices(n, n_boot, seed)])
    assert fair.groups["all"]["selection_rate"] == percentile_interval(sel, n_boot, 0.05)
    assert perf["acc"]["low"] == rounded(percentile_interval(acc, n_boot, 0.05).low)
