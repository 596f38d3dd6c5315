"""The production-like stack, for real: PostgreSQL (Debian's binaries, a throw-away cluster),
an S3 endpoint (moto's server) and `mlflow server` with proxied artefacts, all on 127.0.0.1,
started once for this module by `pipeline.tracking.stack.Stack` (what `make stack` runs).

On it: the register stage registers (the version in PostgreSQL, the files in the bucket), two
registrations at once leave one version, bad addresses and credentials fail naming the
component; a server on its champion keeps answering through a tracking-server outage, a
PostgreSQL restart and an artefact-store fault, and nothing is half-registered meanwhile; a
DVC remote on the same S3 endpoint restores data and run cache into a fresh clone byte for
byte; `deploy/serve-cluster.sh` (two servers behind haproxy) rolls under load and follows a
new champion registered here.

Tests share the stack (one start, ~15 s) and one registration (a module fixture), so each
also runs alone. Skipped when PostgreSQL's binaries (or haproxy) are missing (`.ci/run`
installs them)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipeline.tracking import stack as stack_mod
from tests.conftest import VENV_BIN, clone_built, env, run, stage
from tests.processes import free_port, stop_process_group

pytestmark = pytest.mark.slow
DVC = str(VENV_BIN / "dvc")
MODEL = "govpipe-adult"
SECRET_AWS = "stack-test-secret-" + os.urandom(6).hex()

try:
    stack_mod._pg_bin("initdb")
    HAVE_PG = True
except stack_mod.StackError:
    HAVE_PG = False
needs_stack = pytest.mark.skipif(not HAVE_PG, reason="PostgreSQL binaries not installed")


def stack_env() -> dict[str, str]:
    # Credentials only ever from the environment: the components and every client get these.
    return env(AWS_ACCESS_KEY_ID="stacktest", AWS_SECRET_ACCESS_KEY=SECRET_AWS,
               AWS_DEFAULT_REGION="us-east-1", PGPASSWORD="pg-" + os.urandom(8).hex())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not HAVE_PG:
        pytest.skip("PostgreSQL binaries not installed")
    s = stack_mod.Stack(tmp_path_factory.mktemp("stack"),
                        {"postgres": free_port(), "s3": free_port(), "mlflow": free_port()},
                        env=stack_env())
    started = time.monotonic()
    s.up()
    print(f"stack up in {time.monotonic() - started:.1f} s")
    yield s
    s.down()
    assert not (s.root / "pgpass").exists(), "the stack's password file outlived it"


def server_args(s, *extra: str) -> list[str]:
    return ["registry=server", f"registry.tracking_uri={s.tracking_uri}", "registry.retries=1",
            "registry.backoff_seconds=0.2", "registry.timeout_seconds=5", *extra]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, built):
    return clone_built(built, tmp_path_factory.mktemp("stackrepo") / "repo")


def client(s):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.tracking_uri)


# MLflow deletes a version by marking it (current_stage): a row that is not a live version.
LIVE = "current_stage <> 'Deleted_Internal'"


def pg_rows(s, sql: str) -> list[tuple]:
    import psycopg2

    con = psycopg2.connect(s.backend_uri.replace("+psycopg2", ""),
                           password=s.env["PGPASSWORD"], connect_timeout=5)
    try:
        with con.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        con.close()


def bucket_keys(s) -> list[str]:
    c = stack_mod.s3_client(s.s3_endpoint, s.env)
    pages = c.get_paginator("list_objects_v2").paginate(Bucket=stack_mod.BUCKET)
    return [o["Key"] for p in pages for o in p.get("Contents", [])]


def no_secret(s, *texts: str) -> None:
    for t in texts:
        assert s.env["PGPASSWORD"] not in t and SECRET_AWS not in t


# -- the registry -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registered(stack, repo, tmp_path_factory):
    """The built repo's model registered on the stack (version 1, champion)."""
    out = tmp_path_factory.mktemp("registered")
    proc = stage(repo, "register", *server_args(stack), f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    return proc, out


@needs_stack
def test_the_register_stage_registers_into_postgres_and_s3(stack, repo, registered):
    proc, out = registered
    reg = json.loads((out / "reports" / "registration.json").read_text())
    assert reg["version"] == 1 and reg["alias"] == "champion"
    # the version is a row in PostgreSQL, the model's files are objects in the bucket
    assert pg_rows(stack, f"SELECT name, version FROM model_versions WHERE {LIVE}") == [(MODEL, 1)]
    keys = bucket_keys(stack)
    assert any(k.endswith("/model.pkl") for k in keys), keys[:20]
    assert any(k.endswith("reports/model_card.html") for k in keys)
    mv = client(stack).get_model_version_by_alias(MODEL, "champion")
    assert mv.tags["verdict"] == "VALIDATED" and mv.tags["artifact_sha256"]
    no_secret(stack, proc.stderr, proc.stdout, *(p.read_text(errors="replace")
                                                 for p in stack.root.glob("*.log")))
    # a client of a tracking server creates no embedded store in its working directory
    assert not (repo / "mlflow.db").exists()


@needs_stack
def test_two_registrations_at_once_leave_one_version(stack, repo, tmp_path):
    """Two processes as if on two machines (each its own DVC_ROOT, so the per-machine file
    lock does not serialise them): PostgreSQL sees both create a version, one is kept."""
    name = "race-model"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "pipeline.register", *server_args(stack),
         f"registry.model_name={name}", f"hydra.run.dir={tmp_path / str(i)}"], cwd=repo,
        env=env(DVC_ROOT=str(tmp_path / f"machine{i}")), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True) for i in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errs]
    rows = pg_rows(stack, f"SELECT version FROM model_versions WHERE name = '{name}' AND {LIVE}")
    assert len(rows) == 1, rows
    regs = [json.loads((tmp_path / str(i) / "reports" / "registration.json").read_text())
            for i in range(2)]
    assert {r["version"] for r in regs} == {rows[0][0]}
    # another model name is a policy override: challenger at most, and both runs say so
    assert {r["alias"] for r in regs} == {"challenger"}
    assert client(stack).get_model_version_by_alias(name, "challenger").version == \
        str(rows[0][0])


@needs_stack
def test_bad_addresses_and_credentials_name_the_component(stack):
    env_ = stack.server_env()
    bad_pw = {**env_, "PGPASSWORD": "wrong-" + os.urandom(4).hex()}
    started = time.monotonic()
    with pytest.raises(stack_mod.StackError) as e:
        stack_mod.check_postgres(stack.backend_uri, bad_pw)
    assert "PostgreSQL" in str(e.value) and "password authentication failed" in str(e.value)
    assert bad_pw["PGPASSWORD"] not in str(e.value) and "after 1 attempt(s)" in str(e.value)
    down_port = free_port()
    with pytest.raises(stack_mod.StackError) as e:
        stack_mod.check_postgres(f"postgresql://govpipe@127.0.0.1:{down_port}/mlflow", env_,
                                 attempts=2, backoff=0.1)
    assert "PostgreSQL" in str(e.value) and "after 2 attempt(s)" in str(e.value)
    with pytest.raises(stack_mod.StackError) as e:
        stack_mod.check_postgres(stack.backend_uri.replace("/mlflow", "/nope"), env_)
    assert 'database "nope" does not exist' in str(e.value)
    with pytest.raises(stack_mod.StackError) as e:
        stack_mod.check_bucket("s3://no-such-bucket/x", stack.s3_endpoint, env_)
    assert "S3" in str(e.value) and "bucket 'no-such-bucket' does not exist" in str(e.value)
    with pytest.raises(stack_mod.StackError) as e:
        stack_mod.check_bucket(stack.destination, f"http://127.0.0.1:{down_port}", env_,
                               attempts=2, backoff=0.1)
    assert "unreachable after 2 attempt(s)" in str(e.value)
    assert time.monotonic() - started < 30  # bounded
    # the command line for managed services: a password on it is refused, a wrong one named
    cli = [sys.executable, "-m", "pipeline.tracking.stack", "server", "--artifacts-destination",
           stack.destination, "--port", str(free_port())]
    proc = subprocess.run([*cli, "--backend-store-uri", stack.backend_uri.replace(
        "govpipe@", "govpipe:hunter2-secret@")], env=bad_pw, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode == 2 and "PGPASSWORD" in proc.stderr
    assert "hunter2-secret" not in proc.stderr
    proc = subprocess.run([*cli, "--backend-store-uri", stack.backend_uri], env=bad_pw,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "PostgreSQL" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and bad_pw["PGPASSWORD"] not in proc.stderr


# -- serving from the stack through its outages -------------------------------------------------
def readiness(url: str) -> dict:
    return httpx.get(f"{url}/readyz", timeout=5).json()


def wait_status(url: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if readiness(url).get("status") == status:
            return
        time.sleep(0.3)
    raise AssertionError(f"not {status}: {readiness(url)}")


@needs_stack
def test_serving_from_the_stack_survives_its_outages_and_nothing_is_half_registered(
        stack, registered, repo, tmp_path):
    """A server on the stack's champion keeps answering while the tracking server is down
    (degraded), through a PostgreSQL restart and an artefact-store fault, then recovers; a
    registration meanwhile fails after its bounded retries, naming the component, and leaves
    no version or finished run behind."""
    from tests.serve_process import INPUTS, KEY, Server, record

    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(50)
    common = server_args(stack, "serve.reload.interval=1")
    srv = Server(repo, [*common, f"serve.audit.dir={tmp_path / 'audit'}",
                        "serve.workers_per_device=1", "serve.api_servers=1"])
    statuses = []
    live = f"SELECT name, version FROM model_versions WHERE name = '{MODEL}' AND {LIVE}"
    before = pg_rows(stack, live)

    def ask(i: int) -> None:
        r = srv.post(record(test[INPUTS], i % len(test)))
        statuses.append(r.status_code)
    try:
        srv.start()
        ask(0)
        stack.stop("mlflow")
        wait_status(srv.url, "degraded")
        ask(1)
        down = stage(repo, "register", *common, f"hydra.run.dir={tmp_path / 'down'}")
        assert down.returncode == 2 and "after 2 attempt(s)" in down.stderr, down.stderr
        stack.restart_postgres()
        ask(2)
        good = stack.destination
        stack.destination = "s3://no-such-bucket/artifacts"
        stack.start_mlflow()
        bad = stage(repo, "register", *common, "registry.model_name=fault-model",
                    f"hydra.run.dir={tmp_path / 'bad'}")
        assert bad.returncode == 2 and "artefact store" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
        stack.stop("mlflow")
        stack.destination = good
        stack.start_mlflow()
        wait_status(srv.url, "ok")
        ask(3)
    finally:
        srv.stop()
        stack.destination = "s3://govpipe-mlflow/artifacts"
        if "mlflow" not in stack.procs:
            stack.start_mlflow()
    assert statuses == [200] * 4, statuses
    assert pg_rows(stack, live) == before  # the registration that failed left no version
    # an interrupted registration leaves at most a version without its artefact digest, which
    # no server loads and the next registration completes (tests/test_fail_closed.py)
    for (v,) in pg_rows(stack, "SELECT version FROM model_versions WHERE name = "
                               f"'fault-model' AND {LIVE}"):
        mv = client(stack).get_model_version("fault-model", str(v))
        assert "artifact_sha256" not in mv.tags and mv.tags.get("promoted") == "false"
        assert not client(stack).get_registered_model("fault-model").aliases
    runs = client(stack).search_runs(
        [client(stack).get_experiment_by_name("govpipe").experiment_id])
    assert all(r.info.status != "FINISHED" or r.data.tags.get("govpipe.logged") == "true"
               for r in runs)
    assert KEY not in srv.text()
    no_secret(stack, srv.text(), down.stderr, bad.stderr)


# -- DVC remote on S3 -----------------------------------------------------------------------------
def _outputs(repo: Path) -> dict[str, str]:
    out = {}
    for top in ("artifacts", "reports", "metrics", "plots"):
        for p in sorted((repo / top).rglob("*")):
            if p.is_file() and p.name != "registration.json":
                out[str(p.relative_to(repo))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@needs_stack
def test_dvc_remote_on_s3_restores_a_fresh_clone_byte_for_byte(stack, repo, tmp_path):
    src = clone_built(repo, tmp_path / "src")
    run([DVC, "remote", "add", "-d", "s3", "s3://govpipe-mlflow/dvc"], src)
    # the endpoint is configuration (committed); the credentials stay in the environment
    run([DVC, "remote", "modify", "s3", "endpointurl", stack.s3_endpoint], src)
    run(["git", "commit", "-qam", "remote on S3"], src)
    creds = {k: stack.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                       "AWS_DEFAULT_REGION")}
    pushed = run([DVC, "push", "--run-cache"], src, **creds)
    no_secret(stack, pushed.stdout, pushed.stderr)
    assert any(k.startswith("dvc/runs/") for k in bucket_keys(stack))
    fresh = tmp_path / "fresh"
    run(["git", "clone", "-q", str(src), str(fresh)], tmp_path)
    # a colleague's clone: data, every stage's outputs and the run cache from S3, nothing run
    # (register's output is left out: registering is a side effect, its stage never cached)
    pulled = run([DVC, "pull", "--run-cache", "--with-deps", "data.dvc", "governance"], fresh,
                 **creds)
    no_secret(stack, pulled.stdout, pulled.stderr)
    repro = run([DVC, "repro", "governance"], fresh, **creds)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert _outputs(fresh) == {k: v for k, v in _outputs(src).items() if k in _outputs(fresh)}
    assert set(_outputs(fresh)) >= {"artifacts/model.pkl", "reports/governance.json"}



# -- replicated serving on the stack --------------------------------------------------------------
def _wait_healthy(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not healthy in {timeout} s")


def _pid_after(pidfile: Path, old: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = pidfile.read_text().strip() if pidfile.exists() else ""
        if pid and pid != old:
            return pid
        time.sleep(0.2)
    raise AssertionError(f"{pidfile.name}: no new instance after {timeout} s")


@needs_stack
@pytest.mark.skipif(shutil.which("haproxy") is None,
                    reason="haproxy not installed (.ci/run installs it)")
def test_the_cluster_script_rolls_under_load_and_follows_a_new_champion_on_the_stack(
        stack, registered, repo, tmp_path):
    """`deploy/serve-cluster.sh` as `make serve-cluster` runs it (two `python -m serve
    registry=server` instances in restart loops behind haproxy with deploy/haproxy.cfg), under
    continuous traffic of unique records: a rolling restart (SIGTERM one instance through its
    pid file, the script restarts it, healthy again, then the other) fails no request; then a
    new model goes through train → register on the stack, becomes champion, and both
    instances serve it — still no failed request. Then @champion is moved by hand onto a forged
    version (the champion's VALIDATED tags over other bytes): both refuse it, keep serving the
    champion, say degraded and why."""
    from tests.serve_process import INPUTS, KEY, Traffic, record, serve_env

    ports = {"GOVPIPE_LB_PORT": free_port(), "GOVPIPE_S1_PORT": free_port(),
             "GOVPIPE_S2_PORT": free_port()}
    run_dir = tmp_path / "cluster"
    url = {name: f"http://127.0.0.1:{ports[f'GOVPIPE_{name.upper()}_PORT']}"
           for name in ("lb", "s1", "s2")}
    common = server_args(stack, "serve.reload.interval=1", "serve.workers_per_device=1",
                         "serve.api_servers=1")
    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(300)
    records = [record(test[INPUTS], i) for i in range(len(test))]
    log = tmp_path / "cluster.log"
    with log.open("wb") as out:
        script = subprocess.Popen(
            ["deploy/serve-cluster.sh", *common], cwd=repo, stdout=out, stderr=subprocess.STDOUT,
            env=serve_env(RUN_DIR=str(run_dir), **{k: str(v) for k, v in ports.items()}),
            start_new_session=True)
    try:
        for name in ("s1", "s2", "lb"):
            _wait_healthy(url[name])
        time.sleep(1.5)  # the balancer needs 2 checks x 500 ms to mark both up
        with Traffic(url["lb"], records) as traffic:
            traffic.wait_for("1")
            for name in ("s1", "s2"):  # one at a time, as the script's header says
                pidfile = run_dir / f"{name}.pid"
                old = pidfile.read_text().strip()
                os.kill(int(old), signal.SIGTERM)
                _pid_after(pidfile, old)
                _wait_healthy(url[name])
                time.sleep(1.5)
            traffic.wait_for("1")
            restarted = len(traffic.statuses)
            new = tmp_path / "new"  # another seed's model through the stages, onto the stack
            for name in ("train", "metrics", "governance", "register"):
                proc = stage(repo, name, "seed=3", *server_args(stack), f"+inputs={new}",
                             f"hydra.run.dir={new}")
                assert proc.returncode == 0, (name, proc.stderr)
            reg = json.loads((new / "reports" / "registration.json").read_text())
            assert reg["version"] >= 2, reg
            if not reg["promoted"]:  # the policy kept it challenger: a person promotes it
                run([sys.executable, "-m", "pipeline.promote", str(reg["version"]),
                     "--reason", "serve the seed-3 model", *server_args(stack)], repo)
            version = str(reg["version"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                    readiness(url[n]).get("model", {}).get("version") == version
                    for n in ("s1", "s2")):
                time.sleep(0.3)
            assert [readiness(url[n])["model"]["version"] for n in ("s1", "s2")] == [version] * 2
            traffic.wait_for(version)
            # An adversary with registry write access: a version made by hand that carries the
            # new champion's VALIDATED tags (digest included) over other bytes (version 1's),
            # and @champion moved onto it. Both instances refuse it and keep serving.
            c, new_mv = client(stack), client(stack).get_model_version(MODEL, version)
            old_mv = c.get_model_version(MODEL, "1")
            forged = c.create_model_version(MODEL, old_mv.source, run_id=old_mv.run_id,
                                            tags=dict(new_mv.tags),
                                            model_id=old_mv.source.rsplit("/", 1)[-1])
            c.set_registered_model_alias(MODEL, "champion", forged.version)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(
                    readiness(url[n]).get("status") == "degraded" for n in ("s1", "s2")):
                time.sleep(0.3)
            for n in ("s1", "s2"):
                body = readiness(url[n])
                assert body["status"] == "degraded" and body["model"]["version"] == version, body
                assert any(f"version {forged.version}" in (w["reason"] or "")
                           and "hash to" in w["reason"] for w in body["workers"]), body
            forged_from = len(traffic.versions)
            traffic.wait_for(version)
    finally:
        stop_process_group(script, grace=15)
    print(f"{len(traffic.statuses)} requests through haproxy ({restarted} until the rolling "
          f"restart ended), {len(traffic.failed())} failed")
    assert restarted > 50 and not traffic.failed(), (set(traffic.failed()), traffic.errors[:5])
    assert str(forged.version) not in traffic.versions[forged_from:]
    assert not list(run_dir.glob("*.pid")), "the script left pid files behind"
    text = log.read_text(errors="replace")
    assert KEY not in text
    no_secret(stack, text)
