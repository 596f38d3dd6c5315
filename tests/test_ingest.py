"""ingest on real Adult/German data and on every kind of bad data (real entry point each time)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT, composed, stage

GOOD_ROWS = [
    "34,red,0.5,a,yes",
    "45,green,0.25,b,no",
    "29,blue,0.75,a,no",
    "51,red,0.1,b,yes",
]


def toy_params() -> dict:
    raw = composed()
    raw["data"] = {
        "name": "toy",
        "source": {"dir": "data/toy", "files": ["toy.csv"], "format": "csv", "header": False},
        "columns": {
            "age": {"type": "int", "min": 18, "max": 99},
            "color": {"type": "category", "categories": ["red", "green", "blue"]},
            "score": {"type": "float", "min": 0, "max": 1},
            "group": {"type": "category", "categories": ["a", "b"]},
            "label": {"type": "category", "categories": ["yes", "no"]},
        },
        "target": {"column": "label", "positive": "yes"},
        "features": ["age", "color", "score"],
        "sensitive": {"group": {"column": "group"}},
    }
    # Every section that names a sensitive attribute must name the toy's one.
    raw["split"]["stratify_by"] = ["group"]
    raw["mitigation"]["attribute"] = "group"
    raw["metrics"]["intersections"] = []
    for gate in raw["governance"]["fairness"]:
        gate["attributes"] = ["group"]
    return raw


def ingest_toy(tmp_path, rows: list[str] | bytes, params: dict | None = None):
    (tmp_path / "data" / "toy").mkdir(parents=True, exist_ok=True)
    target = tmp_path / "data" / "toy" / "toy.csv"
    if isinstance(rows, bytes):
        target.write_bytes(rows)
    else:
        target.write_text("".join(r + "\n" for r in rows))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params or toy_params(), sort_keys=False))
    return stage(tmp_path, "ingest", "--dvc")


def assert_rejected(proc, tmp_path, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    written = [p for p in (tmp_path / "artifacts", tmp_path / "reports") if p.exists()]
    assert not any(any(d.rglob("*")) for d in written), "a failed stage left files behind"


def test_toy_dataset_ingests(tmp_path):
    proc = ingest_toy(tmp_path, GOOD_ROWS)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(tmp_path / "artifacts" / "ingest.parquet")
    assert len(df) == 4 and str(df["age"].dtype) == "int64"
    assert list(df["color"].cat.categories) == ["red", "green", "blue"]
    report = json.loads((tmp_path / "reports" / "ingest.json").read_text())
    assert report["rows_in"] == 4 and report["rows_out"] == 4


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        pytest.param(["34,red,0.5,a"] * 3, ["rows have 4 fields", "5 columns", "missing"],
                     id="missing-column"),
        pytest.param(["34,red,0.5,a,yes,extra"] * 3, ["rows have 6 fields", "extra"],
                     id="extra-column"),
        pytest.param([*GOOD_ROWS, "old,red,0.5,a,yes"],
                     ["column 'age'", "type int", "toy.csv row 5", "'old'"], id="wrong-type"),
        pytest.param([*GOOD_ROWS, "150,red,0.5,a,yes"],
                     ["column 'age'", "max 99", "toy.csv row 5"], id="out-of-range"),
        pytest.param([*GOOD_ROWS, "34,purple,0.5,a,yes"],
                     ["column 'color'", "unknown category", "'purple'"], id="unknown-category"),
        pytest.param([*GOOD_ROWS, "34,red,0.5,a,"],
                     ["column 'label'", "not missing", "row 5"], id="nan-target"),
        pytest.param([*GOOD_ROWS, "34,red,0.5,,yes"],
                     ["column 'group'", "not missing", "row 5"], id="nan-sensitive"),
        pytest.param([*GOOD_ROWS, "34,red,inf,a,yes"],
                     ["column 'score'", "type float"], id="infinite-float"),
        pytest.param([], ["file is empty"], id="empty-file"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, ["not a text file"],
                     id="binary-file"),
    ],
)
def test_bad_data_is_rejected_with_a_clear_message(tmp_path, rows, needles):
    proc = ingest_toy(tmp_path, rows)
    assert_rejected(proc, tmp_path, "toy", *needles)


@pytest.mark.parametrize(
    ("age", "score", "column", "value"),
    [
        # past int64: was cast to -9223372036854775808 after passing `min: 1`
        pytest.param("12345678901234567890123", "0.5", "age", "'12345678901234567890123'",
                     id="int-past-int64"),
        pytest.param("-99999999999999999999999", "0.5", "age", "'-99999999999999999999999'",
                     id="negative-int-past-int64"),
        pytest.param("9007199254740993", "0.5", "age", "'9007199254740993'",
                     id="int-float64-would-round"),
        pytest.param("34.5", "0.5", "age", "'34.5'", id="int-not-whole"),
        pytest.param("1e400", "0.5", "age", "'1e400'", id="int-overflows-to-inf"),
        pytest.param("34", "1e400", "score", "'1e400'", id="float-overflows-to-inf"),
    ],
)
def test_numbers_beyond_their_type_are_rejected(tmp_path, age, score, column, value):
    params = toy_params()
    params["data"]["columns"]["age"] = {"type": "int", "min": 1}  # no max: only the type stops it
    params["data"]["columns"]["score"] = {"type": "float", "min": 0}
    proc = ingest_toy(tmp_path, [*GOOD_ROWS, f"{age},red,{score},a,yes"], params)
    assert_rejected(proc, tmp_path, f"column '{column}'", "toy.csv row 5", value,
                    "type int (a whole number" if column == "age" else "type float (a finite")


def test_integers_that_fit_and_whole_floats_are_kept(tmp_path):
    params = toy_params()
    params["data"]["columns"]["age"] = {"type": "int", "min": 1}
    proc = ingest_toy(tmp_path, [*GOOD_ROWS, "9007199254740991,red,0.5,a,yes",
                                 "40.0,red,0.5,a,yes"], params)
    assert proc.returncode == 0, proc.stderr
    ages = pd.read_parquet(tmp_path / "artifacts" / "ingest.parquet")["age"].tolist()
    assert ages[-2:] == [2**53 - 1, 40]


def test_all_problems_reported_at_once(tmp_path):
    proc = ingest_toy(tmp_path, [*GOOD_ROWS, "150,red,0.5,a,yes", "34,purple,0.5,a,yes"])
    assert_rejected(proc, tmp_path, "2 problem(s)", "column 'age'", "column 'color'")


def test_missing_file(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(toy_params(), sort_keys=False))
    proc = stage(tmp_path, "ingest", "--dvc")
    assert_rejected(proc, tmp_path, "toy.csv: file not found", "dvc pull")


def test_header_file_with_extra_column(tmp_path):
    params = toy_params()
    params["data"]["source"]["header"] = True
    proc = ingest_toy(tmp_path, ["age,color,score,group,label,ssn", "34,red,0.5,a,yes,x"], params)
    assert_rejected(proc, tmp_path, "extra column(s) ['ssn']")


def test_drop_policy_counts_dropped_rows(tmp_path):
    params = toy_params()
    params["data"]["columns"]["color"]["missing"] = "drop"
    proc = ingest_toy(tmp_path, [*GOOD_ROWS, "34,,0.5,a,yes", "35,,0.5,b,no"], params)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "reports" / "ingest.json").read_text())
    assert report["rows_in"] == 6 and report["rows_out"] == 4
    assert report["rows_dropped"] == {"total": 2, "by_reason": {"missing color": 2}}
    assert report["missing_values"]["color"] == 2


def test_adult_quirks_are_handled(pulled_data, tmp_path):
    proc = stage(ROOT, "ingest", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(tmp_path / "artifacts" / "ingest.parquet")
    report = json.loads((tmp_path / "reports" / "ingest.json").read_text())
    # 32,561 + 16,281 rows; '?' rows dropped; test labels lose their trailing '.'
    assert report["rows_in"] == 48842
    assert report["rows_out"] == len(df) == 45222
    assert set(df["income"].unique()) == {"<=50K", ">50K"}
    assert df["workclass"].notna().all()
    assert not df["native-country"].astype(str).str.startswith(" ").any()
    assert report["rows_dropped"]["by_reason"]["missing workclass"] == 2799


def test_german_derived_sensitive_attributes(pulled_data, tmp_path):
    proc = stage(ROOT, "ingest", "data=german", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(tmp_path / "artifacts" / "ingest.parquet")
    assert len(df) == 1000
    assert set(df["credit"].unique()) == {"good", "bad"}
    # age → under 25 / 25 and over; the bin edge 25 belongs to the upper group
    assert (df.loc[df["age"] == 25, "age_group"] == "25_and_over").all()
    assert (df.loc[df["age"] == 24, "age_group"] == "under_25").all()
    # personal status code → sex
    assert (df.loc[df["personal_status"] == "A92", "sex"] == "female").all()
    assert (df.loc[df["personal_status"] == "A93", "sex"] == "male").all()
