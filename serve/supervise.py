"""The main process owns its children: signals, a watch on every child, children that die with it.

Policy (issue 10, finding 3): **any child that dies stops the whole service with exit code 1**
and one log line naming it. A worker or HTTP process is not restarted in place: a process
killed mid-answer can leave its answer pipe half-written and its pipe lock held, and every
request it had in flight is lost anyway; a clean restart of the whole service (systemd
`Restart=on-failure`, a Kubernetes pod, a shell loop) is the only state known to be good.

* SIGTERM or SIGINT (Ctrl-C): drain. The service reports `draining` on /readyz, the HTTP
  processes stop accepting and finish their in-flight requests (the workers keep running for
  them), then the workers stop; everything is gone within `serve.shutdown_timeout` seconds,
  stragglers are killed. A second SIGINT/SIGTERM forces: everything is killed at once (130).
  The workers ignore SIGINT, so Ctrl-C in a terminal (which signals the whole process group)
  drains instead of killing the workers under in-flight requests.
* Children die with the main process: each one sets the Linux parent-death signal (SIGKILL),
  so a SIGKILLed main process leaves no orphan holding the port.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from contextlib import suppress
from typing import Any

log = logging.getLogger("serve")

EXIT_CHILD_DIED = 1
EXIT_FORCED = 130
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux; a no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:  # the parent died before the line above ran
        os._exit(EXIT_CHILD_DIED)


def worker_main(lit_api: Any, worker_id: int, request_queue: Any, transport: Any,
                callback_runner: Any, parent_pid: int) -> None:
    """Entry point of a spawned inference worker: LitServe's loop, owned by the main process."""
    from litserve.loops.loops import inference_worker

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process says when to stop
    inference_worker(lit_api, "cpu", worker_id, request_queue, transport, _SetupStatus(),
                     callback_runner, False)


class _SetupStatus(dict):
    """LitServe's loop reports setup status into a dict (a manager's, normally); here the
    workers' shared slots (serve.state) carry it, so writes go nowhere. Truthy on purpose:
    LitServe skips the write for an empty dict."""

    def __bool__(self) -> bool:
        return True

    def __setitem__(self, key: str, value: Any) -> None:
        pass


class Signals:
    """SIGTERM/SIGINT in the main process: the first asks for a drain, the second forces."""

    def __init__(self) -> None:
        self.stop_requested: str | None = None
        self._main_pid = os.getpid()

    def install(self) -> None:
        # Forked children (the HTTP processes) get uvicorn's own handlers; never ours.
        os.register_at_fork(after_in_child=self._in_child)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _in_child(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        die_with_parent(self._main_pid)

    def _handle(self, signum: int, frame: Any) -> None:
        if os.getpid() != self._main_pid:
            raise SystemExit(128 + signum)
        name = signal.Signals(signum).name
        if self.stop_requested is not None:
            log.warning("%s again: forcing the stop", name)
            raise ForcedStop()
        self.stop_requested = name
        # The main thread is in a sleep loop; the loop sees the flag within 0.1 s.


class ForcedStop(BaseException):
    """A second stop signal: kill everything now."""


def watch(children: dict[str, Any], signals: Signals) -> tuple[str, int]:
    """Block until a stop signal or a child's death; return (why, exit code)."""
    while True:
        if signals.stop_requested:
            return signals.stop_requested, 0
        for name, proc in children.items():
            if not proc.is_alive():
                log.error("%s (pid %s) exited with code %s; stopping the service (exit %d)",
                          name, proc.pid, proc.exitcode, EXIT_CHILD_DIED)
                return f"{name} died", EXIT_CHILD_DIED
        time.sleep(0.1)


def stop(front: list[Any], back: list[Any], deadline: float) -> None:
    """HTTP processes first (they drain, needing the workers), then the workers; by
    `deadline` (time.monotonic) everything is stopped, stragglers killed."""
    for p in front:
        with suppress(Exception):
            if p.is_alive():
                p.terminate()  # uvicorn: stop accepting, finish in-flight requests
    _join(front, deadline - 0.5)
    for p in back:
        with suppress(Exception):
            if p.is_alive():
                p.terminate()
    _join(back, deadline)


def kill_all(procs: list[Any]) -> None:
    for p in procs:
        with suppress(Exception):
            if p.is_alive():
                p.kill()
    for p in procs:
        with suppress(Exception):
            p.join(2)


def _join(procs: list[Any], deadline: float) -> None:
    for p in procs:
        with suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        with suppress(Exception):
            if p.is_alive():
                log.warning("%s (pid %s) did not stop in time; killing it", p.name, p.pid)
                p.kill()
                p.join(2)
