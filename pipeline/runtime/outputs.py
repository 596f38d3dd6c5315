"""Outputs that appear whole or not at all.

A stage asks `Outputs.path(rel)` for somewhere to write; it gets a hidden temporary file next to
the final one. Only when the stage function returns are the temporaries renamed into place
(`os.replace`, atomic on POSIX); if it raises, they are deleted. So a failed stage leaves no
partial file behind, and a reader never sees a half-written one. A write the file system
refuses (full disk, read-only mount, ...) becomes an `OutputError` naming the path and reason.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.runtime.errors import OutputError

PARTIAL = ".partial-"
# What the file system, not the stage, gets wrong while outputs are written: a full disk or
# quota, a file too large, a read-only mount, no permission.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                          errno.EPERM})


class Outputs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: dict[Path, Path] = {}
        self._last: Path | None = None

    def path(self, rel: str | Path) -> Path:
        final = self.root / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.glob(f".{final.name}{PARTIAL}*"):
            stale.unlink()  # left by a killed run
        tmp = final.with_name(f".{final.name}{PARTIAL}{os.getpid()}")
        self._pending[final] = tmp
        self._last = final
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

    def run(self, fn: Callable[[], None], expected: list[Path] | None = None) -> list[Path]:
        """`fn()` writes the outputs; then all are committed, or none if it raised. A write the
        file system refused becomes an OutputError naming the path."""
        try:
            fn()
            return self.commit(expected=expected)
        except OSError as e:
            failure = self.write_error(e)
            self.abort()
            if failure is None:
                raise
            raise failure from None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for tmp in self._pending.values():
            if tmp.exists():  # unlink(missing_ok) still raises EROFS on a read-only mount
                tmp.unlink()
        self._pending.clear()

    def write_error(self, e: OSError) -> OutputError | None:
        """`e` as one line naming the path and the OS reason, if the file system refused it;
        None for any other OSError (a bug keeps its traceback). Call it before `abort`."""
        if e.errno not in WRITE_ERRNOS:
            return None
        reason = f"{os.strerror(e.errno)} ({errno.errorcode[e.errno]})"
        if not e.filename:
            # Writers such as pyarrow raise without a file name; the output being written is
            # the one last handed out (a stage writes each right after asking for its path).
            return OutputError(f"cannot write {self._last or self.root}: {reason}")
        path = Path(e.filename)
        if path.name.startswith(".") and PARTIAL in path.name:  # name the output, not its temp
            path = path.with_name(path.name[1:].rsplit(PARTIAL, 1)[0])
        verb = "write" if path in self._pending else "access"  # e.g. an unreadable input
        return OutputError(f"cannot {verb} {path}: {reason}")


DECIMALS = 6


def rounded(x: float | None) -> float | None:
    """`x` to DECIMALS places for the JSON outputs; None, NaN and ±inf (undefined) become None,
    and -0.0 becomes 0.0, so equal results give equal bytes."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), DECIMALS) + 0.0


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
