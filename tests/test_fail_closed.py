"""Fail closed, tried as an adversary would: every path that once made a REJECTED, tampered or
stale model the champion (or the served model), through the real entry points — `dvc exp
run`, `dvc queue start -j 2`, `python -m pipeline.register`, the MLflow client moving an alias,
a running server. Each test states the attack; afterwards nothing REJECTED, tampered or stale
is champion or served, and the registry holds one version per model sha256."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN, clone_built, env, run, stage, wait_for_queue
from tests.mlflow_server import MlflowServer
from tests.processes import free_port

pytestmark = pytest.mark.slow
DVC = str(VENV_BIN / "dvc")
MODEL = "govpipe-adult"
FAST = ("-S", "metrics.n_boot=20")  # n_boot is not policy; the verdicts are under test


@pytest.fixture(scope="module")
def repo(tmp_path_factory, built) -> Path:
    """The default pipeline run to the end: version 1 of govpipe-adult is the champion."""
    repo = clone_built(built, tmp_path_factory.mktemp("fail-closed") / "repo")
    out = run([DVC, "repro"], repo)
    assert "Running stage 'register'" in out.stdout, out.stdout
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "registered"], repo)
    return repo


def client(repo: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def exp(repo: Path, *sets: str, temp: bool = True, target: str | None = None,
        **extra_env: str) -> subprocess.CompletedProcess:
    args = [DVC, "exp", "run", *(["--temp"] if temp else []), *sets, *FAST]
    return run([*args, *([target] if target else [])], repo, check=False, **extra_env)


def restore(repo: Path) -> None:
    run(["git", "reset", "-q", "--hard"], repo)
    run([DVC, "checkout", "-f"], repo)


def assert_fail_closed(repo: Path, champion: str = "1") -> dict:
    """The champion is `champion`, VALIDATED and promoted; one version per model sha256."""
    c = client(repo)
    mv = c.get_model_version_by_alias(MODEL, "champion")
    assert str(mv.version) == champion, f"champion moved to {mv.version}: {mv.tags}"
    assert mv.tags["verdict"] == "VALIDATED" and mv.tags["promoted"] == "true"
    assert mv.tags["policy_overrides"] == ""
    shas = Counter(v.tags["model_sha256"] for v in c.search_model_versions(f"name='{MODEL}'"))
    assert all(n == 1 for n in shas.values()), f"duplicate versions for a sha: {shas}"
    return {str(v.version): v for v in c.search_model_versions(f"name='{MODEL}'")}


def version_of_alias(repo: Path, alias: str):
    return client(repo).get_model_version_by_alias(MODEL, alias)


# -- 1. one command, overrides only ---------------------------------------------------------------
def test_overrides_cannot_make_the_challenger_alias_the_champion(repo):
    out = exp(repo, "-S", "mitigation=none", "-S", "governance.enforcement=warn",
              "-S", "registry.challenger_alias=champion")
    assert out.returncode != 0
    assert "challenger_alias: must differ from champion_alias" in out.stderr + out.stdout
    assert_fail_closed(repo)


def test_rejected_under_overridden_warn_is_a_tagged_challenger(repo):
    out = exp(repo, "-S", "mitigation=none", "-S", "governance.enforcement=warn")
    assert out.returncode == 0, out.stderr
    versions = assert_fail_closed(repo)
    ch = version_of_alias(repo, "challenger")
    assert ch.tags["verdict"] == "REJECTED" and ch.tags["promoted"] == "false"
    assert "governance.enforcement" in ch.tags["policy_overrides"]
    assert ch.tags["gate.fairness:disparate_impact_ratio:sex"] == "FAIL"
    assert len(versions) >= 2


# -- 2. an edited verdict -------------------------------------------------------------------------
def test_an_edited_verdict_is_refused(repo):
    try:
        out = exp(repo, "-S", "mitigation=none", temp=False)  # REJECTED: kept, not registered
        assert out.returncode == 0 and "REJECTED by governance" in out.stderr + out.stdout
        path = repo / "reports" / "governance.json"
        gov = json.loads(path.read_text())
        assert gov["verdict"] == "REJECTED"
        gov.update(verdict="VALIDATED", reasons=[])
        for g in gov["gates"]:  # a thorough forger edits the gate outcomes too
            g["passed"] = True
        path.write_text(json.dumps(gov))
        for cmd in ([sys.executable, "-m", "pipeline.register", "--dvc"],
                    [DVC, "repro", "-s", "register"]):
            proc = run(cmd, repo, check=False)
            text = proc.stdout + proc.stderr
            assert proc.returncode != 0 and "the report was edited" in text, text
            assert "Traceback" not in text
    finally:
        restore(repo)
    assert_fail_closed(repo)


# -- 3. stale gates -------------------------------------------------------------------------------
def test_gates_judged_under_other_params_are_stale(repo):
    try:
        out = exp(repo, "-S", "mitigation=none", "-S", "governance.fairness=[]", temp=False,
                  target="governance")
        assert out.returncode == 0, out.stderr
        assert json.loads((repo / "reports" / "governance.json").read_text())["verdict"] \
            == "VALIDATED"
        run(["git", "checkout", "params.yaml"], repo)  # the strict gates again
        for cmd in ([DVC, "repro", "-s", "register"],
                    [sys.executable, "-m", "pipeline.register", "--dvc"]):
            proc = run(cmd, repo, check=False)
            text = proc.stdout + proc.stderr
            assert proc.returncode != 0 and "it judged other params" in text, text
            assert "governance" in text
    finally:
        restore(repo)
    assert_fail_closed(repo)


# -- 4. gates are not experiment parameters -------------------------------------------------------
def test_an_experiment_cannot_switch_the_gates_off(repo):
    out = exp(repo, "-S", "mitigation=none", "-S", "governance.fairness=[]")
    assert out.returncode == 0, out.stderr  # the experiment is kept; the registry is not
    assert "not registered: REJECTED by governance" in out.stderr + out.stdout
    assert "disparate_impact_ratio on sex" in out.stderr + out.stdout
    assert_fail_closed(repo)


def test_validated_under_any_override_is_only_a_challenger(repo):
    out = exp(repo, "-S", "seed=3", "-S", "metrics.min_count=31")
    assert out.returncode == 0, out.stderr
    assert_fail_closed(repo)
    ch = version_of_alias(repo, "challenger")
    assert ch.tags["verdict"] == "VALIDATED" and ch.tags["promoted"] == "false"
    assert ch.tags["policy_overrides"] == "metrics.min_count"


# -- 5. reused versions: tags refreshed, challenger alias cleared ----------------------------------
def test_a_reused_version_gets_fresh_tags_and_loses_the_challenger_alias(built, tmp_path):
    # Its own repo, under a checkout path holding an e-mail address (point 10 below).
    repo = clone_built(built, tmp_path / "jane.doe@example.com" / "repo")
    out = run([DVC, "repro"], repo)
    scrubbed(out.stdout + out.stderr)
    out = exp(repo, "-S", "mitigation=none", "-S", "governance.enforcement=warn")
    assert out.returncode == 0, out.stderr
    scrubbed(out.stdout + out.stderr)
    ch = version_of_alias(repo, "challenger")
    assert ch.tags["verdict"] == "REJECTED"
    # A real policy change is a commit: drop the fairness gates on sex and the promotion
    # policy's fairness limits (the unmitigated model is far less fair than the champion),
    # recompose, commit.
    conf = repo / "conf" / "data" / "adult.yaml"  # the dataset's one file holds its gates
    lines = [ln for ln in conf.read_text().splitlines() if "attributes: [sex]" not in ln]
    conf.write_text("\n".join(lines) + "\n")
    conf = repo / "conf" / "registry" / "embedded.yaml"
    lines = [ln for ln in conf.read_text().splitlines() if "max_regression:" not in ln]
    conf.write_text("\n".join(lines).replace("fairness:  ", "fairness: []  ") + "\n")
    run([sys.executable, "-m", "pipeline.compose"], repo)
    run(["git", "commit", "-qam", "relaxed policy (reviewed)"], repo)
    out = exp(repo, "-S", "mitigation=none")
    assert out.returncode == 0, out.stderr
    champion = version_of_alias(repo, "champion")
    assert str(champion.version) == str(ch.version), "the same sha must reuse its version"
    assert champion.tags["verdict"] == "VALIDATED" and champion.tags["promoted"] == "true"
    assert champion.tags["gate.fairness:disparate_impact_ratio:race"] == "WARN"
    assert "gate.fairness:disparate_impact_ratio:sex" not in champion.tags or \
        champion.tags["gate.fairness:disparate_impact_ratio:sex"] != "FAIL"
    aliases = client(repo).get_registered_model(MODEL).aliases
    assert "challenger" not in aliases, aliases
    # 10. no raw checkout path in what MLflow recorded
    c = client(repo)
    for v in c.search_model_versions(f"name='{MODEL}'"):
        r = c.get_run(v.run_id)
        assert "jane.doe" not in json.dumps(r.data.tags), r.data.tags
        assert r.data.tags["mlflow.source.name"] == "pipeline.register"
        lm = c.get_logged_model(model_id(v))
        assert "jane.doe" not in json.dumps(lm.tags), lm.tags


def model_id(version) -> str:
    """The logged model behind a version (its source is models:/<model id>)."""
    return version.model_id or version.source.rsplit("/", 1)[-1]


def scrubbed(text: str) -> None:
    assert "jane.doe@example.com" not in text, "a checkout path with an e-mail was printed"


# -- 6. one version per sha under concurrency -----------------------------------------------------
def _race(repo: Path, out: Path, uri: str, n: int = 3, *extra: str) -> list:
    procs = [subprocess.Popen(
        [sys.executable, "-m", "pipeline.register", f"registry.tracking_uri={uri}", *extra,
         f"hydra.run.dir={out / str(i)}"], cwd=repo, env=env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i in range(n)]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in results), [err[-2000:] for _, err in results]
    return [json.loads((out / str(i) / "reports" / "registration.json").read_text())
            for i in range(n)]


def test_parallel_registrations_leave_one_version_embedded(repo, tmp_path):
    for round_ in range(3):  # a fresh store each round, so every round really races
        uri = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        regs = _race(repo, tmp_path / f"r{round_}", uri)
        from mlflow import MlflowClient

        c = MlflowClient(tracking_uri=uri, registry_uri=uri)
        versions = c.search_model_versions(f"name='{MODEL}'")
        assert [int(v.version) for v in versions] == [1], round_
        assert {r["version"] for r in regs} == {1}
        assert str(c.get_model_version_by_alias(MODEL, "champion").version) == "1"


def test_parallel_registrations_leave_one_version_on_a_tracking_server(repo, tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    try:
        for round_ in range(2):
            regs = _race(repo, tmp_path / f"r{round_}", server.uri, 3, "registry=server")
            from mlflow import MlflowClient

            c = MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
            live = [int(v.version) for v in c.search_model_versions(f"name='{MODEL}'")]
            assert len(live) == 1, live
            assert {r["version"] for r in regs} == set(live)
            assert str(c.get_model_version_by_alias(MODEL, "champion").version) == \
                str(live[0])
    finally:
        server.stop()


def test_the_queue_with_two_jobs_registers_a_shared_model_once(repo):
    before = {v.tags["model_sha256"] for v in assert_fail_closed(repo).values()}
    for n in ("20", "21"):  # same model (seed 5), different metrics settings
        run([DVC, "exp", "run", "--queue", "-S", "seed=5", "-S", f"metrics.n_boot={n}"], repo)
    try:
        run([DVC, "queue", "start", "-j", "2"], repo)
        wait_for_queue(repo, timeout=400)
        # the seed-5 model is VALIDATED and registered once; champion or challenger is the
        # promotion policy's call, recorded on the version
        champion = version_of_alias(repo, "champion")
        versions = assert_fail_closed(repo, champion=str(champion.version))
        [new] = [v for v in versions.values() if v.tags["model_sha256"] not in before]
        passed = new.tags["promotion_passed"] == "true"
        assert (str(champion.version) == str(new.version)) == passed, new.tags
    finally:
        champion_back_to_1(repo)  # for the next tests


def champion_back_to_1(repo: Path) -> None:
    """A person's move (not an alias set by hand, which the policy would undo at the next
    registration of the round): version 1 is champion again, on the record."""
    if str(version_of_alias(repo, "champion").version) != "1":
        run([sys.executable, "-m", "pipeline.promote", "1", "--reason",
             "back to the baseline for the next test"], repo)


# -- 7. the run cache never fakes a registration --------------------------------------------------
def test_a_crashed_registration_is_completed_by_the_next_plain_repro(repo):
    try:
        out = exp(repo, "-S", "seed=4", temp=False, GOVPIPE_FAULT_AFTER="register")
        assert out.returncode != 0 and "injected fault" in out.stdout + out.stderr
        out = run([DVC, "repro"], repo)
        assert "Running stage 'register'" in out.stdout and "skipping run" not in out.stdout
        reg = json.loads((repo / "reports" / "registration.json").read_text())
        aliases = client(repo).get_registered_model(MODEL).aliases
        assert aliases[reg["alias"]] == reg["version"], (aliases, reg)
        assert reg["aliases"] == {k: str(v) for k, v in aliases.items()}
    finally:
        restore(repo)
    # Back on the default results, nothing changed: a no-op, and registration.json still
    # says what the last registration did (seed 4, champion or not), as the registry does.
    out = run([DVC, "repro"], repo)
    assert "Data and pipelines are up to date" in out.stdout
    reg = json.loads((repo / "reports" / "registration.json").read_text())
    aliases = client(repo).get_registered_model(MODEL).aliases
    assert reg["aliases"] == {k: str(v) for k, v in aliases.items()}
    # Re-registering the default runs for real (never a cache restore) and says what it did.
    champion_back_to_1(repo)  # whether seed 4 won is the promotion policy's call
    out = run([DVC, "repro", "-f", "-s", "register"], repo)
    assert "Running stage 'register'" in out.stdout
    reg = json.loads((repo / "reports" / "registration.json").read_text())
    assert reg["version"] == 1 and reg["alias"] == "champion" and reg["already_registered"]
    assert reg["aliases"]["champion"] == "1"
    assert_fail_closed(repo)


# -- 8. unjudged uploads --------------------------------------------------------------------------
@pytest.mark.parametrize("rel,edit,expected", [
    ("metrics/fairness.json", lambda t: t.replace('"dir": 0.', '"dir": 0.999'),
     "metrics/fairness.json changed since it was judged"),
    ("reports/model_card.md", lambda t: t + "\ncontact: planted@example.com\n",
     "reports/model_card.md changed since it was judged"),
    ("plots/selection_rate_test.json", lambda t: t.replace("[", "[ ", 1),
     "plots/selection_rate_test.json changed since it was judged"),
    ("reports/governance.json", lambda t: t.replace('{', '{"note": "planted@example.com",', 1),
     "personal data in files to upload (reports/governance.json"),
])
def test_files_edited_after_governance_are_never_uploaded(repo, rel, edit, expected):
    path = repo / rel
    original = path.read_text()
    try:
        path.write_text(edit(original))
        proc = stage(repo, "register", "--dvc")
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert "planted@example.com" not in proc.stderr
    finally:
        path.write_text(original)
    assert not list((repo / "mlartifacts").rglob("*planted*"))
    for f in (repo / "mlartifacts").rglob("*.md"):
        assert "planted@example.com" not in f.read_text(errors="replace")
    assert_fail_closed(repo)


# -- 9. the server does not trust the alias -------------------------------------------------------
def _serve_once(repo: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    from tests.serve_process import serve_env

    return subprocess.run([sys.executable, "-m", "serve", f"serve.port={free_port()}"],
                          cwd=repo, env=serve_env(), capture_output=True,
                          text=True, timeout=timeout)


def test_the_server_refuses_a_rejected_version_moved_to_champion_by_hand(repo):
    out = exp(repo, "-S", "mitigation=none", "-S", "governance.enforcement=warn")
    assert out.returncode == 0, out.stderr
    rejected = version_of_alias(repo, "challenger")
    c = client(repo)
    c.set_registered_model_alias(MODEL, "champion", rejected.version)  # write access: allowed
    try:
        proc = _serve_once(repo)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0, text[-3000:]
        assert f"version {rejected.version} of '{MODEL}'" in text and "not served" in text
        assert "verdict is 'REJECTED'" in text and "Traceback" not in text
    finally:
        c.set_registered_model_alias(MODEL, "champion", "1")
    assert_fail_closed(repo)


def test_the_server_refuses_stored_bytes_that_changed(repo):
    v1 = client(repo).get_model_version(MODEL, "1")
    pickles = [p for p in (repo / "mlartifacts").rglob("model.pkl") if model_id(v1) in str(p)]
    assert len(pickles) == 1, pickles
    original = pickles[0].read_bytes()
    pickles[0].write_bytes(original + b"\0")
    try:
        proc = _serve_once(repo)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "stored files hash to" in text, text[-3000:]
    finally:
        pickles[0].write_bytes(original)


# -- 11. smaller items ----------------------------------------------------------------------------
def test_standalone_register_logs_the_config_that_made_the_model(repo, tmp_path):
    """Registered from the committed results with a standalone run whose composed config
    differs in judged params: refused as stale, not logged with the wrong params."""
    proc = stage(repo, "register", "seed=9", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and "it judged other params" in proc.stderr
    assert "seed" in proc.stderr
    v1 = client(repo).get_model_version(MODEL, "1")
    run_ = client(repo).get_run(v1.run_id)
    gov = json.loads((repo / "reports" / "governance.json").read_text())
    assert run_.data.params["seed"] == str(gov["config"]["seed"])
    assert run_.data.params["model.name"] == gov["config"]["model"]["name"]


def test_a_copied_repo_writes_into_its_own_store(repo, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, symlinks=True,
                    ignore=shutil.ignore_patterns("tmp", "__pycache__"))
    before = sorted(p.relative_to(repo) for p in (repo / "mlartifacts").rglob("*"))
    out = exp(copy, "-S", "seed=6")
    assert out.returncode == 0, out.stderr
    after = sorted(p.relative_to(repo) for p in (repo / "mlartifacts").rglob("*"))
    assert after == before, "the copy wrote into the original's mlartifacts/"
    c = client(copy)
    new = max(c.search_model_versions(f"name='{MODEL}'"), key=lambda v: int(v.version))
    assert str(copy) in c.get_run(new.run_id).info.artifact_uri
    assert str(repo) + "/" not in c.get_run(new.run_id).info.artifact_uri


def test_a_fresh_run_reproduces_the_committed_lock_and_metrics(repo):
    """`make run` in a fresh clone leaves `git status` clean: the committed dvc.lock and DVC
    metrics are exactly what the committed code produces."""
    for rel in ("dvc.lock", "metrics/performance.json", "metrics/fairness.json",
                "metrics/governance.json"):
        assert (repo / rel).read_text() == (ROOT / rel).read_text(), (
            f"{rel} differs from the committed one: run `make run` and commit {rel}")


def test_params_yaml_problems_never_traceback(repo, tmp_path):
    params = repo / "params.yaml"
    saved = params.read_text()
    try:
        raw = yaml.safe_load(saved)
        raw["registry"]["champion_alias"] = raw["registry"]["challenger_alias"]
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        proc = stage(repo, "register", "--dvc")
        assert proc.returncode == 2 and "must differ from champion_alias" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        params.write_text(saved)


def test_a_running_server_keeps_its_model_when_the_alias_moves_to_a_refused_version(repo):
    """Someone with write access moves @champion to a REJECTED version while the server runs:
    it keeps answering with version 1, /readyz says degraded and why, refusals are counted."""
    import time

    import httpx
    import pandas as pd

    from tests.serve_process import INPUTS, Server, record

    out = exp(repo, "-S", "mitigation=none", "-S", "governance.enforcement=warn")
    assert out.returncode == 0, out.stderr
    rejected = version_of_alias(repo, "challenger")
    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(20)
    srv = Server(repo, ["serve.reload.interval=1"])
    c = client(repo)
    try:
        srv.start()
        c.set_registered_model_alias(MODEL, "champion", rejected.version)
        deadline, body = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            body = httpx.get(f"{srv.url}/readyz", timeout=5).json()
            if body.get("status") == "degraded":
                break
            time.sleep(0.5)
        assert body.get("status") == "degraded", body
        reason = body["workers"][0]["reason"]
        assert f"version {rejected.version}" in reason and "verdict is 'REJECTED'" in reason
        answer = srv.post(record(test[INPUTS], 3))
        assert answer.status_code == 200 and answer.json()["model"]["version"] == "1"
        assert srv.metric("govpipe_model_refusals_total") >= 1
    finally:
        c.set_registered_model_alias(MODEL, "champion", "1")
        srv.stop()
    assert_fail_closed(repo)


def test_the_server_recovers_when_a_damaged_embedded_store_is_restored(repo):
    """The embedded store is truncated under a running server, then restored in place: the
    server keeps answering with its model, says degraded while the store is damaged, and is
    ready again once the file is back, without a restart."""
    import time

    import httpx
    import pandas as pd

    from tests.serve_process import INPUTS, Server, record

    db = repo / "mlflow.db"
    saved = db.read_bytes()
    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(20)
    srv = Server(repo, ["serve.reload.interval=0.5"])

    def wait_for(status: str, timeout: float = 40) -> dict:
        deadline, body = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            body = httpx.get(f"{srv.url}/readyz", timeout=5).json()
            if body.get("status") == status:
                return body
            time.sleep(0.3)
        raise AssertionError(f"/readyz never said {status!r}: {body}")

    try:
        srv.start()
        wait_for("ok")
        db.write_bytes(b"")  # truncated in place
        damaged = wait_for("degraded")
        assert damaged["workers"][0]["reason"], damaged
        answer = srv.post(record(test[INPUTS], 5))
        assert answer.status_code == 200 and answer.json()["model"]["version"] == "1"
        db.write_bytes(saved)  # restored in place
        wait_for("ok")
        answer = srv.post(record(test[INPUTS], 6))
        assert answer.status_code == 200 and answer.json()["model"]["version"] == "1"
    finally:
        db.write_bytes(saved)
        srv.stop()
    assert_fail_closed(repo)


def test_uncommitted_relaxed_gates_with_allow_dirty_are_not_the_policy(repo):
    """Relax the gates in conf/ without committing, recompose, and allow a dirty tree: the
    policy is still what HEAD says, so the unmitigated model is REJECTED and refused."""
    conf = repo / "conf" / "data" / "adult.yaml"  # the dataset's one file holds its gates
    try:
        lines = [ln for ln in conf.read_text().splitlines() if "attributes: [sex]" not in ln]
        conf.write_text("\n".join(lines) + "\n")
        run([sys.executable, "-m", "pipeline.compose"], repo)
        out = exp(repo, "-S", "mitigation=none", "-S", "registry.allow_dirty=true")
        text = out.stdout + out.stderr
        assert out.returncode == 0 and "not registered: REJECTED by governance" in text, \
            text[-3000:]
        assert "disparate_impact_ratio on sex" in text
    finally:
        restore(repo)
    assert_fail_closed(repo)
