"""ingest + split on Adult at 1×, 10× and 100× its rows: wall time and peak RSS per stage.

    python bench/ingest_scale.py [--scales 1 10 100]

Scaled copies are made by resampling raw rows with replacement (seeded) into a temp folder, so
the data keep Adult's quirks (leading spaces, '?', labels with '.'). Goal: cost grows no worse
than linearly, and 100× (~4.9M rows) fits the 24 GiB machine.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

import yaml
from _common import ROOT, measured


def scaled_copy(dest: Path, scale: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    dest.mkdir(parents=True)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            work = Path(tmp) / f"x{scale}"
            scaled_copy(work / "data" / "adult", scale)
            params["data"]["source"]["dir"] = "data/adult"
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            for stage in ("ingest", "split"):
                wall, rss = measured([sys.executable, "-m", f"pipeline.{stage}", "--dvc"], work)
                rows.append((scale, stage, wall, rss))
                print(f"  x{scale} {stage}: {wall:.2f} s, {rss:.0f} MiB", flush=True)
    base = {stage: wall for scale, stage, wall, _ in rows if scale == args.scales[0]}
    print(f"\n{'scale':>6} {'stage':<7} {'wall s':>8} {'peak MiB':>9} {'s / base':>9}")
    for scale, stage, wall, rss in rows:
        print(f"{scale:>5}x {stage:<7} {wall:>8.2f} {rss:>9.0f} {wall / base[stage]:>9.1f}")


if __name__ == "__main__":
    main()
