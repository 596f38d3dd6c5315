"""The whole pipeline (ingest → register) at Adult ×1, ×10, ×100 rows: wall time and peak RSS per
stage, and each stage's growth from one scale to the next.

    python bench/pipeline_scale.py [--scales 1 10 100] [--stages ingest split ...]
    python bench/pipeline_scale.py --scales 1000 --stages ingest split train metrics \
        --set model.max_train_rows=2000000

Each scale runs in its own temporary git repository (a copy of this one): scaled raw files are
made by resampling Adult's rows with replacement (seeded), so they keep its quirks (leading
spaces, '?', labels ending in '.'), and are never committed (data/ is git-ignored). Every stage
runs as DVC runs it, `python -m pipeline.<stage> --dvc`, in that repository, one after the other
(no `dvc repro`: DVC's own hashing of a 6 GB file would be timed with the stage). The copy's
outputs differ from its committed ones, so the bench sets `registry.allow_dirty: true`.

Growth ratio = wall(×10k) / wall(×k). Rows grow 10× per step, so a stage that grows no worse than
linearly shows ≤ 10 (fixed costs such as imports keep it well below at small scales). Peak RSS is
the stage process's own maximum resident set (from wait4).

At ×1000 the dense one-hot design matrix (29M × 99 float64, twice over) is larger than the
machine: train refuses it (exit 2, naming `model.max_train_rows`) unless `--set
model.max_train_rows=N` declares a training sample. `--model-from SCALE` instead lets metrics go
on with the model trained at SCALE (run first), and the output says so.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, copy_repo, env

STAGES = ("ingest", "split", "train", "metrics", "governance", "register")
# A stage that would need more than this is stopped by the kernel (MemoryError in the stage)
# instead of pushing the shared machine into the OOM killer.
MEMORY_CAP_GIB = 14


def scaled_copy(dest: Path, scale: int, seed: int = 0) -> int:
    """Adult's raw files with `scale` × their rows, resampled with replacement; returns rows."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in ("adult.data", "adult.test"):
        lines = (ROOT / "data" / "adult" / name).read_text().splitlines(keepends=True)
        head = [ln for ln in lines[:1] if ln.startswith("|")]
        body = [ln for ln in lines if ln.strip() and not ln.startswith("|")]
        with (dest / name).open("w") as fh:
            fh.writelines(head)
            if scale == 1:
                fh.writelines(body)
            else:
                for _ in range(scale):
                    fh.writelines(rng.choices(body, k=len(body)))
        total += len(body) * scale
    return total


def _cap_memory() -> None:
    cap = MEMORY_CAP_GIB * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run_stage(stage: str, repo: Path) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, '' or the failure's last line) of one stage run."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"pipeline.{stage}", "--dvc"], cwd=repo,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=_cap_memory)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    failed = ""
    if os.waitstatus_to_exitcode(status) != 0:
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        failed = lines[-1][:160] if lines else f"exit {status}"
    return wall, usage.ru_maxrss / 1024, failed


def prepare(tmp: Path, scale: int, sets: list[str] = ()) -> tuple[Path, int]:
    repo = copy_repo(tmp / f"x{scale}", with_data=False)
    rows = scaled_copy(repo / "data" / "adult", scale)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["registry"]["allow_dirty"] = True  # the copy's outputs differ from its commit
    for item in sets:  # --set model.max_train_rows=2000000
        dotted, value = item.split("=", 1)
        *parents, last = dotted.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[last] = yaml.safe_load(value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo, rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--model-from", type=int, default=None,
                    help="for scales whose train stage is skipped or fails: use the model "
                         "trained at this (smaller) scale, run first")
    ap.add_argument("--tmp", default=None, help="where the scaled repositories go")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a params.yaml setting for every scale, e.g. "
                         "model.max_train_rows=2000000 (printed with the results)")
    args = ap.parse_args()
    results: dict[tuple[int, str], tuple[float, float, str]] = {}
    notes = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmpdir:
        tmp = Path(tmpdir)
        donor = None
        if args.model_from is not None:
            donor, _ = prepare(tmp, args.model_from)
            for stage in ("ingest", "split", "train"):
                wall, rss, failed = run_stage(stage, donor)
                if failed:
                    raise SystemExit(f"x{args.model_from} {stage} failed: {failed}")
            print(f"  model trained at x{args.model_from}", flush=True)
        for scale in args.scales:
            start = time.perf_counter()
            repo, rows = prepare(tmp, scale, args.set)
            print(f"x{scale}: {rows:,} raw rows generated in {time.perf_counter() - start:.0f} s",
                  flush=True)
            for stage in args.stages:
                borrowed = (stage == "metrics" and donor is not None
                            and results.get((scale, "train"), (0, 0, "failed"))[2])
                if borrowed:
                    (repo / "artifacts").mkdir(exist_ok=True)
                    shutil.copy2(donor / "artifacts" / "model.pkl", repo / "artifacts")
                    notes.append(f"x{scale} metrics scored with the model trained at "
                                 f"x{args.model_from}")
                wall, rss, failed = run_stage(stage, repo)
                results[(scale, stage)] = (wall, rss, failed)
                status = f"FAILED: {failed}" if failed else "ok"
                print(f"  x{scale} {stage}: {wall:.1f} s, {rss:,.0f} MiB, {status}", flush=True)
                if failed and not (stage == "train" and donor is not None):
                    break
            shutil.rmtree(repo)

    steps = list(zip(args.scales, args.scales[1:], strict=False))
    print(f"\n{'stage':<11}" + "".join(f"{f'x{s} s':>10}{f'x{s} MiB':>11}" for s in args.scales)
          + "".join(f"{f'x{b}/x{a}':>10}" for a, b in steps))
    for stage in args.stages:
        cells, walls = [], []
        for s in args.scales:
            wall, rss, failed = results.get((s, stage), (None, None, ""))
            walls.append(None if wall is None or failed else wall)
            cells.append(f"{'-' if wall is None else ('FAIL' if failed else f'{wall:.1f}'):>10}"
                         f"{'-' if rss is None else f'{rss:,.0f}':>11}")
        ratios = [f"{(b / a if a and b else float('nan')):>10.1f}"
                  for a, b in zip(walls, walls[1:], strict=False)]
        print(f"{stage:<11}" + "".join(cells) + "".join(ratios))
    for note in notes + [f"params: {item}" for item in args.set]:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
