"""Register stage with real MLflow: the embedded SQLite store, a real `mlflow server` on
127.0.0.1, fail-closed refusals, idempotency, crash completion and the loader interface."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.model import load as load_model
from tests.conftest import VENV_BIN, clone_built, run, stage
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow
DVC = str(VENV_BIN / "dvc")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, built) -> Path:
    repo = clone_built(built, tmp_path_factory.mktemp("reg") / "repo")
    out = run([DVC, "repro"], repo)
    assert "Running stage 'register'" in out.stdout and "Running stage 'train'" not in out.stdout
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results"], repo)
    return repo


def client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def embedded(repo: Path) -> str:
    return f"sqlite:///{repo / 'mlflow.db'}"


def versions(c, name="govpipe-adult"):
    return sorted(int(v.version) for v in c.search_model_versions(f"name='{name}'"))


def test_embedded_registration_has_full_lineage(repo):
    reg = json.loads((repo / "reports" / "registration.json").read_text())
    assert reg["version"] == 1 and reg["promoted"] and reg["alias"] == "champion"
    c = client(embedded(repo))
    mv = c.get_model_version_by_alias("govpipe-adult", "champion")
    assert str(mv.version) == "1" and mv.run_id == reg["run_id"]
    gov = json.loads((repo / "reports" / "governance.json").read_text())
    tags = mv.tags
    assert tags["verdict"] == "VALIDATED" and tags["dataset"] == "adult"
    assert tags["model_sha256"] == gov["identity"]["model_sha256"]
    # the commit registration ran at: the fixture committed the results on top of it
    head = run(["git", "rev-parse", "HEAD~1"], repo).stdout.strip()
    assert tags["git_commit"] == head and tags["git_dirty"] == "false"
    assert tags["data_hash"] == gov["identity"]["data_hash"]
    assert tags["params_hash"] == gov["identity"]["params_hash"]
    assert tags["gate.fairness:disparate_impact_ratio:sex"] == "PASS"
    assert tags["gate.privacy_scan"] == "PASS"
    run_ = c.get_run(reg["run_id"])
    assert run_.data.params["model.name"] == "hgb" and "test.sex.dir" in run_.data.metrics
    arts = {a.path for a in c.list_artifacts(reg["run_id"], "reports")}
    assert {"reports/model_card.html", "reports/governance.json", "reports/split.json"} <= arts
    import mlflow

    mlflow.set_tracking_uri(embedded(repo))
    model_dir = Path(mlflow.artifacts.download_artifacts(
        artifact_uri="models:/govpipe-adult/1", dst_path=str(repo / "outputs" / "dl")))
    example = json.loads(next(model_dir.rglob("input_example.json")).read_text())
    train = pd.read_parquet(repo / "artifacts" / "split" / "train.parquet")
    cols = example["columns"]
    real = {tuple(map(str, r)) for r in train[cols].astype(str).itertuples(index=False)}
    assert not {tuple(map(str, r)) for r in example["data"]} & real, "input example is a real row"


def test_model_loads_through_the_registry_source(repo):
    from pipeline.loaders import build_source
    from pipeline.model import load

    src = build_source({"_target_": "pipeline.loaders.MlflowRegistrySource",
                        "tracking_uri": embedded(repo), "model_name": "govpipe-adult"})
    assert src.resolve() == "1"
    loaded = src.load()
    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(200)
    local = load(repo / "artifacts" / "model.pkl")
    np.testing.assert_allclose(loaded.model.score(test), local.score(test))
    assert loaded.version == "1" and loaded.metadata["verdict"] == "VALIDATED"


def test_a_further_source_plugs_in_through_target(repo, tmp_path):
    from pipeline.loaders import build_source
    from pipeline.runtime.hashing import file_sha256 as sha256

    shutil.copy(repo / "artifacts" / "model.pkl", tmp_path / "m.pkl")
    (tmp_path / "current.json").write_text(json.dumps(
        {"version": "7", "file": "m.pkl", "sha256": sha256(tmp_path / "m.pkl")}))
    src = build_source({"_target_": "tests.registry_sources.PointerFileSource",
                        "folder": str(tmp_path)})
    assert src.resolve() == "7" and src.load().version == "7"


def test_second_run_creates_no_new_version(repo):
    out = run([DVC, "repro"], repo).stdout
    assert "Running stage" not in out
    out = run([DVC, "repro", "-f", "-s", "register"], repo)
    assert "reused version 1" in out.stderr
    assert versions(client(embedded(repo))) == [1]
    champion = run([sys.executable, "-m", "pipeline.champion"], repo).stdout
    assert "govpipe-adult@champion -> version 1" in champion


def _register(repo, *args, **env):
    return stage(repo, "register", *args, **env)


@pytest.mark.parametrize("damage", ["missing", "unreadable", "rejected", "stale"])
def test_register_fails_closed(repo, damage):
    path = repo / "reports" / "governance.json"
    original = path.read_text()
    gov = json.loads(original)
    try:
        if damage == "missing":
            path.unlink()
        elif damage == "unreadable":
            path.write_text("{not json")
        elif damage == "rejected":
            gov.update(verdict="REJECTED", reasons=["disparate_impact_ratio on sex = 0.3"])
            path.write_text(json.dumps(gov))
        else:
            gov["identity"]["model_sha256"] = "0" * 64
            path.write_text(json.dumps(gov))
        proc = _register(repo, "--dvc")
        assert proc.returncode == 2, proc.stderr
        expected = {"missing": "is missing", "unreadable": "is unreadable",
                    "rejected": "the report was edited", "stale": "is stale"}[damage]
        assert expected in proc.stderr and "Traceback" not in proc.stderr
    finally:
        path.write_text(original)
    assert versions(client(embedded(repo))) == [1]


def test_dirty_code_is_refused_unless_allowed(repo):
    target = repo / "pipeline" / "model.py"
    original = target.read_text()
    target.write_text(original + "\n# local edit\n")
    try:
        proc = _register(repo, "--dvc")
        assert proc.returncode == 2 and "pipeline/model.py" in proc.stderr
        assert "registry.allow_dirty=true" in proc.stderr
        params = repo / "params.yaml"
        saved = params.read_text()
        raw = yaml.safe_load(saved)
        raw["registry"]["allow_dirty"] = True
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        try:
            proc = _register(repo, "--dvc")
            assert proc.returncode == 0, proc.stderr
        finally:
            params.write_text(saved)
    finally:
        target.write_text(original)


def test_bad_registry_config_is_refused_before_anything(repo, tmp_path):
    proc = _register(repo, "registry.model_name=bad/name", f"hydra.run.dir={tmp_path / 'a'}")
    assert proc.returncode == 2 and "registry.model_name" in proc.stderr
    proc = _register(repo, "registry.champion_alias=v1", f"hydra.run.dir={tmp_path / 'b'}")
    assert proc.returncode == 2 and "alias 'v1' is invalid" in proc.stderr
    proc = _register(repo, "registry.tracking_uri=htp:/nowhere", f"hydra.run.dir={tmp_path / 'c'}")
    assert proc.returncode == 2 and "registry.tracking_uri" in proc.stderr
    assert versions(client(embedded(repo))) == [1]


def test_real_mlflow_server_crash_completion_and_outage(repo, tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    args = ["registry=server", f"registry.tracking_uri={server.uri}", "registry.retries=1",
            "registry.backoff_seconds=0.2", "registry.timeout_seconds=5"]
    try:
        # dies after logging the run, before registering
        crashed = _register(repo, *args, f"hydra.run.dir={tmp_path / 'r1'}",
                            GOVPIPE_FAULT_AFTER="log")
        assert crashed.returncode != 0 and "injected fault" in crashed.stderr
        c = client(server.uri)
        assert versions(c) == []

        server.stop()  # then the registry goes away: a clear error after the retries
        down = _register(repo, *args, f"hydra.run.dir={tmp_path / 'r2'}")
        assert down.returncode == 2 and "after 2 attempt(s)" in down.stderr
        assert "Traceback" not in down.stderr

        server.start()  # back: the next run completes the crashed registration, no duplicate
        done = _register(repo, *args, f"hydra.run.dir={tmp_path / 'r3'}")
        assert done.returncode == 0, done.stderr
        assert versions(c) == [1]
        exp = c.get_experiment_by_name("govpipe")
        assert len(c.search_runs([exp.experiment_id])) == 1, "the rerun logged a duplicate run"
        mv = c.get_model_version_by_alias("govpipe-adult", "champion")
        assert str(mv.version) == "1" and mv.tags["verdict"] == "VALIDATED"
    finally:
        server.stop()


def test_rejected_experiment_is_blocked_or_registered_unpromoted(repo):
    fast = ["-S", "metrics.n_boot=20"]  # the verdict, not the intervals, is under test
    blocked = run([DVC, "exp", "run", "-S", "mitigation=none", *fast], repo, check=False)
    assert blocked.returncode == 0, blocked.stderr  # kept as an experiment, not registered
    assert "not registered: REJECTED by governance" in blocked.stderr
    assert "sex" in blocked.stderr
    c = client(embedded(repo))
    assert versions(c) == [1]
    warned = run([DVC, "exp", "run", "-S", "mitigation=none", "-S",
                  "governance.enforcement=warn", *fast], repo)
    assert "(@challenger)" in warned.stderr
    assert versions(c) == [1, 2]
    v2 = c.get_model_version("govpipe-adult", "2")
    assert v2.tags["verdict"] == "REJECTED" and "challenger" in v2.aliases
    assert str(c.get_model_version_by_alias("govpipe-adult", "champion").version) == "1"
    run(["git", "reset", "-q", "--hard"], repo)  # back to the baseline results
    run([DVC, "checkout", "-f"], repo)


def test_server_answers_with_the_champion_and_follows_a_new_one(repo, tmp_path):
    """`python -m serve` with the default config answers with the registry's champion
    (not a REJECTED challenger an earlier test may have registered); when a new VALIDATED
    version becomes champion, answers move to it after the reload TTL, and no request fails
    meanwhile. Read from the registry, not assumed, so the test passes when run alone."""
    import threading

    import httpx

    from tests.serve_process import INPUTS, KEY, Server, record

    c = client(embedded(repo))
    before = versions(c)
    champion = str(c.get_model_version_by_alias("govpipe-adult", "champion").version)
    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(200)
    records = [record(test[INPUTS], i) for i in range(len(test))]
    srv = Server(repo, ["serve.reload.interval=1"])
    try:
        srv.start()
        health = httpx.get(f"{srv.url}/health", timeout=5).json()
        assert health["model"] == {"name": "govpipe-adult", "version": champion}, health
        answer = srv.post({"records": records[:3]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == {"name": "govpipe-adult", "version": champion}
        local = load_model(repo / "artifacts" / "model.pkl").score(test[INPUTS].head(3))
        np.testing.assert_allclose([p["probability"] for p in body["predictions"]], local,
                                   atol=1e-12)

        statuses, versions_seen, stop = [], set(), threading.Event()

        def traffic() -> None:  # unique records, so every answer comes from a worker
            i = 3
            while not stop.is_set():
                r = srv.post(records[i % len(records)] | {"age": 17 + i % 70})
                statuses.append(r.status_code)
                if r.status_code == 200:
                    versions_seen.add(r.json()["model"]["version"])
                i += 1

        caller = threading.Thread(target=traffic)
        caller.start()
        try:  # a new model (another seed) through the stages, registered as the new champion
            new = tmp_path / "new"
            for name in ("train", "metrics", "governance", "register"):
                proc = stage(repo, name, "seed=3", f"+inputs={new}", f"hydra.run.dir={new}")
                assert proc.returncode == 0, proc.stderr
            reg = json.loads((new / "reports" / "registration.json").read_text())
            assert reg["version"] == max(before) + 1, (before, reg)
            if not reg["promoted"]:  # the policy kept it challenger: a person promotes it
                proc = run([sys.executable, "-m", "pipeline.promote", str(reg["version"]),
                            "--reason", "serve the seed-3 model"], repo, check=False)
                assert proc.returncode == 0, proc.stderr
            deadline = time.monotonic() + 60
            while str(reg["version"]) not in versions_seen and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            stop.set()
            caller.join(30)
        assert str(reg["version"]) in versions_seen, versions_seen
        assert statuses and set(statuses) == {200}, sorted(set(statuses))
        health = httpx.get(f"{srv.url}/health", timeout=5).json()
        assert health["model"]["version"] == str(reg["version"])
    finally:
        srv.stop()
    assert KEY not in srv.text()


def test_a_unique_key_race_is_retried_and_a_real_refusal_is_not():
    """Two registrations tagging one version at once: PostgreSQL refuses the second insert and
    MLflow reports it as BAD_REQUEST. Registry.call retries that (the row then exists and is
    updated); any other BAD_REQUEST is an answer and is not retried."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import BAD_REQUEST

    from pipeline.tracking.client import Registry, RegistryError

    reg = object.__new__(Registry)  # the retry loop alone: no store behind it
    reg.retries, reg.backoff, reg.uri = 1, 0.0, "http://127.0.0.1:5000"
    race = ('(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
            '"model_version_tag_pk"')
    calls = []

    def set_tag(message: str):
        calls.append(message)
        if len(calls) == 1:
            raise MlflowException(message, error_code=BAD_REQUEST)
        return "tagged"

    assert reg.call("set a tag", set_tag, race) == "tagged" and len(calls) == 2
    calls.clear()
    with pytest.raises(RegistryError, match="registry refused to set a tag"):
        reg.call("set a tag", set_tag, "Invalid value for tag key")
    assert len(calls) == 1
