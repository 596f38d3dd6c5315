"""`python -m pipeline.scaffold`: a draft dataset file from the data, and its refusals.

Each case runs the command's entry point (`main`, in-process: the imports would cost more than
the work) in a temporary folder laid out like the repo (conf/data, data/), so what is written,
printed and refused is what a user sees. tests/test_byo_dataset.py runs the real command and
the pipeline on a draft."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline import scaffold as scaffold_cli
from pipeline.config.dataset import DatasetSpec
from tests import synthetic_people


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def scaffold(cwd: Path, *args: str) -> Result:
    out, err, here = io.StringIO(), io.StringIO(), Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = scaffold_cli.main(list(args))
    finally:
        os.chdir(here)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    root = tmp_path_factory.mktemp("byo")
    (root / "conf" / "data").mkdir(parents=True)
    canaries = synthetic_people.write(root / "data" / "people" / "people.csv", rows=600)
    return root, canaries


@pytest.fixture(scope="module")
def drafted(people) -> tuple[Path, dict, Result]:
    root, _ = people
    proc = scaffold(root, "data/people/people.csv", "--target", "two_year_recid",
                    "--favourable", "0")
    assert proc.returncode == 0, proc.stderr
    return root, yaml.safe_load((root / "conf" / "data" / "people.yaml").read_text()), proc


def test_the_draft_validates_and_declares_what_the_file_holds(drafted):
    root, doc, _ = drafted
    text = (root / "conf" / "data" / "people.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    spec = DatasetSpec.model_validate(doc["data"])
    cols = spec.columns
    # PII by header, never a feature, drafted drop with a reason.
    for c in ("first", "last", "dob", "case_number"):
        assert cols[c].pii == "drop" and c not in spec.features
    assert "# PII: its header names personal data" in text
    # The repeated header is named explicitly, in file order.
    assert spec.source.names[11:13] == ["c_jail_days", "c_jail_days_2"]
    # Types as users have them: a 0/1 int target, a yes/no bool, free text with an encoder.
    assert cols["two_year_recid"].categories == ["0", "1"] and spec.target.positive == "0"
    assert cols["employed"].type == "bool" and "employed" in spec.features
    assert cols["charge_desc"].text is not None and "charge_desc" in spec.features
    assert cols["sex"].categories == ["Female", "Male"]
    # Observed ranges, rounded outward (never narrower than the data).
    with (root / "data" / "people" / "people.csv").open() as fh:
        ages = [int(r[6]) for r in list(csv.reader(fh))[1:]]
    assert cols["age"].min <= min(ages) and cols["age"].max >= max(ages)
    # Sensitive candidates, age binned; the first one's four-fifths rule blocks.
    assert spec.sensitive["sex"].column == "sex" and spec.sensitive["race"].column == "race"
    assert spec.sensitive["age_group"].bins == [40]
    gates = doc["governance"]["fairness"]
    assert gates[0] == {"metric": "disparate_impact_ratio", "min": 0.8, "attributes": ["sex"]}
    assert all(g.get("enforcement") == "warn" for g in gates[1:])


def test_leakage_is_flagged_and_left_out(drafted):
    root, doc, proc = drafted
    assert "decile_score" not in doc["data"]["features"]
    assert "LEAKAGE? on its own it predicts the target" in (
        root / "conf" / "data" / "people.yaml").read_text()
    assert "possible leakage" in proc.stdout and "decile_score" in proc.stdout


def test_no_personal_value_reaches_the_draft_or_the_console(people, drafted):
    root, canaries = people
    _, _, proc = drafted
    text = (root / "conf" / "data" / "people.yaml").read_text() + proc.stdout + proc.stderr
    leaked = [v for p in canaries for v in p.values() if v in text]
    assert not leaked, leaked[:5]


def test_value_detectors_flag_pii_whatever_the_header(tmp_path):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    f = tmp_path / "data" / "t" / "t.csv"
    f.parent.mkdir(parents=True)
    rows = [f"x{i}@example.org,{['Male', 'Female'][i % 2]},{i % 5},{i % 3 % 2}"
            for i in range(60)]
    f.write_text("contact,sex,visits,y\n" + "\n".join(rows) + "\n")
    proc = scaffold(tmp_path, "data/t/t.csv", "--target", "y", "--favourable", "1")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "conf" / "data" / "t.yaml").read_text()
    assert '"contact": {type: string, pii: drop}' in text and "EMAIL" in text
    assert "example.org" not in text + proc.stdout


def test_identifiers_missing_tokens_and_missing_values(tmp_path):
    """A word-less value different on every row is an identifier (PII); `?` in an otherwise
    numeric column is a missing-value token; a column with missing values keeps them."""
    rows = [f"R{i * 7919 % 10007:05d}X,{['Male', 'Female'][i % 2]},"
            f"{'?' if i % 9 == 0 else i % 40},{'' if i % 11 == 0 else ['a', 'b'][i % 2]},"
            f"{i % 3 % 2}" for i in range(80)]
    _toy(tmp_path, "ref,sex,hours,grade,y\n" + "\n".join(rows) + "\n")
    proc = scaffold(tmp_path, "data/t/t.csv", "--target", "y", "--favourable", "1")
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "conf" / "data" / "t.yaml").read_text()
    doc = yaml.safe_load(text)
    spec = DatasetSpec.model_validate(doc["data"])
    assert spec.columns["ref"].pii == "drop" and "an identifier" in text
    assert spec.source.na_values == ["?"] and spec.columns["hours"].type == "int"
    assert spec.columns["hours"].missing == "keep" and spec.columns["grade"].missing == "keep"
    assert "# favourable_means: REVIEW" in text and "R00000X" not in text + proc.stdout


def _toy(tmp_path: Path, body: str, name: str = "t.csv") -> Path:
    (tmp_path / "conf" / "data").mkdir(parents=True, exist_ok=True)
    f = tmp_path / "data" / "t" / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(body)
    return f


@pytest.mark.parametrize(("body", "args", "needle"), [
    ("", ["--target", "y", "--favourable", "1"], "file is empty"),
    ("\x00\x01binary", ["--target", "y", "--favourable", "1"], "not a text file"),
    ("sex,y\nMale,1\nFemale,0\n", ["--target", "z", "--favourable", "1"],
     "--target 'z': not a column"),
    ("sex,y\nMale,1\nFemale,0\n", ["--target", "y", "--favourable", "2"],
     "--favourable '2': never occurs"),
    ("sex,y\nMale,1\nFemale,0\nMale,2\n", ["--target", "y", "--favourable", "1"],
     "3 distinct values"),
    ("sex,y\nMale,1\nFemale,\n", ["--target", "y", "--favourable", "1"], "may not be missing"),
    ("colour,y\nred,1\nblue,0\n", ["--target", "y", "--favourable", "1"],
     "no sensitive attribute found"),
    ("sex,email,y\nMale,a@b.org,1\nFemale,c@d.org,0\n", ["--target", "y", "--favourable", "1"],
     "no column is left to be a feature"),
    ("sex,y\nMale,1\nFemale,0\n", ["--target", "y", "--favourable", "1", "--sensitive", "q"],
     "--sensitive 'q'"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, body, args, needle):
    _toy(tmp_path, body)
    proc = scaffold(tmp_path, "data/t/t.csv", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert list((tmp_path / "conf" / "data").iterdir()) == []


def test_a_file_ingest_would_refuse_as_binary_is_refused_the_same_way(tmp_path):
    """Latin-1 bytes are not UTF-8: the scaffold refuses them with ingest's own check
    (dataset.read.looks_binary), not with a draft ingest could never read."""
    f = _toy(tmp_path, "")
    f.write_bytes(b"sex,y\nM\xe9le,1\nFemale,0\nMale,1\nFemale,0\n")
    proc = scaffold(tmp_path, "data/t/t.csv", "--target", "y", "--favourable", "1")
    assert proc.returncode == 2 and "not a text file" in proc.stderr, proc.stderr
    assert list((tmp_path / "conf" / "data").iterdir()) == []


def test_missing_file_and_a_file_outside_data_are_refused(tmp_path):
    (tmp_path / "conf" / "data").mkdir(parents=True)
    proc = scaffold(tmp_path, "data/t/nope.csv", "--target", "y", "--favourable", "1")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    (tmp_path / "elsewhere.csv").write_text("sex,y\nMale,1\nFemale,0\n")
    proc = scaffold(tmp_path, "elsewhere.csv", "--target", "y", "--favourable", "1")
    assert proc.returncode == 2 and "put the file under data/" in proc.stderr


def test_an_existing_draft_is_kept_unless_forced(tmp_path):
    _toy(tmp_path, "sex,n,y\n" + "Male,3,1\nFemale,4,0\nMale,4,0\n" * 5)
    out = tmp_path / "conf" / "data" / "t.yaml"
    out.write_text("# mine\n")
    proc = scaffold(tmp_path, "data/t/t.csv", "--target", "y", "--favourable", "1")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert out.read_text() == "# mine\n"
    proc = scaffold(tmp_path, "data/t/t.csv", "--target", "y", "--favourable", "1", "--force")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(out.read_text())["data"]["target"]["positive"] == 1
