"""A 4-job standalone train sweep (`model=hgb seed=1,2,3,4`) under Hydra's basic launcher and
under the Ray launcher (2 CPUs, one per job): wall time of each, and the ratio.

    python bench/launcher_sweep.py

Four runs, in a fresh copy of the repo where ingest and split ran:
  basic              one process, jobs one after another, default threads
  basic, 1 thread    the same with OMP_NUM_THREADS=1 (what each Ray job gets)
  ray, local         `hydra/launcher=ray`: the sweep starts its own Ray (its start-up counted)
  ray, cluster       the sweep joins a Ray started beforehand (start-up not counted)
The Ray sweeps' models must equal the 1-thread basic sweep's, byte for byte (checked).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, VENV_BIN, copy_repo, env

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.ray_cluster import LOOPBACK, RayCluster, stop_leftovers  # noqa: E402

SWEEP = ["-m", "model=hgb", "seed=1,2,3,4", "mitigation=none"]
JOBS = 4


def sweep(repo: Path, out: Path, *extra: str, **extra_env: str) -> float:
    e = {**env(), "RAY_USAGE_STATS_ENABLED": "0", **extra_env}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.train", *SWEEP,
                           f"hydra.sweep.dir={out}", *extra], cwd=repo, env=e,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep {extra} failed:\n{proc.stderr[-3000:]}")
    return wall


def models(out: Path) -> list[str]:
    return [hashlib.sha256((out / str(j) / "artifacts" / "model.pkl").read_bytes()).hexdigest()
            for j in range(JOBS)]


def main() -> None:
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_repo(Path(tmp) / "repo")
        subprocess.run([str(VENV_BIN / "dvc"), "repro", "split"], cwd=repo, env=env(),
                       check=True, capture_output=True)
        walls: dict[str, float] = {}
        walls["basic"] = sweep(repo, Path(tmp) / "basic")
        print(f"  basic:            {walls['basic']:.1f} s", flush=True)
        walls["basic1"] = sweep(repo, Path(tmp) / "basic1", OMP_NUM_THREADS="1")
        print(f"  basic, 1 thread:  {walls['basic1']:.1f} s", flush=True)

        local = Path(tempfile.mkdtemp(prefix="govpipe-ray-"))
        token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(32).hex()}
        try:
            walls["ray_local"] = sweep(repo, Path(tmp) / "ray_local", "hydra/launcher=ray",
                                       "hydra.launcher.ray.init.num_cpus=2",
                                       f"+hydra.launcher.ray.init._temp_dir={local}", **token)
        finally:
            stop_leftovers(local)
            shutil.rmtree(local, ignore_errors=True)
        print(f"  ray, local:       {walls['ray_local']:.1f} s (Ray's start-up included)",
              flush=True)

        cluster = RayCluster()
        try:
            cluster.wait_for_address()
            walls["ray_cluster"] = sweep(
                repo, Path(tmp) / "ray_cluster", "hydra/launcher=ray",
                f"hydra.launcher.ray.init.address={cluster.address}",
                **{k: v for k, v in cluster.env.items() if k != LOOPBACK})
        finally:
            cluster.stop()
        print(f"  ray, cluster:     {walls['ray_cluster']:.1f} s (Ray already running)",
              flush=True)

        reference = models(Path(tmp) / "basic1")
        for name in ("ray_local", "ray_cluster"):
            assert models(Path(tmp) / name) == reference, f"{name}: models differ from basic"

    print(f"\n4-job sweep on {os.cpu_count()} cores (load average {load[0]:.1f} at the start):")
    for name, label in (("ray_local", "ray, local"), ("ray_cluster", "ray, cluster")):
        print(f"  {label:13s} / basic = {walls[name] / walls['basic']:.2f}   "
              f"/ basic 1 thread = {walls[name] / walls['basic1']:.2f}")
    print("  (models of both Ray sweeps equal the 1-thread basic sweep's, byte for byte)")


if __name__ == "__main__":
    main()
