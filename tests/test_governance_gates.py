"""Gate logic on fixtures with known answers (governance config errors: test_config_errors)."""

from __future__ import annotations

import pytest

from pipeline.audit.gates import evaluate, verdict
from pipeline.config.governance import GovernanceSpec

CARD = {"intended_use": "tests"}


def gov(fairness=(), performance=(), **kw) -> GovernanceSpec:
    return GovernanceSpec(name="t", fairness=list(fairness), performance=list(performance),
                          model_card=CARD, **kw)


def fairness_fixture(dir_value, ci=(None, None), excluded=()):
    return {"breakdowns": {"sex": {
        "kind": "attribute",
        "metrics": {"disparate_impact_ratio": {"value": dir_value,
                                               "ci": {"low": ci[0], "high": ci[1]}},
                    "statistical_parity_difference": {"value": 0.05,
                                                      "ci": {"low": 0.01, "high": 0.12}}},
        "excluded_groups": list(excluded),
    }}}


DIR = {"metric": "disparate_impact_ratio", "min": 0.8, "attributes": ["sex"]}


@pytest.mark.parametrize(("value", "passed"), [(0.9, True), (0.8, True), (0.7999, False)])
def test_pass_fail_and_borderline(value, passed):
    [r] = evaluate(gov([DIR]), fairness_fixture(value), {}, {})
    assert r.passed is passed and r.compared == value and r.direction == ">="
    assert verdict([r], 0)[0] == ("VALIDATED" if passed else "REJECTED")


def test_undefined_metric_fails_closed():
    [r] = evaluate(gov([DIR]), fairness_fixture(None), {}, {})
    assert not r.passed and "fails closed" in r.reason
    state, reasons = verdict([r], 0)
    assert state == "REJECTED" and "sex" in reasons[0]


def test_missing_attribute_in_metrics_fails_closed():
    crit = {**DIR, "attributes": ["race"]}
    [r] = evaluate(gov([crit]), fairness_fixture(0.9), {}, {})
    assert not r.passed and r.attribute == "race"


def test_confidence_bound_gating_uses_pessimistic_end():
    g = gov([DIR, {"metric": "statistical_parity_difference", "max": 0.1,
                   "attributes": ["sex"]}], use_confidence_bound=True)
    r_dir, r_spd = evaluate(g, fairness_fixture(0.85, ci=(0.78, 0.93)), {}, {})
    assert r_dir.basis == "ci_low" and r_dir.compared == 0.78 and not r_dir.passed
    assert r_spd.basis == "ci_high" and r_spd.compared == 0.12 and not r_spd.passed
    [r_point] = evaluate(gov([{**DIR, "use_confidence_bound": False}],
                             use_confidence_bound=True),
                         fairness_fixture(0.85, ci=(0.78, 0.93)), {}, {})
    assert r_point.passed and r_point.basis == "estimate"


def test_excluded_groups_are_carried_with_the_result():
    small = [{"group": "Other", "count": 12, "reason": "count 12 < min_count 30"}]
    [r] = evaluate(gov([DIR]), fairness_fixture(0.9, excluded=small), {}, {})
    assert r.passed and r.excluded_groups == small


def test_advisory_and_hard_enforcement():
    advisory = {**DIR, "enforcement": "warn"}
    hard = {**DIR, "enforcement": "block"}
    [a] = evaluate(gov([advisory]), fairness_fixture(0.5), {}, {})
    assert not a.passed and a.advisory and verdict([a], 0)[0] == "VALIDATED"
    [h] = evaluate(gov([hard], enforcement="warn"), fairness_fixture(0.5), {}, {})
    assert h.hard and h.enforcement == "block" and verdict([h], 0)[0] == "REJECTED"


def test_performance_gates_and_privacy_hits():
    g = gov(performance=[{"metric": "roc_auc", "min": 0.8}, {"metric": "brier", "max": 0.2}])
    r_auc, r_brier = evaluate(g, {"breakdowns": {}}, {"roc_auc": 0.79, "brier": 0.15},
                              {"roc_auc": {"low": 0.75, "high": 0.83}})
    assert not r_auc.passed and r_brier.passed
    assert verdict([r_brier], 3) == ("REJECTED",
                                     ["privacy scan: 3 finding(s) of personal data"])
