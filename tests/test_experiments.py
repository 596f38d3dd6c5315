"""Real DVC experiments in temporary git repos: determinism across clones, exp run, sweeps."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, clone_built, copy_repo, make_fast, run

DVC = str(VENV_BIN / "dvc")
pytestmark = pytest.mark.slow

OUTPUTS = [
    "artifacts/split/train.parquet", "artifacts/split/test.parquet", "artifacts/model.pkl",
    "metrics/performance.json", "metrics/fairness.json", "reports/fairness.json",
    "reports/scores.parquet", "reports/train.json", "plots/roc_test.json",
    "plots/selection_rate_test.json", "metrics/governance.json",
]
# reports/governance.json and the model card record the git commit, which differs between the
# two test clones by construction (each is committed anew), so they are compared without it.
IDENTITY_FREE = ["reports/governance.json", "reports/model_card.md"]


def _digests(repo: Path) -> dict[str, str]:
    return {p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in OUTPUTS}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, built) -> Path:
    return make_fast(clone_built(built, tmp_path_factory.mktemp("exp") / "repo"))


def test_same_config_and_seed_give_identical_bytes_in_two_clones(built, tmp_path):
    other = copy_repo(tmp_path / "clone2")
    run([DVC, "repro", "governance"], other)
    a, b = _digests(built), _digests(other)
    differ = [p for p in OUTPUTS if a[p] != b[p]]
    assert not differ, f"outputs differ between clones: {differ}"
    for rel in IDENTITY_FREE:
        texts = [re.sub(r"\b[0-9a-f]{40}\b", "<commit>", (repo / rel).read_text())
                 for repo in (built, other)]
        assert texts[0] == texts[1], f"{rel} differs between clones beyond the commit"


def _exp_show(repo: Path) -> list[dict]:
    """Flatten `dvc exp show --json` into one record per experiment."""
    data = json.loads(run([DVC, "exp", "show", "--json", "--no-pager"], repo).stdout)
    rows = []
    for commit in data:
        for exp in [commit, *[e for r in commit.get("experiments") or [] for e in r["revs"]]]:
            d = exp.get("data") or {}
            params = d.get("params", {}).get("params.yaml", {}).get("data", {})
            metrics = {k: v.get("data", {}) for k, v in (d.get("metrics") or {}).items()}
            rows.append({"name": exp.get("name") or exp.get("rev"), "params": params,
                         "metrics": metrics})
    return rows


def test_mitigation_none_experiment_is_rejected_naming_sex(baseline):
    mitigated = json.loads((baseline / "metrics" / "fairness.json").read_text())
    validated = json.loads((baseline / "reports" / "governance.json").read_text())
    assert validated["verdict"] == "VALIDATED", validated["reasons"]
    out = run([DVC, "exp", "run", "-S", "mitigation=none", "governance", "--name",
               "no-mitigation"], baseline)
    assert "Running stage 'train'" in out.stdout
    rejected = json.loads((baseline / "reports" / "governance.json").read_text())
    assert rejected["verdict"] == "REJECTED"
    [reason] = [r for r in rejected["reasons"] if "disparate_impact_ratio" in r]
    ratio = rejected["gates"][0]["value"]
    assert "sex" in reason and f"{ratio:.4g}" in reason and ratio < 0.8
    rows = {r["name"]: r for r in _exp_show(baseline)}
    exp = rows["no-mitigation"]
    assert exp["params"]["mitigation"]["name"] == "none"
    unmitigated = exp["metrics"]["metrics/fairness.json"]["test"]["sex"]["dir"]
    assert unmitigated < 0.8 <= mitigated["test"]["sex"]["dir"]
    assert exp["metrics"]["metrics/governance.json"]["verdict"] == "REJECTED"


def test_queued_sweep_shows_four_experiments(baseline):
    run([DVC, "exp", "run", "--queue", "-S", "model=logreg,hgb", "-S", "seed=1,2",
         "-S", "metrics.n_boot=10", "metrics"], baseline)
    run([DVC, "queue", "start", "-j", "2"], baseline)
    try:
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline:
            status = run([DVC, "queue", "status"], baseline).stdout
            if not any(s in status for s in ("Queued", "Running")):
                break
            time.sleep(3)
        else:
            pytest.fail(f"queued sweep did not finish:\n{status}")
        assert "Failed" not in status, status
    finally:
        run([DVC, "queue", "stop", "--kill"], baseline, check=False)
    rows = [r for r in _exp_show(baseline)
            if r["params"].get("metrics", {}).get("n_boot") == 10]
    combos = {(r["params"]["model"]["name"], r["params"]["seed"]) for r in rows}
    assert combos == {("logreg", 1), ("logreg", 2), ("hgb", 1), ("hgb", 2)}
    for r in rows:
        test_perf = r["metrics"]["metrics/performance.json"]["test"]
        assert 0.5 < test_perf["roc_auc"] <= 1
        assert r["metrics"]["metrics/fairness.json"]["test"]["sex"]["dir"] is not None
    table = run([DVC, "exp", "show", "--no-pager", "--csv"], baseline).stdout
    header = table.splitlines()[0].split(",")
    for column in ("model.name", "model.C", "model.learning_rate", "test.roc_auc",
                   "test.sex.dir"):
        assert column in header, f"{column} missing from dvc exp show"
