"""Helpers shared by the benchmark scripts: temp repos, timing, peak RSS of a child process."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '')}"
    e["PYTHONPATH"] = str(ROOT)
    e["DVC_NO_ANALYTICS"] = "1"
    e.setdefault("GIT_AUTHOR_NAME", "bench")
    e.setdefault("GIT_AUTHOR_EMAIL", "bench@example.invalid")
    e.setdefault("GIT_COMMITTER_NAME", "bench")
    e.setdefault("GIT_COMMITTER_EMAIL", "bench@example.invalid")
    return e


def measured(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run `cmd`; return (wall seconds, peak RSS in MiB of that process tree's largest member)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out}")
    return wall, usage.ru_maxrss / 1024


def timed(cmd: list[str], cwd: Path, repeat: int = 5) -> float:
    """Median wall time of `repeat` runs (after one warm-up)."""
    measured(cmd, cwd)
    return statistics.median(measured(cmd, cwd)[0] for _ in range(repeat))


def copy_repo(dest: Path, with_data: bool = True) -> Path:
    keep = ["pipeline", "conf", "serve", *(["data"] if with_data else []), "dvc.yaml",
            "dvc.lock", "params.yaml", "data.dvc", ".dvcignore", ".gitignore"]
    dest.mkdir(parents=True, exist_ok=True)
    for name in keep:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / ".dvc").mkdir(exist_ok=True)
    shutil.copy2(ROOT / ".dvc" / "config", dest / ".dvc" / "config")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "bench")
    return dest


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env(), check=True, capture_output=True)
