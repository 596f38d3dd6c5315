"""Outputs that appear whole or not at all.

A stage asks `Outputs.path(rel)` for somewhere to write; it gets a hidden temporary file next to
the final one. Only when the stage function returns are the temporaries renamed into place
(`os.replace`, atomic on POSIX); if it raises, they are deleted. So a failed stage leaves no
partial file behind, and a reader never sees a half-written one.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

PARTIAL = ".partial-"


class Outputs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: dict[Path, Path] = {}

    def path(self, rel: str | Path) -> Path:
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.glob(f".{final.name}{PARTIAL}*"):
            stale.unlink()  # left by a killed run
        tmp = final.with_name(f".{final.name}{PARTIAL}{os.getpid()}")
        self._pending[final] = tmp
        return tmp

    def write_json(self, rel: str | Path, obj: Any) -> Path:
        tmp = self.path(rel)
        tmp.write_text(dumps(obj), encoding="utf-8")
        return tmp

    def commit(self, expected: list[Path] | None = None) -> list[Path]:
        """Move every output into place, or none if any is missing or unexpected."""
        missing = [str(f) for f, t in self._pending.items() if not t.exists()]
        if expected is not None:
            missing += [str(f) for f in expected if f not in self._pending]
            extra = [str(f) for f in self._pending if f not in expected]
            if extra:
                self.abort()
                raise RuntimeError(f"stage wrote outputs it does not declare: {extra}")
        if missing:
            self.abort()
            raise RuntimeError(f"stage did not write declared outputs: {missing}")
        for final, tmp in self._pending.items():
            os.replace(tmp, final)
        done = list(self._pending)
        self._pending.clear()
        return done

    def abort(self) -> None:
        for tmp in self._pending.values():
            tmp.unlink(missing_ok=True)
        self._pending.clear()


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: undefined numbers become null, never a number that misleads."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalar
        return _clean(obj.item())
    return obj


def dumps(obj: Any) -> str:
    """Deterministic JSON: same object, same bytes (sorted keys, fixed indent, final newline)."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
