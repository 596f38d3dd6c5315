"""`python -m serve` as a real process for tests: its own process group, a free port on
127.0.0.1, a log file, and a stop() that leaves nothing running."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import psutil

from tests.conftest import env
from tests.processes import free_port, stop_process_group

INPUTS = ["age", "workclass", "education-num", "marital-status", "occupation",
          "relationship", "capital-gain", "capital-loss", "hours-per-week", "native-country",
          "sex"]
KEY = "test-" + secrets.token_hex(16)
SALT = "salt-" + secrets.token_hex(16)  # the audit log's input-hash salt (serve.audit)


def serve_env(**extra: str):
    """The environment every test server runs with: the API key and the audit salt."""
    return env(GOVPIPE_API_KEY=KEY, GOVPIPE_PII_SALT=SALT, **extra)


def record(df: pd.DataFrame, i: int) -> dict:
    """Row `i` of `df` as a JSON-ready request record (numpy scalars as Python values)."""
    return {c: (v.item() if hasattr(v, "item") else v) for c, v in df.iloc[i].items()}


def raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send bytes no HTTP client would, return what the server answers (until it closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


class Server:
    """`python -m serve OVERRIDES` in its own process group, logging to a file."""

    def __init__(self, workdir: Path, overrides: list[str],
                 extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        self.overrides = [f"serve.port={self.port}", *overrides]
        self.proc: subprocess.Popen | None = None
        self.extra_env = extra_env or {}

    def start(self, timeout: float = 90) -> Server:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serve", *self.overrides], cwd=self.workdir,
                env=serve_env(**self.extra_env), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"server not ready in {timeout} s:\n{self.text()}")

    def tree(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        """SIGTERM, then make sure: SIGKILL the whole process group."""
        if self.proc is None:
            return
        stop_process_group(self.proc)
        if self.proc.poll() is None:
            self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def post(self, body, key: str | None = KEY, path: str = "/predict",
             headers: dict[str, str] | None = None, **kw) -> httpx.Response:
        headers = {**({"X-API-Key": key} if key is not None else {}), **(headers or {})}
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
            return httpx.post(f"{self.url}{path}", content=body, headers=headers,
                              timeout=30, **kw)
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=30, **kw)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        total = 0.0
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            metric, _, lbl = sample.partition("{")
            got = set(lbl.rstrip("}").split(",")) if lbl else set()
            if metric == name and all(f'{k}="{v}"' in got for k, v in labels.items()):
                total += float(value)
        return total


class Traffic:
    """Continuous traffic to `url` from background threads, one unique record per request
    (cache misses: every answer comes from a worker), recording every status and every model
    version that answered. `with Traffic(url, records) as t: ...; t.wait_for("2")`."""

    def __init__(self, url: str, records: list[dict], threads: int = 2) -> None:
        self.url, self.records = url, records
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, threads))
                         for i in range(threads)]

    def _run(self, i: int, step: int) -> None:
        with httpx.Client(timeout=30) as c:
            while not self._stop.is_set():
                rec = self.records[i % len(self.records)] | {"age": 17 + i % 70,
                                                              "hours-per-week": 1 + i % 97}
                try:
                    r = c.post(f"{self.url}/predict", json=rec, headers={"X-API-Key": KEY})
                    self.statuses.append(r.status_code)
                    if r.status_code == 200:
                        self.versions.append(r.json()["model"]["version"])
                    else:
                        self.errors.append(r.text[:200])
                except httpx.HTTPError as e:
                    self.statuses.append(0)
                    self.errors.append(repr(e))
                i += step

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def wait_for(self, version: str, timeout: float = 60) -> None:
        """Until an answer from now on comes from `version`."""
        deadline = time.monotonic() + timeout
        n = len(self.versions)
        while time.monotonic() < deadline:
            if version in self.versions[n:]:
                return
            time.sleep(0.3)
        raise AssertionError(f"version {version} never answered; saw {set(self.versions[n:])}")

    def failed(self) -> list[int]:
        return [s for s in self.statuses if s != 200]
