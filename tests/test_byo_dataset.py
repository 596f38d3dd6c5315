"""README "Bringing your own dataset", step by step, on a dataset that holds personal data.

The synthetic file (tests/synthetic_people.py: Faker names, dates of birth, case numbers, a
repeated header, a 0/1 target, free text) goes through the README's commands exactly: the
scaffold, `dvc add data && dvc push`, `git add -A && git commit`, `dvc exp run -S data=NAME`,
`make verdict`. Then: nothing personal is staged for git or in any commit (experiment refs
included); the canaries are in no output, log, report or the MLflow store; the draft needed no
edit to reach a verdict.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests import synthetic_people
from tests.conftest import VENV_BIN, copy_repo, make, run

pytestmark = pytest.mark.slow
DVC = str(VENV_BIN / "dvc")
PY = str(VENV_BIN / "python")
SALT = "test-salt-not-a-secret"
PII_COLUMNS = {"first", "last", "dob", "case_number"}


def _needles(people: list[dict[str, str]]) -> set[str]:
    # Case numbers are unique strings; dates of birth and "First Last" only ever sit together
    # in the raw file (a first name alone may well be an English word).
    return ({p["case_number"] for p in people} | {p["dob"] for p in people}
            | {f"{p['first']},{p['last']}" for p in people})


def _scan(repo: Path, raw_md5: set[str], needles: set[str]) -> tuple[int, list[str]]:
    """(files checked, 'path: needle' leaks) over every file but the raw input's own copies."""
    checked, leaks = 0, []
    for path in repo.rglob("*"):
        rel = path.relative_to(repo)
        if not path.is_file() or rel.parts[0] in ("data", ".git", ".venv") or (
                "__pycache__" in rel.parts):
            continue
        if rel.parts[0] in (".dvc", "dvc-remote") and rel.parts[-2] + rel.parts[-1] in raw_md5:
            continue  # DVC's content-addressed copy of the raw input (git-ignored)
        if path.suffix == ".parquet":
            text = pd.read_parquet(path).astype(str).to_csv(index=False)
        else:
            text = path.read_bytes().decode("utf-8", errors="replace")
        checked += 1
        leaks += [f"{rel}: {n}" for n in needles if n in text][:2]
    return checked, leaks


def test_readme_steps_with_personal_data_reach_a_verdict_and_keep_it_out_of_git(tmp_path,
                                                                                pulled_data):
    repo = copy_repo(tmp_path / "repo")
    people = synthetic_people.write(repo / "data" / "people" / "people.csv", rows=2000)
    needles = _needles(people)
    env = {"GOVPIPE_PII_SALT": SALT}
    logs = ""

    # 1-2. The file under data/people/, then the scaffold: one command, one file to review.
    proc = run([PY, "-m", "pipeline.scaffold", "data/people/people.csv",
                "--target", "two_year_recid", "--favourable", "0"], repo)
    logs += proc.stdout + proc.stderr
    draft = (repo / "conf" / "data" / "people.yaml").read_text()
    assert draft.count("pii: drop") == len(PII_COLUMNS)
    # 3. Track and push the data, commit: the README's `git add -A` stages no personal data.
    for cmd in (["dvc", "add", "data"], ["dvc", "push"]):
        proc = run([DVC, *cmd[1:]], repo)
        logs += proc.stdout + proc.stderr
    run(["git", "add", "-A"], repo)
    staged = set(run(["git", "diff", "--cached", "--name-only"], repo).stdout.split())
    assert staged == {"conf/data/people.yaml", "data.dvc"}, staged
    pushed = [p for p in (repo / "dvc-remote").rglob("*") if p.is_file()]
    assert run(["git", "status", "--porcelain", "--ignored", "dvc-remote"], repo).stdout.strip()
    run(["git", "commit", "-qm", "people dataset"], repo)

    # 4. The experiment, with the draft as written.
    proc = run([DVC, "exp", "run", "-S", "data=people"], repo, timeout=900, **env)
    logs += proc.stdout + proc.stderr
    verdict = make(repo, "verdict", check=False)
    logs += verdict.stdout + verdict.stderr
    gov = json.loads((repo / "reports" / "governance.json").read_text())
    assert gov["verdict"] in ("VALIDATED", "REJECTED")
    assert verdict.returncode == (0 if gov["verdict"] == "VALIDATED" else 1), verdict.stderr
    assert gov["verdict"] == "VALIDATED", gov.get("reasons")  # the synthetic signal is strong

    # `make champion data=NAME` finds the dataset's model with no other setting.
    champ = make(repo, "champion", "data=people")
    assert champ.stdout.startswith("govpipe-people@champion -> version 1"), champ.stdout
    logs += champ.stdout + champ.stderr
    shown = make(repo, "exp-show").stdout
    assert "dir:age_group" in shown and "people" in shown and "VALIDATED" in shown, shown
    assert max(len(ln) for ln in shown.splitlines()) <= 120

    # The ingested data has no PII column; the model reads the free text through its encoder.
    clean = pd.read_parquet(repo / "artifacts" / "ingest.parquet")
    assert PII_COLUMNS.isdisjoint(clean.columns) and "c_jail_days_2" in clean.columns
    train = json.loads((repo / "reports" / "train.json").read_text())
    assert "charge_desc" in train["features"] and "decile_score" not in train["features"]

    # Nothing personal anywhere: outputs, reports, the MLflow store, logs, any commit.
    assert not [n for n in needles if n in logs], "a canary reached a log"
    raw_md5 = {hashlib.md5(p.read_bytes()).hexdigest() for p in (repo / "data").rglob("*")
               if p.is_file()}
    checked, leaks = _scan(repo, raw_md5, needles)
    assert checked > 30 and not leaks, leaks[:5]
    assert (repo / "mlflow.db").exists() and pushed
    history = run(["git", "log", "--all", "-p", "--no-color"], repo).stdout
    assert not [n for n in needles if n in history], "a canary reached a commit"
    assert re.search(r"refs/exps", run(["git", "for-each-ref"], repo).stdout)
