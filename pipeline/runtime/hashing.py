"""sha256 of a file and of a directory tree: the one implementation every stage, the registry
client and the model loaders share."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def tree_sha256(root: Path) -> str:
    """sha256 over every file below `root`: relative paths (sorted) and their sha256s, so a
    changed, added, removed or renamed file changes it."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(file_sha256(path).encode() + b"\n")
    return h.hexdigest()
