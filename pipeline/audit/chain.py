"""The prediction audit log on disk: hash-chained JSON-lines segments, the writer, the reader
and `verify` (the server writes it, `python -m pipeline.audit verify DIR` and the monitor read it).

Layout: ``DIR/<stream>.<segment>.jsonl``. A stream is one writer (one HTTP process run), and
only it appends to its files: lines of different processes can never interleave, and no lock
is shared between processes. Each line is one record in canonical JSON whose last field is
``"hash":"<sha256>"``: the sha256 of the line's bytes before that field (closing brace put
back). Every record carries ``seq`` (0, 1, 2, ... within its stream) and ``prev`` (the hash of
the record before it; ``GENESIS`` for the first). So an edited byte breaks the record's own
hash, a deleted record or segment breaks the next record's ``prev``/``seq``, and a cut line is
not JSON. Rotation starts the next segment of the same chain. Expiry (retention) deletes whole
segments, oldest first, and says so in the deleting writer's own chain (a record of kind
``expired`` with the file, its last ``seq`` and ``hash``), so verify tells an expired head of a
stream from a deleted one. A graceful stop appends a ``close`` record: a stream without one
is reported as open (still running, or crashed - its last unflushed records are lost).

What a chain without a secret cannot do: someone who rewrites every record after an edit,
hashes included, makes a consistent chain. Keep the hash verify prints (the last record's)
somewhere else - a ticket, a registry tag - and compare (``--expect-last``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
FORMAT = 1
SEGMENT = re.compile(r"^(?P<stream>[A-Za-z0-9_-]+)\.(?P<segment>\d{6})\.jsonl$")
_HASH_TAIL = re.compile(rb',"hash":"([0-9a-f]{64})"\}$')
KINDS = ("prediction", "outcome", "expired", "close")


def canonical(obj: dict) -> str:
    """The one serialisation of a record: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def seal(body: str) -> tuple[str, str]:
    """A canonical record without `hash` -> (its line, its hash)."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return f'{body[:-1]},"hash":"{digest}"}}\n', digest


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def segment_name(stream: str, segment: int) -> str:
    return f"{stream}.{segment:06d}.jsonl"


class ChainWriter:
    """Appends records to one stream, rotating by size or age. Not thread-safe: one flusher
    thread per process owns it. A failed write leaves neither a partial line (the file is cut
    back) nor a gap (seq and prev only advance once the bytes are written); the caller keeps
    the records and retries."""

    def __init__(self, directory: Path, stream: str, *, rotate_bytes: int,
                 rotate_seconds: float, fsync: bool = False) -> None:
        if not SEGMENT.match(segment_name(stream, 0)):
            raise ValueError(f"stream name {stream!r}: letters, digits, _ and - only")
        self.dir, self.stream = Path(directory), stream
        self.rotate_bytes, self.rotate_seconds, self.fsync = rotate_bytes, rotate_seconds, fsync
        self.seq, self.prev = 0, GENESIS
        self.segment = -1
        self._fd: int | None = None
        self._size = 0
        self._opened = 0.0

    @property
    def path(self) -> Path:
        return self.dir / segment_name(self.stream, self.segment)

    def _rotate_due(self) -> bool:
        return self._fd is None or self._size >= self.rotate_bytes or \
            time.time() - self._opened >= self.rotate_seconds

    def _open_next(self) -> None:
        self.close_file()
        self.segment += 1
        # O_EXCL: a stream's segment is never reopened, so nothing is appended to a file
        # another run wrote.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self._size, self._opened = 0, time.time()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Chain and write `records` (each without stream/seq/prev/hash) in one write."""
        if not records:
            return
        if self._rotate_due():
            self._open_next()
        seq, prev, lines = self.seq, self.prev, []
        for r in records:
            line, prev = seal(canonical({**r, "v": FORMAT, "stream": self.stream, "seq": seq,
                                         "prev": prev}))
            lines.append(line)
            seq += 1
        data = "".join(lines).encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            try:  # never leave half a line for the next write to follow
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)
        self.seq, self.prev = seq, prev

    def close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def expire(directory: Path, retention_seconds: float, now: float | None = None,
           keep: set[Path] = frozenset()) -> list[dict[str, Any]]:
    """Delete whole segments last written more than `retention_seconds` ago (never a line);
    the `expired` records to append to the caller's chain, one per deleted file. `keep`:
    files still open for writing."""
    now = time.time() if now is None else now
    out = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        if path in keep or not SEGMENT.match(path.name):
            continue
        try:
            if now - path.stat().st_mtime < retention_seconds:
                continue
            last = _last_record(path)
            path.unlink()
        except FileNotFoundError:  # another process expired it first
            continue
        out.append({"kind": "expired", "ts": round(now, 3), "file": path.name,
                    "last_seq": None if last is None else last.get("seq"),
                    "last_hash": None if last is None else last.get("hash")})
    return out


def _last_record(path: Path) -> dict | None:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 65536))
        tail = f.read().splitlines()
    for line in reversed(tail):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


# -- reading -----------------------------------------------------------------------------------
def segments(directory: Path) -> dict[str, list[Path]]:
    """Stream -> its segment files in order. A DataError-worthy problem (no such directory)
    is the caller's to report."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in Path(directory).iterdir():
        m = SEGMENT.match(path.name)
        if m and path.is_file():
            out.setdefault(m["stream"], []).append((int(m["segment"]), path))
    return {s: [p for _, p in sorted(v)] for s, v in sorted(out.items())}


def records(directory: Path) -> Iterator[dict[str, Any]]:
    """Every record of every stream, stream by stream, in chain order; lines that are not
    JSON are skipped (verify reports them)."""
    for files in segments(directory).values():
        for path in files:
            with path.open("rb") as f:
                for line in f:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue


# -- verify ------------------------------------------------------------------------------------
@dataclass
class Problem:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.what}"


@dataclass
class Report:
    records: int = 0
    files: int = 0
    streams: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    open_streams: list[str] = field(default_factory=list)
    last_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    expired: set[tuple] = field(default_factory=set)  # (file, last seq, last hash) expired

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "files": self.files,
                "streams": self.streams, "first": iso(self.first_ts), "last": iso(self.last_ts),
                "kinds": dict(sorted(self.kinds.items())), "open_streams": self.open_streams,
                "last_hash": self.last_hash, "problems": [str(p) for p in self.problems]}


def _check_line(raw: bytes) -> tuple[dict | None, str | None]:
    """A line -> (record, None) or (None, what is wrong)."""
    if not raw.endswith(b"\n"):
        return None, "truncated record (no end of line)"
    body = raw[:-1]
    m = _HASH_TAIL.search(body)
    if m is None:
        return None, "not a sealed record (corrupted or truncated: no trailing hash)"
    digest = hashlib.sha256(body[:m.start()] + b"}").hexdigest()
    if digest != m[1].decode():
        return None, "record hash mismatch: the record was edited"
    try:
        rec = json.loads(body)
    except ValueError:
        return None, "not valid JSON"
    if not isinstance(rec, dict) or rec.get("kind") not in KINDS:
        return None, f"unknown record kind {rec.get('kind') if isinstance(rec, dict) else rec!r}"
    return rec, None


def verify(directory: Path, on_record: Callable[[dict], None] | None = None) -> Report:
    """Walk every stream's chain across its segments; one Problem per broken stream (the
    first broken link: file, line, what is wrong; later records of that stream are unchecked
    links). `on_record` sees each record that verified, in chain order (the monitor reads the
    log in this one pass)."""
    report = Report()
    streams = segments(directory)
    heads: list[tuple[str, int, str, Path]] = []  # first record of each stream
    for stream, files in streams.items():
        report.streams += 1
        seq, prev, closed, problem = None, None, False, None
        for path in files:
            report.files += 1
            with path.open("rb") as f:
                for n, raw in enumerate(f, 1):
                    rec, why = _check_line(raw)
                    if why is None and rec.get("stream") != stream:
                        why = f"record of stream {rec.get('stream')!r} in stream {stream}'s file"
                    if why is None and closed:
                        why = "record after the stream's close record"
                    if why is None and seq is None:
                        heads.append((stream, rec["seq"], rec["prev"], path))
                    elif why is None and rec["seq"] != seq + 1:
                        gap = rec["seq"] - seq - 1
                        why = (f"chain gap: seq {rec['seq']} follows {seq} "
                               f"({gap} record(s) missing)" if gap > 0 else
                               f"chain out of order: seq {rec['seq']} follows {seq}")
                    elif why is None and rec["prev"] != prev:
                        why = "chain broken: prev does not match the previous record's hash"
                    if why is not None:
                        problem = Problem(path.name, n, why)
                        break
                    seq, prev = rec["seq"], rec["hash"]
                    closed = rec["kind"] == "close"
                    _count(report, rec)
                    if on_record is not None:
                        on_record(rec)
            if problem is not None:
                break
        if problem is not None:
            report.problems.append(problem)
        elif not closed:
            report.open_streams.append(stream)
    removed = {(s, h) for _, s, h in report.expired}  # what expiry deleted, by its last link
    for stream, seq, prev, path in heads:
        if seq == 0 and prev == GENESIS:
            continue
        if (seq - 1, prev) not in removed:
            report.problems.append(Problem(
                path.name, 1, f"stream {stream} starts at seq {seq}: its earlier segment(s) "
                "are missing and no expiry record says they were removed"))
    report.problems.sort(key=lambda p: (p.file, p.line))
    return report


def _count(report: Report, rec: dict) -> None:
    report.records += 1
    kind = rec["kind"]
    report.kinds[kind] = report.kinds.get(kind, 0) + 1
    ts = rec.get("ts")
    if isinstance(ts, int | float):
        report.first_ts = ts if report.first_ts is None else min(report.first_ts, ts)
        if report.last_ts is None or ts >= report.last_ts:
            report.last_ts, report.last_hash = ts, rec["hash"]
    if kind == "expired":
        report.expired.add((rec.get("file"), rec.get("last_seq"), rec.get("last_hash")))
