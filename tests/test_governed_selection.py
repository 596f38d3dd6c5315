"""Governed selection through the real entry points (`dvc exp run`, `dvc queue start -j 2`,
`python -m pipeline.verdict`, `python -m pipeline.promote`, `python -m pipeline.champion`) on
a real embedded store: every verdict is kept as an experiment, the promotion policy picks the
champion whatever the finishing order, and a person can overrule it only between VALIDATED
versions, on the record."""

from __future__ import annotations

import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN, clone_built, run, wait_for_queue

# Two queued sweeps in the module fixture: minutes, more than the default per-test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
DVC = str(VENV_BIN / "dvc")
MODEL = "govpipe-adult"
FAST = ("-S", "metrics.n_boot=20")  # not policy: the comparisons are under test
SEEDS = ("1", "2", "3")


def client(repo: Path, db: str = "mlflow.db"):
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / db}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(repo: Path, db: str = "mlflow.db") -> dict[str, object]:
    found = client(repo, db).search_model_versions(f"name='{MODEL}'")
    shas = Counter(v.tags["model_sha256"] for v in found)
    assert all(n == 1 for n in shas.values()), f"duplicate versions for a sha: {shas}"
    return {str(v.version): v for v in found}


def champion(repo: Path, db: str = "mlflow.db"):
    return client(repo, db).get_model_version_by_alias(MODEL, "champion")


def exp_rows(repo: Path) -> dict[str, dict]:
    shown = json.loads(run([DVC, "exp", "show", "--json"], repo).stdout)
    rows = {}
    for commit in shown:
        for e in [commit, *[x for r in commit.get("experiments") or [] for x in r["revs"]]]:
            d = e.get("data") or {}
            rows[e.get("name") or e.get("rev")] = {
                "params": d.get("params", {}).get("params.yaml", {}).get("data", {}),
                "metrics": {k: v.get("data", {}) for k, v in (d.get("metrics") or {}).items()},
            }
    return rows


@pytest.fixture(scope="module")
def swept(tmp_path_factory, built) -> Path:
    """Version 1 (seed 42) is champion; then one queued sweep, two jobs at a time: seeds 1, 2,
    3 and an unmitigated (REJECTED) model. The same three seeds are queued again, in reverse
    order, against a copy of the store as it was before the sweep (mlflow-b.db); mlflow-c.db,
    another copy, is for the oversight tests."""
    repo = clone_built(built, tmp_path_factory.mktemp("selection") / "repo")
    run([DVC, "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "registered"], repo)
    for copy in ("mlflow-b.db", "mlflow-c.db"):
        shutil.copy2(repo / "mlflow.db", repo / copy)
    run([DVC, "exp", "run", "--queue", "-S", f"seed={','.join(SEEDS)}", *FAST], repo)
    run([DVC, "exp", "run", "--queue", "-S", "mitigation=none", *FAST, "--name", "unfair"],
        repo)
    run([DVC, "queue", "start", "-j", "2"], repo)
    wait_for_queue(repo)
    run([DVC, "exp", "run", "--queue", "-S", f"seed={','.join(reversed(SEEDS))}", *FAST,
         "-S", "registry.tracking_uri=sqlite:///mlflow-b.db"], repo)
    run([DVC, "queue", "start", "-j", "2"], repo)
    wait_for_queue(repo)
    return repo


def test_a_rejected_experiment_is_kept_with_its_failing_gates_and_registers_nothing(swept):
    rows = exp_rows(swept)
    unfair = rows["unfair"]["metrics"]
    assert unfair["metrics/governance.json"]["verdict"] == "REJECTED"
    failing = unfair["metrics/governance.json"]["failed_gates"].split(",")
    assert "dir:sex" in failing, failing
    assert unfair["metrics/promotion.json"] == {  # (DVC drops the list `policy_overrides`)
        "policy_verdict": "REJECTED", "policy_failed": ",".join(sorted(failing)),
        "eligible": 0, "registered": 0}
    assert all(v.tags["mitigation"] != "none" for v in versions(swept).values())
    seeds = {r["params"].get("seed") for r in rows.values()}
    assert {1, 2, 3} <= seeds  # the VALIDATED ones are listed too


def test_verdict_fails_ci_on_rejected_and_passes_on_validated(swept):
    try:
        run([DVC, "exp", "apply", "unfair"], swept)
        proc = run([sys.executable, "-m", "pipeline.verdict"], swept, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "REJECTED" in proc.stderr and "dir:sex" in proc.stderr
        assert "disparate_impact_ratio on sex" in proc.stderr
    finally:
        restore(swept)
    ok = run([sys.executable, "-m", "pipeline.verdict"], swept, check=False)
    assert ok.returncode == 0 and "VALIDATED" in ok.stdout, ok.stderr


def restore(repo: Path) -> None:
    run(["git", "reset", "-q", "--hard"], repo)
    run([DVC, "checkout", "-f"], repo)


def test_each_candidate_was_compared_with_the_champion_on_rows_it_never_saw(swept, tmp_path):
    """Seeds split the data differently, so most of a candidate's test rows trained version 1:
    the comparison leaves them out and scores both models, as the metrics stage does, on the
    rest. Checked here from the experiment's own files, the registry's seen-rows artefact and
    both models."""
    import numpy as np
    import pandas as pd
    from mlflow.artifacts import download_artifacts

    from pipeline.config import validate
    from pipeline.config.load import load_yaml
    from pipeline.evaluation import seen_rows
    from pipeline.evaluation.split_scores import score_split
    from pipeline.model import load

    vs = versions(swept)
    assert len(vs) == 1 + len(SEEDS)
    train = pd.read_parquet(swept / "artifacts" / "split" / "train.parquet")  # version 1's
    champion_model = load(swept / "artifacts" / "model.pkl")
    seen = Path(download_artifacts(
        f"runs:/{vs['1'].run_id}/{seen_rows.ARTIFACT}", dst_path=str(tmp_path),
        tracking_uri=f"sqlite:///{swept / 'mlflow.db'}")).read_bytes()
    with np.load(__import__("io").BytesIO(seen)) as z:
        columns = [str(c) for c in z["columns"]]
        assert set(z["hashes"]) == set(seen_rows.hashes(train, columns))
    try:
        for number, v in sorted(vs.items()):
            if number == "1":
                continue
            comparison = json.loads(v.tags["promotion_comparison"])
            assert comparison["anchor_version"] == "1" and comparison["rescored"] is True
            assert v.tags["promotion_passed"] == str(comparison["passed"]).lower()
            run([DVC, "exp", "apply", v.tags["dvc_exp_name"]], swept)
            cfg = validate(load_yaml(swept / "params.yaml"))
            test = pd.read_parquet(swept / "artifacts" / "split" / "test.parquet")
            unseen = ~np.isin(seen_rows.hashes(test, columns), seen_rows.hashes(train, columns))
            assert comparison["rows"] == int(unseen.sum())
            assert comparison["rows_seen_by_anchor"] == int((~unseen).sum()) > len(test) // 2
            for key, model in (("candidate", load(swept / "artifacts" / "model.pkl")),
                               ("champion", champion_model)):
                s = score_split(model, test[unseen], cfg.data, cfg.metrics, threshold=0.5,
                                seed=cfg.seed, n_boot=0)
                assert comparison[key]["value"] == s.performance["bal_acc"], key
            restore(swept)
    finally:
        restore(swept)


def _outcome(repo: Path, db: str) -> tuple[str, dict[str, str]]:
    """(the champion's model sha, {candidate sha: promotion_passed}) of one store."""
    vs = versions(repo, db).values()
    return (champion(repo, db).tags["model_sha256"],
            {v.tags["model_sha256"]: v.tags.get("promotion_passed") for v in vs})


def test_the_sweep_ends_with_the_same_champion_in_either_order(swept):
    first, second = _outcome(swept, "mlflow.db"), _outcome(swept, "mlflow-b.db")
    assert first == second
    vs = versions(swept)
    passed = [v for v in vs.values() if v.tags.get("promotion_passed") == "true"
              and str(v.version) != "1"]  # version 1 passed with no champion to beat
    expected = max(passed, key=lambda v: (float(v.tags["promotion_margin"]),
                                          [-ord(ch) for ch in v.tags["model_sha256"]]),
                   default=vs["1"])
    assert str(champion(swept).version) == str(expected.version)
    for v in vs.values():
        if str(v.version) != str(expected.version):
            assert "champion" not in v.aliases
    history = run([sys.executable, "-m", "pipeline.champion"], swept).stdout
    assert "by policy" in history


def promote(repo: Path, *args: str, db: str = "mlflow.db", actor: str = "Ada Auditor"):
    return run([sys.executable, "-m", "pipeline.promote", *args,
                f"registry.tracking_uri=sqlite:///{db}"], repo, check=False,
               GOVPIPE_ACTOR=actor)


def test_a_person_promotes_a_validated_challenger_and_rolls_back_on_the_record(swept):
    before = str(champion(swept).version)
    other = next(n for n in sorted(versions(swept)) if n != before)
    done = promote(swept, other, "--reason", "Q3 review: prefer the seed-averaged model")
    assert done.returncode == 0, done.stderr
    now = champion(swept)
    assert str(now.version) == other
    assert now.tags["promoted_by"] == "Ada Auditor" and now.tags["promoted"] == "true"
    assert now.tags["promotion_reason"].startswith("Q3 review")
    back = promote(swept, "--rollback", "--reason", "complaint from the ombudsman")
    assert back.returncode == 0, back.stderr
    assert str(champion(swept).version) == before
    assert client(swept).get_model_version(MODEL, other).tags["demoted_by"] == "Ada Auditor"
    shown = run([sys.executable, "-m", "pipeline.champion"], swept).stdout
    assert f"version {before} -> {other}  by person:Ada Auditor: Q3 review" in shown, shown
    assert f"version {other} -> {before}  by person:Ada Auditor: rollback from version " \
           f"{other}: complaint from the ombudsman" in shown, shown
    same = promote(swept, before, "--reason", "again")
    assert same.returncode == 0 and "already the champion" in same.stdout


def test_oversight_refuses_what_may_not_be_champion(swept):
    reject = run([DVC, "exp", "run", "--temp", "-S", "mitigation=none", *FAST,
                  "-S", "governance.enforcement=warn",
                  "-S", "registry.tracking_uri=sqlite:///mlflow-c.db"], swept)
    assert reject.returncode == 0
    c_versions = versions(swept, "mlflow-c.db")
    rejected = next(n for n, v in c_versions.items() if v.tags["verdict"] == "REJECTED")
    cases = [
        ((rejected, "--reason", "x"), "mlflow-c.db", "verdict is 'REJECTED'"),
        (("99", "--reason", "x"), "mlflow-c.db", "version 99 of 'govpipe-adult' does not exist"),
        (("models:/govpipe-german/1", "--reason", "x"), "mlflow-c.db",
         "belongs to model 'govpipe-german'"),
        (("--rollback", "--reason", "x"), "mlflow-c.db", "no previous champion to roll back to"),
        (("1",), "mlflow-c.db", "--reason is required"),
        (("1", "--rollback", "--reason", "x"), "mlflow-c.db", "not both"),
        (("one", "--reason", "x"), "mlflow-c.db", "expected a number"),
    ]
    for args, db, message in cases:
        proc = promote(swept, *args, db=db)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert str(champion(swept, db).version) == "1"
    # a version whose stored files were changed after registration
    target = c_versions[rejected]
    c = client(swept, "mlflow-c.db")
    c.set_model_version_tag(MODEL, target.version, "verdict", "VALIDATED")  # a forged tag ...
    c.set_model_version_tag(MODEL, target.version, "policy_overrides", "")
    forged = promote(swept, rejected, "--reason", "x", db="mlflow-c.db")
    assert forged.returncode == 2, forged.stdout  # ... still judged again: REJECTED under HEAD
    assert "REJECTED under the policy committed now" in forged.stderr, forged.stderr


def test_make_exp_show_lists_verdicts_and_failing_gates(swept):
    """`make exp-show` (pipeline/exp_show.py) on the swept repo: one line per experiment with
    its dataset's own attribute columns, verdict and failing gates, in 120 columns."""
    from tests.conftest import make

    out = make(swept, "exp-show").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["experiment", "dataset", "model", "mitigation", "bal_acc",
                                "dir:sex", "dir:race", "verdict", "failed_gates"], lines[0]
    assert max(len(ln) for ln in lines) <= 120, out
    [unfair] = [ln for ln in lines if "unfair" in ln]
    assert "REJECTED" in unfair and "dir:sex" in unfair and "adult" in unfair, unfair
