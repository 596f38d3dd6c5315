"""`dvc repro` when everything is up to date, against a trivial one-stage DVC pipeline.

    python bench/repro_noop.py [--repeat 5]

All are timed in the same run, on the same machine state; the figures that matter are the
ratios: against one trivial stage (goal ≤ 1.3×), and against six trivial stages with the same
number of deps and outs per stage as ours (the fair floor, goal ≤ 1.1×): what our params,
folder deps and lock file cost DVC beyond its own per-stage cost.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _common import VENV_BIN, copy_repo, git, measured, timed

DVC = str(VENV_BIN / "dvc")


def trivial_repo(dest: Path) -> Path:
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    measured([DVC, "init", "-q"], dest)
    (dest / "dvc.yaml").write_text(
        "stages:\n  hello:\n    cmd: echo hello > out.txt\n    outs:\n      - out.txt\n"
    )
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "trivial")
    return dest


def six_stage_repo(dest: Path, ours: Path) -> Path:
    """Six `echo` stages chained like ours, each with as many deps (small files) and outs."""
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    measured([DVC, "init", "-q"], dest)
    stages, prev_out = {}, None
    for name, spec in yaml.safe_load((ours / "dvc.yaml").read_text())["stages"].items():
        n_deps, n_outs = len(spec.get("deps", [])), len(spec.get("outs", []))
        deps = [f"in/{name}_{i}.txt" for i in range(n_deps - (prev_out is not None))]
        for d in deps:
            (dest / d).parent.mkdir(exist_ok=True)
            (dest / d).write_text(d)
        outs = [f"out/{name}_{i}.txt" for i in range(n_outs)]
        cmd = "mkdir -p out && " + " && ".join(f"echo {o} > {o}" for o in outs)
        stages[name] = {"cmd": cmd, "deps": deps + ([prev_out] if prev_out else []),
                        "outs": outs}
        prev_out = outs[0]
    (dest / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "six trivial stages")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = copy_repo(Path(tmp) / "ours")
        floor = trivial_repo(Path(tmp) / "floor")
        six = six_stage_repo(Path(tmp) / "six", ours)
        for repo in (ours, floor, six):
            measured([DVC, "repro"], repo)  # build everything once
        t_ours = timed([DVC, "repro"], ours, args.repeat)
        t_floor = timed([DVC, "repro"], floor, args.repeat)
        t_six = timed([DVC, "repro"], six, args.repeat)
        lock_lines = len((ours / "dvc.lock").read_text().splitlines())
    print(f"{'pipeline':<30}{'median s':>10}")
    print(f"{'trivial one-stage (floor)':<30}{t_floor:>10.3f}")
    print(f"{'trivial six-stage (fair floor)':<30}{t_six:>10.3f}")
    print(f"{'this pipeline, up to date':<30}{t_ours:>10.3f}")
    print(f"dvc.lock: {lock_lines} lines")
    print(f"ratio vs one stage: {t_ours / t_floor:.2f}x (goal <= 1.3x)")
    print(f"ratio vs six stages: {t_ours / t_six:.2f}x (goal <= 1.1x)")


if __name__ == "__main__":
    main()
