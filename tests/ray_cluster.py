"""A Ray cluster of the tests' (and benchmarks') own, and the helpers that find its processes
(shared by tests/test_launchers.py and bench/launcher_sweep.py).

`ray start --head --block` on 127.0.0.1 with 2 CPUs, a token of its own and a temp dir of its
own (short: Ray's socket paths must fit in 107 bytes). Stopping it (SIGTERM to `ray start`)
stops every Ray process it started; `ray stop` would stop every Ray on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# "0" puts a Ray node on 127.0.0.1 (Ray's single-machine mode); Ray reads it at import.
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayCluster:
    def __init__(self, cpus: int = 2, **extra_env: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="govpipe-ray-"))
        # The token from the environment: nothing is written to ~/.ray.
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    LOOPBACK: "0", "RAY_USAGE_STATS_ENABLED": "0", **extra_env}
        self.address = ""
        self.log = (self.dir / "head.log").open("w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "ray"), "start", "--head", "--block", f"--num-cpus={cpus}",
             "--port=0", "--include-dashboard=false", "--disable-usage-stats",
             f"--temp-dir={self.dir}"],
            cwd=self.dir, env=self.process_env(), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)

    def process_env(self, **extra: str) -> dict[str, str]:
        """This environment, with the cluster's settings, `pipeline` importable everywhere."""
        e = dict(os.environ)
        e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '')}"
        e["PYTHONPATH"] = str(ROOT)
        e.update(self.env)
        e.update(extra)
        return e

    def wait_for_address(self, timeout: float = 120) -> str:
        marker = self.dir / "ray_current_cluster"  # written once the head is up
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ray start exited: {(self.dir / 'head.log').read_text()}")
            if marker.exists() and marker.read_text().strip():
                self.address = marker.read_text().strip()
                assert self.address.startswith("127.0.0.1:"), self.address
                return self.address
            time.sleep(0.2)
        log = (self.dir / "head.log").read_text()
        raise AssertionError(f"no Ray head after {timeout} s: {log}")

    def workers_with_open(self, path: Path) -> list[psutil.Process]:
        """Ray worker processes that hold `path` open (a job's log: the worker running it)."""
        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if (p.info["cmdline"] or [""])[0].startswith("ray::") and any(
                        f.path == str(path) for f in p.open_files()):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def stop(self) -> None:
        stop_process_group(self.proc, grace=60)  # its reaper stops the cluster with it
        self.log.close()
        stop_leftovers(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def naming(marker: Path) -> list[psutil.Process]:
    """Processes whose command line names `marker` (a private temp dir): ours, and only ours."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(marker) in a for a in p.info["cmdline"] or []):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def stop_leftovers(marker: Path) -> None:
    """SIGKILL, by pid, whatever still names our private temp dir."""
    for p in naming(marker):
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue


def listening_addresses(procs: list[psutil.Process]) -> set[str]:
    """The IP addresses that these processes accept connections on."""
    found: set[str] = set()
    for p in procs:
        try:
            found |= {c.laddr.ip for c in p.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
