"""Replicated serving: two `python -m serve` instances on loopback ports behind haproxy
(Debian's package, deploy/haproxy.cfg: health checks on /health, retries, redispatch).

Under continuous traffic (a unique record per request: every answer comes from a worker), a
rolling restart — SIGTERM one instance, start it again, wait until the balancer sees it healthy,
then the other — fails no request, and both instances follow a new release. The release here is
a pointer-file model source (tests/serve_sources.py) so the test needs no registry; serving from
the PostgreSQL + S3 registry through its outages is tests/test_stack.py."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import env
from tests.processes import free_port, stop_process_group
from tests.serve_process import INPUTS, KEY, Server, record
from tests.serve_sources import point

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("haproxy") is None,
                                 reason="haproxy not installed (.ci/run installs it)")]
HAPROXY = shutil.which("haproxy") or "haproxy"


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


def version_of(url: str) -> str | None:
    return (httpx.get(f"{url}/readyz", timeout=5).json().get("model") or {}).get("version")


def test_a_rolling_restart_under_load_fails_no_request_and_all_follow_a_release(
        serve_models, built, tmp_path):
    from pipeline.runtime.hashing import file_sha256

    for name, path in serve_models.items():
        shutil.copy(path, tmp_path / f"{name}.pkl")
    pointer = tmp_path / "pointer.json"
    point(pointer, "a.pkl")
    source = ["serve/source=local", "serve.source._target_=tests.serve_sources.PointerSource",
              "~serve.source.path", f"+serve.source.pointer={pointer}",
              "serve.reload.interval=0.5", "serve.workers_per_device=1", "serve.api_servers=1"]
    servers = []
    for i in (1, 2):
        work = tmp_path / f"s{i}"
        work.mkdir()
        servers.append(Server(work, [*source, f"serve.audit.dir={work / 'audit'}"]))
    lb = Haproxy(tmp_path, servers[0].port, servers[1].port)
    test = pd.read_parquet(built / "artifacts" / "split" / "test.parquet").head(300)
    records = [record(test[INPUTS], i) for i in range(len(test))]
    version = {n: file_sha256(tmp_path / f"{n}.pkl")[:12] for n in ("a", "b")}
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
            load.wait_for(version["a"])
            for s in servers:  # one at a time; the balancer needs 2 checks x 500 ms to rise
                s.stop()
                s.start()
                time.sleep(2)
                load.wait_for(version["a"])
            point(pointer, "b.pkl")  # a new release: both instances follow it
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(
                    version_of(s.url) == version["b"] for s in servers):
                time.sleep(0.3)
            assert [version_of(s.url) for s in servers] == [version["b"]] * 2
            load.wait_for(version["b"])
        failed = [st for st in load.statuses if st != 200]
        print(f"{len(load.statuses)} requests through haproxy, {len(failed)} failed")
        assert len(load.statuses) > 50 and not failed, (set(failed), load.errors[:5])
    finally:
        lb.stop()
        for s in servers:
            s.stop()
    for s in servers:
        assert KEY not in s.text()
