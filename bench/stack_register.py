"""Register stage against the PostgreSQL + S3 tracking server (`make stack`) vs the embedded
SQLite store, same repo, same model.

    python bench/stack_register.py [--rounds 2]

Runs the pipeline up to governance in a temp copy, starts the stack of
pipeline/tracking/stack.py on free loopback ports, then alternates the register stage against
a brand-new embedded store and against the server (each round a new experiment and model
name there, so every registration logs and uploads everything). Prints the median wall time
of each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, VENV_BIN, copy_repo, env, git, measured

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from pipeline.tracking.stack import Stack  # noqa: E402
from tests.processes import free_port  # noqa: E402


def register(repo: Path, out: Path, *overrides: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.register", *overrides,
                           f"hydra.run.dir={out}"], cwd=repo, env=env(), capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="stack-bench-") as tmp:
        tmp_ = Path(tmp)
        repo = copy_repo(tmp_ / "repo")
        measured([str(VENV_BIN / "dvc"), "repro", "governance"], repo)
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "results")
        stack = Stack(tmp_ / "stack", {"postgres": free_port(), "s3": free_port(),
                                       "mlflow": free_port()})
        started = time.perf_counter()
        stack.up()
        up = time.perf_counter() - started
        times: dict[str, list[float]] = {"embedded": [], "server": []}
        try:
            for r in range(args.rounds):
                names = [f"registry.model_name=bench-{r}", f"registry.experiment=bench-{r}"]
                times["embedded"].append(register(
                    repo, tmp_ / f"e{r}", f"registry.tracking_uri=sqlite:///{tmp_ / f'e{r}.db'}",
                    *names))
                times["server"].append(register(
                    repo, tmp_ / f"s{r}", "registry=server",
                    f"registry.tracking_uri={stack.tracking_uri}", *names))
        finally:
            stack.down()
    e, s = statistics.median(times["embedded"]), statistics.median(times["server"])
    print(f"stack up (initdb, PostgreSQL, S3 endpoint, mlflow server): {up:.1f} s")
    print(f"register, embedded SQLite (new store):   {e:.2f} s  {times['embedded']}")
    print(f"register, PostgreSQL + S3 server:        {s:.2f} s  {times['server']}")
    print(f"ratio server / embedded: {s / e:.2f}x")
    print(f"load average before/after: {load_before} / {os.getloadavg()}; cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
