"""`dvc repro` when everything is up to date, against a trivial one-stage DVC pipeline.

    python bench/repro_noop.py [--repeat 5]

Both are timed in the same run, on the same machine state; the figure that matters is the
ratio (goal ≤ 1.3×): what our pipeline's declarations cost DVC beyond its own floor.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = copy_repo(Path(tmp) / "ours")
        floor = trivial_repo(Path(tmp) / "floor")
        for repo in (ours, floor):
            measured([DVC, "repro"], repo)  # build everything once
        t_ours = timed([DVC, "repro"], ours, args.repeat)
        t_floor = timed([DVC, "repro"], floor, args.repeat)
    print(f"{'pipeline':<28}{'median s':>10}")
    print(f"{'trivial one-stage (floor)':<28}{t_floor:>10.3f}")
    print(f"{'this pipeline, up to date':<28}{t_ours:>10.3f}")
    print(f"ratio: {t_ours / t_floor:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
