"""What each inference worker is serving, readable by every HTTP process.

Workers are spawned processes and the HTTP processes are forked ones: they share nothing but
what is put in shared memory before they start. Each worker owns one slot and writes it when
its model state changes (startup, a swap, a failed resolve); HTTP processes read all slots for
/health, /metrics and to know which model version answers now (the prediction cache key).

The first worker to load a model also publishes what the HTTP side needs to build its request
schema (`model_info`: input columns, labels), so the main process never loads the model.

Reads are per request, so they avoid the lock: a writer bumps `generation` after every write
(under the lock) and a reader re-reads the slots only when the generation moved.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import time
from dataclasses import dataclass

STARTING, READY, FAILED = 0, 1, 2
_INFO_BYTES = 1 << 16


class _Slot(ctypes.Structure):
    _fields_ = [
        ("state", ctypes.c_int),
        ("degraded", ctypes.c_int),           # 1 while the last resolve()/load() failed
        ("name", ctypes.c_char * 128),
        ("version", ctypes.c_char * 128),
        ("reason", ctypes.c_char * 256),      # why degraded or failed: class name or refusal
        ("loaded_at", ctypes.c_double),
        ("checked_at", ctypes.c_double),      # last successful resolve()
        ("swaps", ctypes.c_int),
    ]


@dataclass(frozen=True)
class WorkerView:
    worker: int
    ready: bool
    degraded: bool
    name: str
    version: str
    reason: str
    loaded_at: float
    checked_at: float
    swaps: int


def _b(text: str, size: int = 255) -> bytes:
    return text.encode("utf-8", "replace")[:size]


class SharedState:
    def __init__(self, workers: int) -> None:
        ctx = mp.get_context("spawn")  # workers are spawned; forked readers inherit it too
        self.workers = workers
        self._slots = ctx.Array(_Slot, workers, lock=True)
        self._generation = ctx.RawValue(ctypes.c_ulonglong, 0)
        self._info = ctx.RawArray(ctypes.c_char, _INFO_BYTES)
        self._draining = ctx.RawValue(ctypes.c_int, 0)  # set by the main process on shutdown
        self._seen = -1
        self._cached: tuple[WorkerView, ...] = ()

    # -- writers (one worker per slot) ---------------------------------------------------------
    def _write(self, worker: int, **fields: object) -> None:
        with self._slots.get_lock():
            slot = self._slots.get_obj()[worker]
            for k, v in fields.items():
                setattr(slot, k, _b(v) if isinstance(v, str) else v)
            self._generation.value += 1

    def loaded(self, worker: int, name: str, version: str, swapped: bool) -> None:
        now = time.time()
        swaps = self.view()[worker].swaps + (1 if swapped else 0)
        self._write(worker, state=READY, degraded=0, reason="", name=name, version=version,
                    loaded_at=now, checked_at=now, swaps=swaps)

    def checked(self, worker: int) -> None:
        self._write(worker, degraded=0, reason="", checked_at=time.time())

    def degraded(self, worker: int, reason: str) -> None:
        self._write(worker, degraded=1, reason=reason)

    def failed(self, worker: int, reason: str) -> None:
        """Setup failed (e.g. the source refused the model): the main process reports it."""
        self._write(worker, state=FAILED, reason=reason)

    def set_draining(self) -> None:
        self._draining.value = 1

    @property
    def draining(self) -> bool:
        return bool(self._draining.value)

    def failures(self) -> list[str]:
        with self._slots.get_lock():
            return [s.reason.decode("utf-8", "replace") for s in self._slots.get_obj()
                    if s.state == FAILED]

    def publish_model_info(self, info: dict) -> dict:
        """Publish `info` unless a worker already did; return the published one."""
        blob = json.dumps(info).encode()
        if len(blob) >= _INFO_BYTES:
            raise ValueError("model info too large to publish")
        with self._slots.get_lock():
            if not self._info.value:
                self._info.value = blob
            return json.loads(self._info.value)

    # -- readers -------------------------------------------------------------------------------
    def view(self) -> tuple[WorkerView, ...]:
        gen = self._generation.value
        if gen != self._seen:
            with self._slots.get_lock():
                gen = self._generation.value
                views = tuple(
                    WorkerView(i, s.state == READY, bool(s.degraded), s.name.decode(),
                               s.version.decode(), s.reason.decode("utf-8", "replace"), s.loaded_at,
                               s.checked_at, s.swaps)
                    for i, s in enumerate(self._slots.get_obj())
                )
            self._cached, self._seen = views, gen
        return self._cached

    def model_info(self) -> dict | None:
        with self._slots.get_lock():
            raw = self._info.value
        return json.loads(raw) if raw else None

    def serving_version(self) -> str | None:
        """The version every worker serves, or None (starting up, or mid-swap)."""
        views = self.view()
        first = views[0].version
        if all(v.ready and v.version == first for v in views):
            return first
        return None

    def __getstate__(self) -> dict:
        # Pickled into spawned workers: the reader cache is per process.
        return {"workers": self.workers, "_slots": self._slots, "_generation": self._generation,
                "_info": self._info, "_draining": self._draining}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._seen, self._cached = -1, ()
