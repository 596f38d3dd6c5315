"""Where a model came from: git commit and dirtiness, data hash, params hash, DVC experiment.

"Dirty" means the code or config that made the model differs from the commit being recorded:
files under CODE_PATHS with uncommitted changes. What DVC rewrites during `dvc exp run` and
queued runs (params.yaml, dvc.lock, stage outputs) is not code, so it does not count; an
experiment records its DVC name and baseline commit instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from pipeline.runtime.hashing import file_sha256

CODE_PATHS = ("pipeline", "conf", "serve", "dvc.yaml", "pyproject.toml", "uv.lock")


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(root: Path) -> dict[str, Any]:
    commit = (_git(root, "rev-parse", "HEAD") or "").strip()
    status = _git(root, "status", "--porcelain", "--", *CODE_PATHS)
    # porcelain lines are "XY path": two status columns, a space, the path
    changed = sorted({line[3:] for line in (status or "").splitlines() if line.strip()})
    return {
        "git_commit": commit or "unknown",
        "git_dirty": bool(changed) if status is not None else True,
        "dirty_paths": changed,
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME"),
        "dvc_exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV"),
    }


def data_hash(root: Path, source_dir: str, files: list[str]) -> str:
    """sha256 over the dataset's raw files (names and bytes, in spec order)."""
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0")
        h.update(file_sha256(root / source_dir / name).encode())
    return h.hexdigest()


# The config sections the governance stage judges and hashes (`identity.params_hash`); the
# register stage hashes the same sections of its own config and refuses when they differ.
JUDGED_SECTIONS = ("data", "split", "model", "mitigation", "metrics", "governance", "privacy",
                   "seed")


def judged_sections(params: Any) -> dict[str, Any]:
    """`JUDGED_SECTIONS` of a validated config (or a stage's view of it), as plain JSON."""
    out = {}
    for k in JUDGED_SECTIONS:
        v = getattr(params, k)
        out[k] = v.model_dump(mode="json") if hasattr(v, "model_dump") else v
    return out


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def params_hash(sections: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(sections).encode()).hexdigest()
