"""Result records. None of them ever holds the matched text.

A finding says *what* kind of identifier sits *where*, never the identifier itself, so
findings can be logged, written to governance reports or returned over HTTP without
becoming a leak of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FileFinding", "FileFindings", "Finding", "ScanReport"]


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One detected identifier: entity type and the half-open span ``[start, end)``."""

    entity: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class FileFinding:
    """One identifier found in a file; ``line`` and ``column`` are 1-based."""

    path: str
    entity: str
    line: int
    column: int


class FileFindings(list):
    """The findings of one file: a plain ``list[FileFinding]`` that also says whether the
    file was skipped (binary) and why. ``skipped_reason`` is ``None`` for scanned files."""

    def __init__(self, items=(), *, path: str = "", skipped_reason: str | None = None):
        super().__init__(items)
        self.path = path
        self.skipped_reason = skipped_reason

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None

    def __repr__(self) -> str:  # keep list look, add the skip note when relevant
        base = super().__repr__()
        if self.skipped_reason:
            return f"FileFindings(path={self.path!r}, skipped={self.skipped_reason!r})"
        return base


@dataclass(slots=True)
class ScanReport:
    """Findings over many files, plus the files that were skipped and why."""

    findings: list[FileFinding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    files_scanned: int = 0

    def counts(self) -> dict[str, int]:
        """Number of findings per entity type (sorted by type)."""
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.entity] = out.get(f.entity, 0) + 1
        return dict(sorted(out.items()))

    def add(self, path: Path | str, result: FileFindings) -> None:
        if result.skipped_reason is not None:
            self.skipped[str(path)] = result.skipped_reason
        else:
            self.files_scanned += 1
            self.findings.extend(result)
