"""The 4-experiment queued sweep (`model=logreg,hgb` × `seed=1,2`) with `dvc queue start -j 1`
and `-j 2`: wall time of each, in fresh copies of the repo.

    python bench/sweep_queue.py
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from _common import VENV_BIN, copy_repo, env, git, measured

DVC = str(VENV_BIN / "dvc")


def sweep(repo: Path, jobs: int) -> float:
    measured([DVC, "repro", "metrics"], repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    measured([DVC, "exp", "run", "--queue", "-S", "model=logreg,hgb", "-S", "seed=1,2",
              "metrics"], repo)
    start = time.perf_counter()
    measured([DVC, "queue", "start", "-j", str(jobs)], repo)
    try:
        while True:
            status = subprocess.run([DVC, "queue", "status"], cwd=repo, env=env(),
                                    capture_output=True, text=True).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(1)
        return time.perf_counter() - start
    finally:
        subprocess.run([DVC, "queue", "stop", "--kill"], cwd=repo, env=env(),
                       capture_output=True)


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            results[jobs] = sweep(copy_repo(Path(tmp) / f"j{jobs}"), jobs)
            print(f"  -j {jobs}: {results[jobs]:.1f} s", flush=True)
    print(f"\nqueued sweep of 4 experiments: -j 1 {results[1]:.1f} s, -j 2 {results[2]:.1f} s "
          f"(speed-up {results[1] / results[2]:.2f}x on {__import__('os').cpu_count()} cores)")


if __name__ == "__main__":
    main()
