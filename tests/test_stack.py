"""The production-like stack, for real: PostgreSQL (Debian's binaries, a throw-away cluster),
an S3 endpoint (moto's server) and `mlflow server` with proxied artefacts, all on 127.0.0.1,
started once for this module by `pipeline.tracking.stack.Stack` (what `make stack` runs).

On it: the register stage registers (the version in PostgreSQL, the files in the bucket), two
registrations at once leave one version, bad addresses and credentials fail naming the
component; two `python -m serve` instances behind haproxy (deploy/haproxy.cfg) serve the
champion from it through a rolling restart, a tracking-server outage, a PostgreSQL restart and
an artefact-store fault with no failed request, and follow a new champion; a DVC remote on the
same S3 endpoint restores data and run cache into a fresh clone byte for byte.

Tests run in file order and share the stack (one start, ~15 s): later tests build on the
registrations of earlier ones. Skipped when PostgreSQL's binaries or haproxy are missing
(`.ci/run` installs both)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
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
FAST = ["metrics.n_boot=20"]  # not policy: registration and serving are under test
SECRET_AWS = "stack-test-secret-" + os.urandom(6).hex()
HAPROXY = shutil.which("haproxy")

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
@needs_stack
def test_the_register_stage_registers_into_postgres_and_s3(stack, repo, tmp_path):
    out = tmp_path / "r"
    proc = stage(repo, "register", *server_args(stack), f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
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


# -- replicated serving ---------------------------------------------------------------------------
class Haproxy:
    def __init__(self, workdir: Path, s1: int, s2: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "haproxy.log"
        self.env = env(GOVPIPE_LB_PORT=str(self.port), GOVPIPE_S1_PORT=str(s1),
                       GOVPIPE_S2_PORT=str(s2))
        self.proc: subprocess.Popen | None = None

    def start(self) -> Haproxy:
        cfg = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, grace=5)


class Load:
    """Continuous traffic through the balancer, one unique record per request (cache misses:
    every answer comes from a worker), recording every status and model version seen."""

    def __init__(self, url: str, records: list[dict], threads: int = 2) -> None:
        from tests.serve_process import KEY

        self.url, self.records, self.key = url, records, KEY
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self.errors: list[str] = []
        self.stop_ = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, offset: int) -> None:
        i = offset
        with httpx.Client(timeout=30) as c:
            while not self.stop_.is_set():
                rec = self.records[i % len(self.records)] | {"age": 17 + i % 70,
                                                              "hours-per-week": 1 + i % 97}
                try:
                    r = c.post(f"{self.url}/predict", json=rec, headers={"X-API-Key": self.key})
                    self.statuses.append(r.status_code)
                    if r.status_code == 200:
                        self.versions.append(r.json()["model"]["version"])
                    else:
                        self.errors.append(r.text[:200])
                except httpx.HTTPError as e:
                    self.statuses.append(0)
                    self.errors.append(repr(e))
                i += 2

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_.set()
        for t in self.threads:
            t.join(60)

    def wait_for(self, version: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        n = len(self.versions)
        while time.monotonic() < deadline:
            if version in self.versions[n:]:
                return
            time.sleep(0.3)
        raise AssertionError(f"version {version} never served; saw {set(self.versions[n:])}")


def readiness(url: str) -> dict:
    return httpx.get(f"{url}/readyz", timeout=5).json()


def version_of(url: str) -> str | None:
    return (readiness(url).get("model") or {}).get("version")


def wait_status(urls: list[str], status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(readiness(u).get("status") == status for u in urls):
            return
        time.sleep(0.3)
    raise AssertionError(f"not all {status}: {[readiness(u) for u in urls]}")


@needs_stack
@pytest.mark.skipif(HAPROXY is None, reason="haproxy not installed")
def test_two_instances_behind_haproxy_survive_restarts_and_outages_and_follow(
        stack, repo, tmp_path):
    from tests.serve_process import INPUTS, KEY, Server, record

    # A second model in the background meanwhile (another seed, through the stages): the
    # new champion at the end. It needs no registry until its register step.
    new = tmp_path / "new"
    chain_args = ["seed=3", *FAST, f"+inputs={new}", f"hydra.run.dir={new}"]
    chain = " && ".join(f"{sys.executable} -m pipeline.{n} {' '.join(chain_args)}"
                        for n in ("train", "metrics", "governance"))
    background = subprocess.Popen(["bash", "-c", chain], cwd=repo, env=env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    test = pd.read_parquet(repo / "artifacts" / "split" / "test.parquet").head(300)
    records = [record(test[INPUTS], i) for i in range(len(test))]
    common = server_args(stack, "serve.reload.interval=1")
    servers = [Server(repo, [*common, f"serve.audit.dir={tmp_path / f'audit{i}'}"])
               for i in (1, 2)]
    lb = Haproxy(tmp_path, servers[0].port, servers[1].port)
    urls = [s.url for s in servers]
    try:
        for s in servers:
            s.start()
        lb.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{lb.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        with Load(lb.url, records) as load:
            load.wait_for("1")
            # rolling restart: SIGTERM one, start it again, healthy (and seen healthy by the
            # balancer: rise 2 x 500 ms), then the other
            for s in servers:
                s.stop()
                s.start()
                time.sleep(2)
                load.wait_for("1")
            # the tracking server goes away: both keep serving, degraded; a registration
            # fails after its bounded retries and registers nothing
            stack.stop("mlflow")
            wait_status(urls, "degraded")
            assert background.wait(300) == 0, background.stderr.read()[-3000:]
            down = stage(repo, "register", *common, *chain_args)
            assert down.returncode == 2 and "after 2 attempt(s)" in down.stderr, down.stderr
            # PostgreSQL restarts meanwhile (a maintenance window), then the tracking server
            # comes back pointed at a bucket that does not exist: the register stage names
            # the artefact store, and nothing is half-registered
            stack.restart_postgres()
            good = stack.destination
            stack.destination = "s3://no-such-bucket/artifacts"
            stack.start_mlflow()
            bad = stage(repo, "register", *common, *chain_args)
            assert bad.returncode == 2 and "artefact store" in bad.stderr, bad.stderr
            assert "Traceback" not in bad.stderr
            live = f"SELECT version FROM model_versions WHERE name = '{MODEL}' AND {LIVE}"
            assert pg_rows(stack, live) == [(1,)]
            stack.stop("mlflow")
            stack.destination = good
            stack.start_mlflow()
            wait_status(urls, "ok")
            # then it registers, and both instances follow the new champion
            # (generous timeouts: the uploads share 2 loaded cores with four servers)
            done = stage(repo, "register", *common, *chain_args, "registry.retries=3",
                         "registry.timeout_seconds=60")
            assert done.returncode == 0, done.stderr
            reg = json.loads((new / "reports" / "registration.json").read_text())
            assert reg["version"] == 2, reg
            if not reg["promoted"]:  # the policy kept it challenger: a person promotes it
                p = run([sys.executable, "-m", "pipeline.promote", "2", "--reason",
                         "serve the seed-3 model", f"registry.tracking_uri={stack.tracking_uri}"],
                        repo, check=False)
                assert p.returncode == 0, p.stderr
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(version_of(u) == "2" for u in urls):
                    break
                time.sleep(0.3)
            assert [version_of(u) for u in urls] == ["2", "2"]
            load.wait_for("2")
        failed = [s for s in load.statuses if s != 200]
        print(f"{len(load.statuses)} requests through haproxy, {len(failed)} failed")
        assert load.statuses and not failed, (set(failed), load.errors[:5])
        # the failed registrations left no run marked complete without its version
        runs = client(stack).search_runs(
            [client(stack).get_experiment_by_name("govpipe").experiment_id])
        assert all(r.info.status != "FINISHED" or r.data.tags.get("govpipe.logged") == "true"
                   for r in runs)
    finally:
        lb.stop()
        for s in servers:
            s.stop()
        if background.poll() is None:
            stop_process_group(background, grace=5)
        background.stderr.close()
        stack.destination = "s3://govpipe-mlflow/artifacts"
        if "mlflow" not in stack.procs:
            stack.start_mlflow()
    for s in servers:
        assert KEY not in s.text()
        no_secret(stack, s.text())


# -- DVC remote on S3 -----------------------------------------------------------------------------
def _outputs(repo: Path) -> dict[str, str]:
    out = {}
    for top in ("artifacts", "reports", "metrics", "plots"):
        for p in sorted((repo / top).rglob("*")):
            if p.is_file() and p.name != "registration.json":
                out[str(p.relative_to(repo))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@needs_stack
def test_dvc_remote_on_s3_restores_a_fresh_clone_from_the_run_cache(stack, repo, tmp_path):
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
    # without dvc.lock nothing says what the outputs are: only the run cache can restore them
    (fresh / "dvc.lock").unlink()
    # fetch, not pull: with no dvc.lock a pull would also try (and fail) to check out the
    # stages' outputs; the data comes from data.dvc
    run([DVC, "fetch", "--run-cache"], fresh, **creds)
    run([DVC, "pull", "data.dvc"], fresh, **creds)
    repro = run([DVC, "repro", "governance"], fresh, **creds)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert "skipping run, checking out outputs" in repro.stdout, repro.stdout
    assert _outputs(fresh) == {k: v for k, v in _outputs(src).items() if k in _outputs(fresh)}
    assert set(_outputs(fresh)) >= {"artifacts/model.pkl", "reports/governance.json"}

