"""Child processes that tests and benchmarks start: a free loopback port, and a stop that
leaves nothing behind (shared by tests/serve_process.py, tests/mlflow_server.py and
bench/serve_load.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to `proc` (started with `start_new_session=True`), up to `grace` seconds for it
    to stop, then SIGKILL to its whole process group: whatever it left behind goes too."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
