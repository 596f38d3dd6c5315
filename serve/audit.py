"""The server's side of the prediction audit log (format and verify: pipeline.audit.chain).

Off the request's critical path: a scoring request only appends one tuple (its rows and
answers, by reference) to a list; a flusher thread in each HTTP process turns them into
records - salted input hash, logged fields, chain hashes - and writes them to that process's
own stream every `serve.audit.flush_interval` seconds (or once `flush_records` are buffered)
in one write. A crash loses at most the records of the last interval; a graceful stop
flushes and closes the stream. Workers never write: the HTTP process has every field, and one
writer per stream is what keeps lines from interleaving without a lock between processes.

Startup (main process, before any worker starts): the salt must be set and the directory
writable - a probe file is written, fsynced and removed - or the server refuses to start
(ConfigError / OutputError, exit 2). While running, a failed write keeps the records
buffered (up to `max_buffered`) and retries; meanwhile /readyz reports the error, and with
`on_write_error: refuse` (default) scoring answers 503 so nothing is decided unlogged.

Feedback (POST /feedback) checks request ids against every stream in the directory (read
incrementally, so ids another HTTP process logged are found once it has flushed) and
appends the outcomes to this process's stream, all of a batch or none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from pipeline.audit.chain import SEGMENT, ChainWriter, expire
from pipeline.runtime.errors import ConfigError, OutputError

log = logging.getLogger("serve.audit")

GAUGE_WINDOW = 1000  # records per group behind each rolling selection-rate gauge
EXPIRE_EVERY = 3600.0  # seconds between retention sweeps (and one at start)


def key_id(api_key: bytes | None) -> str | None:
    """What the log records about the caller's key: a hash prefix, never the key."""
    if api_key is None:
        return None
    return hashlib.sha256(b"govpipe-api-key-id:" + api_key).hexdigest()[:12]


def _json_value(v: Any) -> Any:
    return v if v is None or isinstance(v, str | int | float | bool) else str(v)


class AuditLog:
    def __init__(self, spec: Any, *, salt: str, api_key: bytes | None) -> None:
        self.spec = spec
        self.dir = Path(spec.dir)
        self._salt = salt.encode("utf-8")
        self.key_id = key_id(api_key)
        self.columns: tuple[str, ...] = ()
        self.logged: list[tuple[str, int]] = []   # (name, row index) of logged inputs
        self.extras: tuple[str, ...] = ()          # request-only attributes, logged too
        self.labels: dict[str, int] = {}
        self.threshold = 0.0
        self.error: str | None = None
        self.dropped = 0
        self._buf: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flushed = threading.Condition(self._lock)
        self._flushes = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._writer: ChainWriter | None = None
        self._known: dict[tuple[str, int], bool] = {}  # (request id, index) -> has an outcome
        self._offsets: dict[Path, int] = {}
        self._windows: dict[tuple[str, str], deque] = {}
        self._gauges: dict[tuple[str, str], Any] = {}

    # -- startup (main process) ----------------------------------------------------------------
    @classmethod
    def open(cls, spec: Any, api_key: bytes | None, salt: str) -> AuditLog:
        """Refuse to start (OutputError) unless the log can be written."""
        directory = Path(spec.dir)
        probe = directory / f".probe-{os.getpid()}"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
            probe.unlink()
        except OSError as e:
            raise OutputError(f"serve.audit.dir {directory}: cannot write the audit log "
                              f"({e.strerror or e}); refusing to serve unlogged") from None
        return cls(spec, salt=salt, api_key=api_key)

    def describe(self, data: Any, columns: tuple[str, ...], extras: tuple[str, ...],
                 labels: dict[str, str | None], threshold: float) -> None:
        """What is logged, once the model's input columns are known."""
        self.columns, self.extras, self.threshold = columns, extras, threshold
        sensitive = {s.column for s in data.sensitive.values()}
        wanted = set(columns) if self.spec.features == "all" else set(self.spec.features)
        unknown = sorted(wanted - set(columns))
        if unknown:
            raise ConfigError(f"serve.audit.features: {unknown} are not model inputs "
                              f"(expected from: {', '.join(columns)})")
        self.logged = [(c, i) for i, c in enumerate(columns) if c in wanted | sensitive]
        self.attributes = sorted(sensitive & (set(columns) | set(extras)))
        self.labels = {v: k == "positive" for k, v in labels.items() if v is not None}

    # -- each HTTP process -------------------------------------------------------------------
    def start(self, index: int) -> None:
        """In the HTTP process (after the fork): its own stream and flusher thread."""
        stream = f"http{index}-{os.getpid()}-{int(time.time() * 1000)}"
        self._writer = ChainWriter(self.dir, stream,
                                   rotate_bytes=int(self.spec.rotate_mb * 1_000_000),
                                   rotate_seconds=self.spec.rotate_hours * 3600,
                                   fsync=self.spec.fsync)
        self._thread = threading.Thread(target=self._run, name="audit-flusher", daemon=True)
        self._thread.start()

    def predictions(self, request_id: str, ref: dict, sha256: str | None, rows: list,
                    extras: list | None, preds: list, latency_ms: float) -> None:
        """The hot path's whole cost: one append."""
        with self._lock:
            self._buf.append(("p", time.time(), request_id, ref, sha256, rows, extras, preds,
                              latency_ms))
            n = len(self._buf)
        if n >= self.spec.flush_records:
            self._wake.set()

    def refusing(self) -> str | None:
        """Why scoring must answer 503 now (the log cannot be written), or None."""
        if self.error is not None and self.spec.on_write_error == "refuse":
            return self.error
        return None

    def close(self) -> None:
        """Graceful stop: flush, then the stream's close record."""
        if self._thread is None:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)
        self._thread = None

    # -- the flusher thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_expiry = 0.0
        while True:
            self._wake.wait(self.spec.flush_interval)
            self._wake.clear()
            stop = self._stop
            extra = []
            if time.monotonic() >= next_expiry:
                next_expiry = time.monotonic() + EXPIRE_EVERY
                extra = self._expire()
            if stop:
                extra.append({"kind": "close", "ts": round(time.time(), 3)})
            self.flush(extra)
            if stop:
                self._writer.close_file()
                return

    def _expire(self) -> list[dict]:
        keep = {self._writer.path} if self._writer.segment >= 0 else set()
        try:
            return expire(self.dir, self.spec.retention_days * 86400, keep=keep)
        except OSError as e:
            log.error("audit log %s: retention sweep failed (%s)", self.dir, e.strerror or e)
            return []

    def flush(self, extra: list[dict] | None = None) -> None:
        with self._lock:
            batch, self._buf = self._buf, []
        records = self._records(batch) + list(extra or ())
        try:
            self._writer.append(records)
        except OSError as e:
            with self._lock:
                self._buf[:0] = batch  # keep them, in order, for the next try
                over = len(self._buf) - self.spec.max_buffered
                if over > 0:
                    del self._buf[:over]
                    self.dropped += over
            if self.error is None:
                log.error("audit log %s: write failed (%s); %s", self.dir, e.strerror or e,
                          "scoring answers 503 until it works" if
                          self.spec.on_write_error == "refuse" else "still serving")
            self.error = f"audit log {self.dir}: cannot write ({e.strerror or e})"
            _metrics().audit_errors.inc()
            return
        if self.error is not None:
            log.info("audit log %s: writing again", self.dir)
        self.error = None
        _metrics().audit_records.inc(len(records))
        self._gauge(records)
        with self._flushed:
            self._flushes += 1
            self._flushed.notify_all()

    def _records(self, batch: list[tuple]) -> list[dict]:
        out = []
        salt, kid, logged, extras = self._salt, self.key_id, self.logged, self.extras
        for item in batch:
            if item[0] == "o":
                out.extend(item[2])
                continue
            _, ts, rid, ref, sha, rows, ext, preds, latency = item
            model = {"name": ref["name"], "version": ref["version"], "sha256": sha}
            ts = round(ts, 3)
            for i, (row, p) in enumerate(zip(rows, preds, strict=True)):
                values = {c: _json_value(row[j]) for c, j in logged}
                if ext is not None and ext[i] is not None:
                    values.update({c: _json_value(v) for c, v in zip(extras, ext[i],
                                                                    strict=True)})
                digest = hmac.new(salt, json.dumps(row, default=str).encode(),
                                  hashlib.sha256).hexdigest()
                out.append({"kind": "prediction", "ts": ts, "request_id": rid, "index": i,
                            "model": model, "input_sha256": digest, "features": values,
                            "probability": p["probability"], "label": p["label"],
                            "label_id": p["label_id"], "threshold": self.threshold,
                            "latency_ms": latency, "key_id": kid})
        return out

    def _gauge(self, records: list[dict]) -> None:
        """Rolling selection rate per (attribute column, value) over the last GAUGE_WINDOW
        records of this process: Prometheus gauges, one series per live process."""
        for r in records:
            if r["kind"] != "prediction":
                continue
            for a in self.attributes:
                v = r["features"].get(a)
                if v is None:
                    continue
                w = self._windows.get((a, v))
                if w is None:
                    w = self._windows[(a, v)] = deque(maxlen=GAUGE_WINDOW)
                    self._gauges[(a, v)] = _metrics().selection_rate.labels(
                        attribute=a, group=str(v))
                w.append(r["label_id"])
        for k, w in self._windows.items():
            self._gauges[k].set(sum(w) / len(w))

    # -- feedback ---------------------------------------------------------------------------
    def wait_flush(self, timeout: float) -> None:
        """Block until the flusher wrote what is buffered now (or `timeout`)."""
        with self._flushed:
            target = self._flushes + 1
            self._wake.set()
            self._flushed.wait_for(lambda: self._flushes >= target, timeout)

    def refresh(self) -> None:
        """Read what every stream appended since the last call: predictions and outcomes."""
        for path in sorted(self.dir.iterdir()):
            if not SEGMENT.match(path.name):
                continue
            start = self._offsets.get(path, 0)
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    chunk = f.read()
            except FileNotFoundError:
                continue
            end = chunk.rfind(b"\n") + 1  # only whole lines
            self._offsets[path] = start + end
            for line in chunk[:end].splitlines():
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                kind = r.get("kind")
                if kind == "prediction":
                    self._known.setdefault((r["request_id"], r["index"]), False)
                elif kind == "outcome":
                    self._known[(r["request_id"], r["index"])] = True

    def check_outcomes(self, items: list[tuple[str, int, str]]) -> list[dict]:
        """Problems with a feedback batch, as 422-style items with a `status`: unknown ids
        (404), duplicates (409). Empty when every item may be appended."""
        problems, seen = [], set()
        for n, (rid, index, _) in enumerate(items):
            key = (rid, index)
            state = self._known.get(key)
            where = f"outcomes[{n}]"
            if state is None:
                problems.append({"field": f"{where}.request_id", "status": 404,
                                 "type": "unknown_request",
                                 "msg": f"no logged prediction for request id {rid!r} "
                                        f"index {index}"})
            elif state or key in seen:
                problems.append({"field": f"{where}.request_id", "status": 409,
                                 "type": "duplicate_outcome",
                                 "msg": f"an outcome for request id {rid!r} index {index} "
                                        "was already recorded"})
            seen.add(key)
        return problems

    def outcomes(self, items: list[tuple[str, int, str]]) -> None:
        ts = round(time.time(), 3)
        recs = [{"kind": "outcome", "ts": ts, "request_id": rid, "index": index,
                 "label": label, "label_id": int(self.labels[label]), "key_id": self.key_id}
                for rid, index, label in items]
        for rid, index, _ in items:
            self._known[(rid, index)] = True
        with self._lock:
            self._buf.append(("o", ts, recs))
        self._wake.set()


def _metrics() -> Any:
    from serve import metrics

    return metrics.get()
