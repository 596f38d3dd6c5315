"""The metric registry and the `_target_` plug-in extension point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_negative_rate_difference
from omegaconf import OmegaConf
from sklearn.metrics import precision_score

from pipeline.fairness import disparity
from pipeline.fairness.catalog import (
    DISPARITY_METRICS,
    MetricSpecError,
    evaluate_metric,
    resolve_metric,
    resolve_metrics,
)
from pipeline.fairness.groups import GroupStats, group_stats
from pipeline.runtime.errors import ConfigError

PPV_TARGET = "tests.fairness_plugins.positive_predictive_value_difference"
FNR_TARGET = "tests.fairness_plugins.false_negative_rate_difference"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 3000
    groups = pd.Series(rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]), name="g")
    y_true = rng.integers(0, 2, size=n)
    lift = groups.map({"a": 0.0, "b": 0.15, "c": 0.3}).to_numpy()
    y_pred = (rng.random(n) < 0.2 + lift + 0.3 * y_true).astype(int)
    return y_true, y_pred, groups


def test_builtins_are_the_four_disparity_functions():
    assert dict(DISPARITY_METRICS) == {
        "statistical_parity_difference": disparity.statistical_parity_difference,
        "disparate_impact_ratio": disparity.disparate_impact_ratio,
        "equal_opportunity_difference": disparity.equal_opportunity_difference,
        "equalized_odds_difference": disparity.equalized_odds_difference,
    }
    with pytest.raises(TypeError):
        DISPARITY_METRICS["x"] = disparity.rate_spread  # read-only: no global mutation


def test_resolve_builtin_by_name_and_by_dict():
    assert resolve_metric("disparate_impact_ratio") == (
        "disparate_impact_ratio",
        disparity.disparate_impact_ratio,
    )
    assert resolve_metric({"name": "equalized_odds_difference"})[1] is (
        disparity.equalized_odds_difference
    )


def test_plugin_with_kwargs_loads_via_target(data):
    y_true, y_pred, groups = data
    name, fn = resolve_metric({"name": "ppv_gap", "_target_": PPV_TARGET, "min_selected": 5})
    assert name == "ppv_gap"
    stats = group_stats(y_true, y_pred, groups, min_count=30, min_share=0.01)
    ppv = MetricFrame(
        metrics=precision_score, y_true=y_true, y_pred=y_pred, sensitive_features=groups
    ).by_group
    assert evaluate_metric(name, fn, stats) == pytest.approx(ppv.max() - ppv.min())
    # The kwarg reaches the plug-in: with min_selected above every group's count, undefined.
    _, strict = resolve_metric({"name": "ppv_gap", "_target_": PPV_TARGET, "min_selected": 10**6})
    assert strict(stats) is None


def test_plugin_from_omegaconf_config(data):
    y_true, y_pred, groups = data
    cfg = OmegaConf.create({"extra_metrics": [{"name": "fnr_difference", "_target_": FNR_TARGET}]})
    resolved = resolve_metrics(cfg.extra_metrics)
    stats = group_stats(y_true, y_pred, groups, min_count=30, min_share=0.01)
    value = resolved["fnr_difference"](stats)
    assert value == pytest.approx(
        false_negative_rate_difference(y_true, y_pred, sensitive_features=groups)
    )
    assert value == pytest.approx(disparity.equal_opportunity_difference(stats))


def test_callable_and_pair_specs():
    from tests import fairness_plugins

    fn = fairness_plugins.false_negative_rate_difference
    assert resolve_metric(fn) == ("false_negative_rate_difference", fn)
    assert resolve_metric(("fnr", fn)) == ("fnr", fn)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_metric", "unknown fairness metric"),
        ({"_target_": PPV_TARGET}, "needs a non-empty string 'name'"),
        ({"name": "x", "_target_": "tests.fairness_plugins.nope"},
         "'nope' is importable from module 'tests.fairness_plugins'"),
        ({"name": "x", "_target_": "no_such_pkg.mod.fn"}, "No module named 'no_such_pkg'"),
        ({"name": "x", "_target_": "nodots"}, "dotted path"),
        ({"name": "x", "_target_": "tests.fairness_plugins.annotations"},
         "Expected a callable target"),
        ({"name": "x", "_target_": PPV_TARGET, "bogus": 1}, "does not bind"),
        ({"name": "statistical_parity_difference", "_target_": PPV_TARGET}, "is a built-in"),
        ({"name": "x", "min_selected": 3}, "need a _target_"),
        (42, "cannot resolve"),
        (lambda stats: 0.0, "no usable name"),
    ],
)
def test_bad_specs_raise_config_errors(spec, message):
    with pytest.raises(MetricSpecError, match=message) as info:
        resolve_metric(spec)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)


def test_duplicate_names_rejected():
    with pytest.raises(MetricSpecError, match="more than once"):
        resolve_metrics(["disparate_impact_ratio", {"name": "disparate_impact_ratio"}])


def test_evaluate_metric_normalises_results():
    stats: list[GroupStats] = []
    assert evaluate_metric("m", lambda s: np.float64(0.25), stats) == 0.25
    assert type(evaluate_metric("m", lambda s: np.float32(0.5), stats)) is float
    assert evaluate_metric("m", lambda s: float("nan"), stats) is None
    assert evaluate_metric("m", lambda s: None, stats) is None
    with pytest.raises(TypeError, match="'m'"):
        evaluate_metric("m", lambda s: "0.1", stats)
    with pytest.raises(ValueError, match="inf"):
        evaluate_metric("m", lambda s: float("inf"), stats)
