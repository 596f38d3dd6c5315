"""`python -m serve` as a real process for tests: its own process group, a free port on
127.0.0.1, a log file, and a stop() that leaves nothing running."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
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
