"""The promotion policy's rules (pipeline.audit.promotion), the champion history's anchor
(pipeline.tracking.champions) and the policy's config errors: pure logic, no processes."""

from __future__ import annotations

import random

import pytest

from pipeline.audit.promotion import best, compare, figures
from pipeline.config.registry import PromotionSpec
from pipeline.tracking.champions import anchor


def spec(**kw) -> PromotionSpec:
    return PromotionSpec.model_validate({"metric": "bal_acc", "greater_is_better": True, **kw})


def fig(value, **fairness) -> dict:
    return {"metric": "bal_acc", "value": value,
            "fairness": {k.replace("__", ":"): v for k, v in fairness.items()}}


@pytest.mark.parametrize("kw, cand, champ, passed", [
    ({}, 0.75, 0.74, True),  # neither change set: any improvement
    ({}, 0.74, 0.74, False),  # ... but not a tie
    ({"min_absolute_change": 0.01}, 0.75, 0.74, True),  # exactly the change: passes (>=)
    ({"min_absolute_change": 0.01}, 0.7499, 0.74, False),
    ({"min_relative_change": 0.1}, 0.66, 0.6, True),  # 0.6 * 1.1
    ({"min_relative_change": 0.1}, 0.659, 0.6, False),
    ({"min_absolute_change": 0.01, "min_relative_change": 0.1}, 0.655, 0.6, False),  # both
])
def test_metric_threshold_semantics_follow_mlflow(kw, cand, champ, passed):
    assert compare(spec(**kw), fig(cand), fig(champ))["passed"] is passed


def test_lower_is_better_metrics_compare_downwards():
    s = PromotionSpec.model_validate({"metric": "brier", "greater_is_better": False,
                                      "min_absolute_change": 0.01})
    lower = compare(s, {"metric": "brier", "value": 0.10, "fairness": {}},
                    {"metric": "brier", "value": 0.12, "fairness": {}})
    assert lower["passed"] and lower["margin"] == 0.02
    assert not compare(s, {"metric": "brier", "value": 0.12, "fairness": {}},
                       {"metric": "brier", "value": 0.10, "fairness": {}})["passed"]


def test_fairness_may_not_regress_beyond_the_limit_in_either_direction_of_metric():
    s = spec(fairness=[{"metric": "disparate_impact_ratio", "max_regression": 0.02},
                       {"metric": "equalized_odds_difference", "max_regression": 0.02}])
    champ = fig(0.70, disparate_impact_ratio__sex=0.90, equalized_odds_difference__sex=0.10)
    ok = compare(s, fig(0.80, disparate_impact_ratio__sex=0.885,
                        equalized_odds_difference__sex=0.115), champ)
    assert ok["passed"], ok["reasons"]
    less_fair = compare(s, fig(0.80, disparate_impact_ratio__sex=0.87,
                               equalized_odds_difference__sex=0.10), champ)
    assert not less_fair["passed"]
    assert any("disparate_impact_ratio:sex" in r for r in less_fair["reasons"])
    worse_odds = compare(s, fig(0.80, disparate_impact_ratio__sex=0.95,
                                equalized_odds_difference__sex=0.13), champ)
    assert not worse_odds["passed"]


def test_undefined_figures_fail_closed_for_the_candidate_only():
    s = spec(fairness=[{"metric": "disparate_impact_ratio", "max_regression": 0.02}])
    assert not compare(s, fig(None), fig(0.7))["passed"]
    assert not compare(s, fig(0.8, disparate_impact_ratio__sex=None),
                       fig(0.7, disparate_impact_ratio__sex=0.9))["passed"]
    assert compare(s, fig(0.8, disparate_impact_ratio__sex=0.9),
                   fig(0.7, disparate_impact_ratio__sex=None))["passed"]


def test_no_champion_yet_promotes_a_candidate():
    result = compare(spec(min_absolute_change=0.5), fig(0.7), None)
    assert result["passed"] and result["reasons"] == ["no champion yet"]


def test_figures_read_the_metrics_files_short_keys_for_every_breakdown():
    s = spec(fairness=[{"metric": "disparate_impact_ratio", "max_regression": 0.02,
                        "attributes": "all"}])
    f = figures(s, {"bal_acc": 0.75}, {"sex": {"dir": 0.9}, "race": {"dir": 0.5}},
                ["sex", "race", "sex*race"])
    assert f == {"metric": "bal_acc", "value": 0.75, "fairness": {
        "disparate_impact_ratio:sex": 0.9, "disparate_impact_ratio:race": 0.5,
        "disparate_impact_ratio:sex*race": None}}


def test_the_best_of_a_round_does_not_depend_on_the_order():
    pool = [{"version": str(v), "margin": m, "sha": s}
            for v, m, s in [(2, 0.01, "c"), (3, 0.03, "b"), (4, 0.03, "a"), (5, -0.2, "d")]]
    for _ in range(10):
        random.shuffle(pool)
        assert best(pool)["version"] == "4"  # equal margins: the lower sha wins
    assert best([]) is None


def move(version, frm, by="policy", rnd="r1"):
    return {"version": version, "from": frm, "by": by, "round": rnd}


@pytest.mark.parametrize("moves, current, rnd, expected", [
    ([], None, "r1", None),  # no champion yet
    ([move("1", None, rnd="r0")], "1", "r1", "1"),  # a new round compares with the champion
    ([move("1", None, rnd="r0"), move("3", "1")], "3", "r1", "1"),  # same round: its anchor
    ([move("1", None, rnd="r0"), move("3", "1"), move("4", "3")], "4", "r1", "1"),
    ([move("1", None, rnd="r0"), move("3", "1"), move("2", "3", by="person:a", rnd="manual")],
     "2", "r1", "2"),  # a person's move ends the round
    ([move("1", None, rnd="r0")], "5", "r1", "5"),  # alias moved outside: what is champion
])
def test_anchor_is_the_champion_before_the_rounds_first_policy_move(moves, current, rnd,
                                                                     expected):
    assert anchor(moves, current, rnd) == expected


def test_a_persons_move_starts_a_new_pool_even_against_the_same_version():
    from pipeline.tracking.champions import anchor_tag

    moves = [{**move("1", None, rnd="r0"), "key": "k1"}, {**move("4", "1"), "key": "k2"}]
    before = anchor_tag(moves, "1")
    rolled_back = [*moves, {**move("1", "4", by="person:a", rnd="manual"), "key": "k3"}]
    assert anchor_tag(rolled_back, "1") != before == "1|"
    assert anchor_tag([], None) == "none|"


@pytest.mark.parametrize(("override", "key"), [
    ('data.target.positive="<=50K"', "data.target.positive"),
    ("~data.sensitive.race", "data.sensitive.race"),
])
def test_redefining_the_favourable_outcome_or_the_groups_is_a_policy_override(override, key):
    """An attack by `-S`: flip which label is favourable, or drop a sensitive attribute
    (remapping one onto another column is already a config error), and the model is judged
    against its own meaning of "fair". The committed policy covers both, so such a run is an
    override (challenger at most, never champion)."""
    from pipeline.audit import policy
    from pipeline.config import validate
    from tests.conftest import ROOT, composed

    committed = policy.committed(ROOT, "adult", "embedded")
    raw = composed(override) if not override.startswith("~") else composed()
    if override.startswith("~"):  # drop race, and the gates that would name it
        del raw["data"]["sensitive"]["race"]
        raw["governance"]["fairness"] = [g for g in raw["governance"]["fairness"]
                                         if "race" not in str(g["attributes"])]
    effective = policy.of(validate(raw).model_dump(mode="json"))
    found = policy.overrides(effective, committed)
    assert key in found, found
    assert policy.overrides(policy.of(validate(composed()).model_dump(mode="json")),
                            committed) == []
