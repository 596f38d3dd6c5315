"""fairness_report: JSON shape, determinism, exclusions, intersections and plug-ins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.fairness import fairness_report
from pipeline.fairness.catalog import DISPARITY_METRICS

PPV = {
    "name": "ppv_difference",
    "_target_": "tests.fairness_plugins.positive_predictive_value_difference",
    "min_selected": 5,
}
SETTINGS = dict(n_boot=50, seed=42, alpha=0.05, min_count=30, min_share=0.02)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 2000
    sex = rng.choice(["Female", "Male"], size=n, p=[0.45, 0.55])
    race = rng.choice(["White", "Black", "Asian", "Other"], size=n, p=[0.7, 0.2, 0.09, 0.01])
    sensitive = pd.DataFrame(
        {
            "sex": pd.Categorical(sex, categories=["Female", "Male", "Nonbinary"]),
            "race": race,
        },
        index=rng.permutation(n) + 1000,  # a non-default index is ignored (rows are positional)
    )
    y_true = (rng.random(n) < 0.35).astype(int)
    y_pred = (rng.random(n) < 0.15 + 0.5 * y_true + 0.1 * (sex == "Male")).astype(int)
    return y_true, y_pred, sensitive


@pytest.fixture(scope="module")
def report(data):
    y_true, y_pred, sensitive = data
    return fairness_report(
        y_true,
        y_pred,
        sensitive,
        ["sex", "race"],
        intersections=[["sex", "race"]],
        extra_metrics=[PPV],
        **SETTINGS,
    )


def test_report_is_json_ready_and_deterministic(data, report):
    text = json.dumps(report, allow_nan=False)
    y_true, y_pred, sensitive = data
    again = fairness_report(
        y_true,
        y_pred,
        sensitive,
        ["sex", "race"],
        intersections=[["sex", "race"]],
        extra_metrics=[PPV],
        **SETTINGS,
    )
    assert json.dumps(again, allow_nan=False) == text
    assert json.loads(text) == report  # only JSON types inside


def test_report_top_level_shape(report):
    assert report["schema_version"] == 1
    assert report["n"] == 2000
    assert report["settings"] == {
        "n_boot": 50,
        "seed": 42,
        "alpha": 0.05,
        "min_count": 30,
        "min_share": 0.02,
        "metrics": [*DISPARITY_METRICS, "ppv_difference"],
    }
    assert list(report["breakdowns"]) == ["sex", "race", "sex*race"]
    assert report["breakdowns"]["sex*race"]["kind"] == "intersection"
    assert report["breakdowns"]["sex*race"]["columns"] == ["sex", "race"]
    assert report["breakdowns"]["sex"]["kind"] == "attribute"
    overall = report["overall"]
    assert overall["count"] == 2000 and 0 < overall["selection_rate"] < 1


def test_attribute_breakdown(report):
    sex = report["breakdowns"]["sex"]
    assert [g["group"] for g in sex["groups"]] == ["Female", "Male", "Nonbinary"]
    assert sex["excluded_groups"] == [{"group": "Nonbinary", "count": 0, "reason": "empty group"}]
    assert sex["eligible_groups"] == ["Female", "Male"]
    assert sex["reference_group"] == "Male" and sex["lowest_group"] == "Female"
    female, male, _ = sex["groups"]
    spd = sex["metrics"]["statistical_parity_difference"]
    assert spd["value"] == pytest.approx(
        male["selection_rate"] - female["selection_rate"], abs=2e-6
    )
    assert spd["ci"]["low"] <= spd["value"] <= spd["ci"]["high"]
    assert spd["ci"]["n_valid"] == 50
    dir_ = sex["metrics"]["disparate_impact_ratio"]["value"]
    assert female["impact_ratio"] == pytest.approx(dir_, abs=1e-6) and male["impact_ratio"] == 1.0
    assert set(sex["metrics"]) == {*DISPARITY_METRICS, "ppv_difference"}
    assert sex["metrics"]["ppv_difference"]["value"] is not None
    assert set(female["ci"]) == {"selection_rate", "tpr", "fpr"}
    assert female["ci"]["tpr"]["low"] <= female["tpr"] <= female["ci"]["tpr"]["high"]


def test_race_excludes_rare_group_by_share(report):
    race = report["breakdowns"]["race"]
    assert [g["group"] for g in race["groups"]] == ["Asian", "Black", "Other", "White"]
    other = race["groups"][2]
    assert other["excluded"] and other["impact_ratio"] is None
    assert "< min_share 0.02" in other["exclusion_reason"]
    assert [e["group"] for e in race["excluded_groups"]] == ["Other"]


def test_intersection_breakdown_lists_every_cell(report):
    inter = report["breakdowns"]["sex*race"]
    assert inter["n_groups"] == 12  # 3 sexes (one declared, unused) x 4 races
    assert inter["groups"][0]["group"] == "Female|Asian"
    nonbinary = [g for g in inter["groups"] if g["group"].startswith("Nonbinary|")]
    assert all(g["count"] == 0 and g["exclusion_reason"] == "empty group" for g in nonbinary)
    assert all(g["selection_rate"] is None and g["tpr"] is None for g in nonbinary)
    excluded = {e["group"] for e in inter["excluded_groups"]}
    assert {"Female|Other", "Male|Other"} <= excluded
    assert set(inter["eligible_groups"]).isdisjoint(excluded)


def test_floats_rounded_to_six_decimals(report):
    def floats(obj):
        if isinstance(obj, float):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from floats(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from floats(v)

    values = list(floats(report))
    assert values and all(v == round(v, 6) for v in values)


def test_undefined_metrics_are_null_when_one_eligible_group(data):
    y_true, y_pred, sensitive = data
    out = fairness_report(
        y_true,
        y_pred,
        sensitive,
        ["sex"],
        intersections=[],
        n_boot=20,
        seed=0,
        alpha=0.05,
        min_count=1000,
        min_share=0.0,
    )
    sex = out["breakdowns"]["sex"]
    assert sex["eligible_groups"] == ["Male"]  # 45% of 2000 = ~900 < 1000
    for metric in sex["metrics"].values():
        assert metric["value"] is None
        assert metric["ci"] == {"low": None, "high": None, "n_valid": 0}
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize(
    "attributes, intersections, message",
    [
        (["sex", "age"], [], r"\['age'\] not among columns"),
        (["sex"], [["sex"]], "at least 2 attributes"),
        (["sex", "sex"], [], "more than once"),
        ([], [], "at least one attribute"),
    ],
)
def test_bad_report_arguments(data, attributes, intersections, message):
    y_true, y_pred, sensitive = data
    with pytest.raises(ValueError, match=message):
        fairness_report(
            y_true, y_pred, sensitive, attributes, intersections=intersections, **SETTINGS
        )


def test_report_rejects_non_binary_labels_and_length_mismatch(data):
    y_true, y_pred, sensitive = data
    with pytest.raises(ValueError, match="only 0 and 1"):
        fairness_report(y_true * 2, y_pred, sensitive, ["sex"], intersections=[], **SETTINGS)
    with pytest.raises(ValueError, match="rows"):
        fairness_report(y_true, y_pred, sensitive.iloc[:-1], ["sex"], intersections=[], **SETTINGS)


def test_sensitive_index_is_ignored(data, report):
    y_true, y_pred, sensitive = data
    positional = fairness_report(
        y_true,
        y_pred,
        sensitive.reset_index(drop=True),
        ["sex", "race"],
        intersections=[["sex", "race"]],
        extra_metrics=[PPV],
        **SETTINGS,
    )
    assert positional == report
