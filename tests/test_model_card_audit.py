"""The model card's parts on inputs with known answers: the LL 144 figures (selection and
scoring rates, impact ratios, unknown and small categories, due dates), the favourable label in
words, a dataset without race. The card on the real pipeline: tests/test_governance_stage.py."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.audit import card_words, ll144
from pipeline.config.dataset import TargetSpec
from pipeline.config.governance import ModelCardSpec
from pipeline.config.load import validate
from tests.conftest import composed


@pytest.fixture(scope="module")
def specs() -> dict:
    return {d: validate(composed(f"data={d}")).data for d in ("adult", "german")}


@pytest.mark.parametrize(("audit", "due"), [("2026-12-01", "2027-12-01"),
                                            ("2028-02-29", "2029-02-28")])
def test_next_audit_is_due_a_year_on_never_later(audit, due):
    assert ll144.next_due(audit) == due


@pytest.mark.parametrize("bad", ["2026-13-01", "20261201", "1 Dec 2026"])
def test_audit_date_must_be_an_iso_date(bad):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ModelCardSpec(intended_use="x", audit_date=bad)


def test_the_per_row_scores_never_go_to_the_registry():
    from pipeline.runtime.paths import SCORES, UPLOADED_REPORTS

    assert SCORES not in UPLOADED_REPORTS


def test_sex_and_race_are_recognised_by_name_or_said_to_be_missing(specs):
    assert ll144.categories(specs["adult"]) == {"sex": "sex", "race/ethnicity": "race"}
    assert ll144.categories(specs["german"]) == {"sex": "sex", "race/ethnicity": None}


def _frame() -> pd.DataFrame:
    """100 rows: a in {x: 60, y: 39, z: 1 (1% < 2%), w: 0}; b unknown (None) on 5 rows."""
    a = ["x"] * 60 + ["y"] * 39 + ["z"]
    score = [0.9] * 30 + [0.5] * 10 + [0.1] * 20 + [0.9] * 10 + [0.5] * 29 + [0.9]
    b = ["p", "q"] * 50
    b[:5] = [None] * 5
    return pd.DataFrame({"score": score, "a": pd.Categorical(a, categories=["x", "y", "z", "w"]),
                         "b": b})


def test_rates_ratios_unknown_and_small_categories():
    frame = _frame()
    median = float(frame["score"].median())
    assert median == 0.5  # ties at the median are not above it
    out = ll144.breakdown(frame, ["a"], threshold=0.5, median=median, min_share=0.02)
    rows = {r["group"]: r for r in out["groups"]}
    assert list(rows) == ["x", "y", "z", "w"] and out["unknown"] == 0
    x, y, z, w = rows["x"], rows["y"], rows["z"], rows["w"]
    assert (x["count"], x["selected"], x["above_median"]) == (60, 40, 30)
    assert (y["count"], y["selected"], y["above_median"]) == (39, 39, 10)
    assert x["selection_rate"] == pytest.approx(40 / 60) and y["selection_rate"] == 1.0
    assert x["scoring_rate"] == pytest.approx(30 / 60)
    assert y["scoring_rate"] == pytest.approx(10 / 39)
    # impact ratio = rate / the highest rate among the categories counted (z is not counted)
    assert x["selection_impact_ratio"] == pytest.approx((40 / 60) / 1.0)
    assert y["scoring_impact_ratio"] == pytest.approx((10 / 39) / (30 / 60))
    assert not z["included"] and z["reason"] == "share 1.00% < 2%"
    assert z["selection_impact_ratio"] is None and z["scoring_rate"] == 1.0  # still reported
    assert w["count"] == 0 and w["reason"] == "no rows" and w["selection_rate"] is None

    crossed = ll144.breakdown(frame, ["a", "b"], threshold=0.5, median=median, min_share=0.02)
    assert crossed["key"] == "a*b" and crossed["unknown"] == 5
    assert sum(r["count"] for r in crossed["groups"]) == 95
    assert [r["group"] for r in crossed["groups"]][:2] == ["x|p", "x|q"]


def _section_text(section) -> str:
    from pipeline.audit.document import to_markdown

    return to_markdown("t", [section])


def test_a_dataset_without_race_says_so_plainly(specs):
    spec = specs["german"]
    frame = pd.DataFrame({"score": [0.2, 0.7, 0.9, 0.4],
                          "sex": pd.Categorical(["female", "male", "male", "female"]),
                          "age_group": ["young", "old", "old", "young"]})
    result = ll144.audit(frame, spec, threshold=0.5, min_share=0.02)
    assert [b["key"] for b in result["breakdowns"]] == ["sex"]  # no intersection to make
    text = _section_text(ll144.section(
        result, card=ModelCardSpec(intended_use="x"), spec=spec, split_name="test",
        split_report={"seed": 1, "stratified_by": ["sex"]}, files=[{"path": "f.csv"}],
        fav='"good"', threshold=0.5))
    assert "The dataset declares no race/ethnicity attribute" in text
    assert "| race/ethnicity attribute | none declared |" in text
    assert "| audit date | not set (governance.model_card.audit_date) |" in text
    assert "| next audit due | unknown: no audit date |" in text
    assert ("| distribution date of the tool | not set "
            "(governance.model_card.distribution_date) |") in text
    assert "*sex (attribute sex; 0 row(s) in an unknown category)*" in text


def test_a_favourable_label_0_is_named_in_every_rate(specs):
    spec = specs["adult"].model_copy(update={"target": TargetSpec(
        column="income", positive="<=50K", favourable_means="is eligible",
        unfavourable_means="is not eligible")})
    lab = card_words.labels(spec)
    assert lab.fav == '"<=50K" (is eligible)' and lab.unfav == '">50K" (is not eligible)'
    terms = dict(card_words.glossary(lab, 0.5))
    assert terms["selection rate"].endswith('the favourable label "<=50K"')
    fpr = terms["FPR (false positive rate)"]
    assert 'true label is ">50K", the share the model gives "<=50K" anyway' in fpr
    assert 'The favourable label is "<=50K" (is eligible)' in card_words.target_sentence(lab)
