"""The :class:`Scrubber`: run detectors, resolve overlaps, replace or report hits."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pipeline.config.privacy import PrivacyConfig, build_detectors

from .detectors import SHADOW, Detector
from .findings import FileFinding, FileFindings, Finding, ScanReport

__all__ = ["Scrubber", "resolve_overlaps"]

# Files are scanned in blocks of whole lines of about this size: large enough for the
# regex engine to run at full speed, small enough to keep memory flat on huge logs.
_BLOCK_BYTES = 1 << 20
# A NUL byte in the first block marks a file as binary (the heuristic git and grep use).
_SNIFF_BYTES = 8192


def _drop_shadowed(real: list[Finding], shadows: list[Finding]) -> list[Finding]:
    """Remove real findings lying inside a shadow (but not those with exactly the shadow's
    span: another detector positively validated that text)."""
    shadows.sort()
    starts = [sh.start for sh in shadows]
    # A shadow containing f starts at most `longest` characters before f.
    longest = max(sh.end - sh.start for sh in shadows)
    out = []
    for f in real:
        i = bisect_right(starts, f.start) - 1
        hidden = False
        while i >= 0 and starts[i] >= f.start - longest:
            sh = shadows[i]
            if sh.end >= f.end and (sh.start, sh.end) != (f.start, f.end):
                hidden = True
                break
            i -= 1
        if not hidden:
            out.append(f)
    return out


def resolve_overlaps(
    findings: Iterable[Finding], order: Mapping[str, int] | None = None
) -> list[Finding]:
    """Non-overlapping findings sorted by position.

    1. Shadows (rejected look-alikes, see :data:`~pipeline.privacy.detectors.SHADOW`) hide
       the findings of other detectors that lie inside them, then are discarded.
    2. Overlaps: earliest start wins, then the longest span, then the detector listed
       first (``order`` maps entity -> rank). Anything overlapping a kept finding is
       dropped. Deterministic for a given detector list.
    """
    real: list[Finding] = []
    shadows: list[Finding] = []
    for f in findings:
        (shadows if f.entity == SHADOW else real).append(f)
    if shadows and real:
        real = _drop_shadowed(real, shadows)
    if len(real) < 2:
        return real
    rank = order or {}
    unranked = 1 << 30
    real.sort(key=lambda f: (f.start, f.start - f.end, rank.get(f.entity, unranked), f.entity))
    kept: list[Finding] = []
    last_end = -1
    for f in real:
        if f.start >= last_end:
            kept.append(f)
            last_end = f.end
    return kept


class Scrubber:
    """Finds and masks PII with a list of detectors.

    >>> s = Scrubber.from_config()
    >>> s.scrub("mail jane.doe@example.com or call +44 20 7946 0958")
    'mail [EMAIL] or call [PHONE]'
    """

    def __init__(self, detectors: Iterable[Detector] | None = None):
        self.detectors: list[Detector] = (
            list(detectors) if detectors is not None else build_detectors(None)
        )
        if not self.detectors:
            raise ValueError("Scrubber needs at least one detector")
        self._order = {}
        for i, d in enumerate(self.detectors):
            self._order.setdefault(d.name, i)
        # (finditer, prefilter or None) pairs, resolved once rather than per call.
        self._plan = [
            (getattr(d, "finditer_with_shadows", d.finditer), getattr(d, "might_match", None))
            for d in self.detectors
        ]

    @classmethod
    def from_config(cls, cfg: PrivacyConfig | Mapping[str, Any] | None = None) -> Scrubber:
        """Scrubber with :func:`~pipeline.config.privacy.build_detectors` detectors."""
        return cls(build_detectors(cfg))

    @property
    def entities(self) -> list[str]:
        return [d.name for d in self.detectors]

    # -- text --------------------------------------------------------------------------

    def scan(self, text: str) -> list[Finding]:
        """Non-overlapping findings in ``text``, sorted by position."""
        if not text:
            return []
        found: list[Finding] = []
        for finditer, prefilter in self._plan:
            if prefilter is not None and not prefilter(text):
                continue
            found.extend(finditer(text))
        if not found:
            return found
        return resolve_overlaps(found, self._order)

    def scrub(self, text: str) -> str:
        """``text`` with every finding replaced by ``[ENTITY]``."""
        findings = self.scan(text)
        if not findings:
            return text
        parts: list[str] = []
        pos = 0
        for f in findings:
            parts.append(text[pos : f.start])
            parts.append(f"[{f.entity}]")
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts)

    def scrub_obj(self, obj: Any) -> Any:
        """Recursively scrub strings in dicts (values *and* str keys), lists, tuples and
        sets; other values are returned unchanged. Containers are copied, never mutated.
        Meant for MLflow params/tags and JSON payloads."""
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, Mapping):
            pairs = [
                (self.scrub(k) if isinstance(k, str) else k, self.scrub_obj(v))
                for k, v in obj.items()
            ]
            try:  # keep the mapping type (OrderedDict, ...) where it can be rebuilt
                return type(obj)(pairs)
            except TypeError:
                return dict(pairs)
        if isinstance(obj, tuple):
            items = [self.scrub_obj(v) for v in obj]
            return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
        if isinstance(obj, list):
            return [self.scrub_obj(v) for v in obj]
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self.scrub_obj(v) for v in obj)
        return obj

    def iter_scrub_lines(
        self, lines: Iterable[str], block_chars: int = _BLOCK_BYTES
    ) -> Iterator[str]:
        """Scrub a stream of lines (each ending in ``\\n``) block by block; yields scrubbed
        blocks. Blocks end at line ends, so no identifier is split between two blocks."""
        buf: list[str] = []
        size = 0
        for line in lines:
            buf.append(line)
            size += len(line)
            if size >= block_chars:
                yield self.scrub("".join(buf))
                buf, size = [], 0
        if buf:
            yield self.scrub("".join(buf))

    # -- files -------------------------------------------------------------------------

    def scan_file(self, path: str | os.PathLike[str]) -> FileFindings:
        """Findings (entity, 1-based line and column) in a text file, never the values.

        Binary files (a NUL byte in the first 8 KiB) are not scanned: the result is empty
        and ``result.skipped_reason`` says why. Text is decoded as UTF-8 with replacement,
        so a stray Latin-1 byte cannot hide the rest of the file.
        """
        p = Path(path)
        spath = str(p)
        try:
            fh = p.open("rb")
        except OSError as exc:
            return FileFindings(path=spath, skipped_reason=f"unreadable: {exc.strerror or exc}")
        with fh:
            head = fh.read(_SNIFF_BYTES)
            if b"\x00" in head:
                return FileFindings(path=spath, skipped_reason="binary")
            out = FileFindings(path=spath)
            line_no = 1  # line number of the first line in the current block
            pending = head
            while True:
                chunk = fh.read(_BLOCK_BYTES)
                data = pending + chunk
                if chunk:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:  # one very long line: keep reading
                        pending = data
                        continue
                    block, pending = data[:cut], data[cut:]
                else:
                    block, pending = data, b""
                if block:
                    text = block.decode("utf-8", errors="replace")
                    line_no = self._scan_block(text, spath, line_no, out)
                if not chunk:
                    break
        return out

    def _scan_block(self, text: str, spath: str, line_no: int, out: list[FileFinding]) -> int:
        out.extend(self.scan_text(text, spath, line_no))
        return line_no + text.count("\n")

    def scan_text(self, text: str, path: str = "", first_line: int = 1) -> list[FileFinding]:
        """Findings in `text` with 1-based line and column (its first line is `first_line`),
        never the values: the one offset -> position conversion, for files and for text a
        stage generated (governance scans the model card before writing it)."""
        out = []
        nl_pos = -1  # index of the newline that ends the previous line
        line = first_line
        for f in self.scan(text):  # in offset order: walk the newlines once
            nxt = text.find("\n", nl_pos + 1)
            while nxt != -1 and nxt < f.start:
                nl_pos = nxt
                line += 1
                nxt = text.find("\n", nl_pos + 1)
            out.append(FileFinding(path, f.entity, line, f.start - nl_pos))
        return out

    def scan_paths(self, paths: Iterable[str | os.PathLike[str]]) -> ScanReport:
        """Scan files and directories (recursively, following no symlinks to directories);
        hidden directories such as ``.git`` and ``.venv`` are skipped."""
        report = ScanReport()
        for root in paths:
            rp = Path(root)
            if rp.is_dir():
                for dirpath, dirnames, filenames in os.walk(rp):
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    for fn in sorted(filenames):
                        fp = Path(dirpath) / fn
                        report.add(fp, self.scan_file(fp))
            else:
                report.add(rp, self.scan_file(rp))
        return report
