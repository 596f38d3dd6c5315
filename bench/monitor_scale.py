"""The monitor over large audit logs: wall time and peak RSS at 100k, 300k and 1M predictions,
each with an outcome (goal: under 60 s at 1M on the 2-core machine, linear in records).

    python bench/monitor_scale.py [--sizes 100000,300000,1000000] [--model PATH]

Logs are generated at bench time with the server's own writer (pipeline.audit.chain), from
test-split rows drawn with replacement and scored by the model once (so the probabilities are
the model's), in 64 MB segments of one stream; each size is then judged by
`python -m pipeline.monitor` as a separate process with the default config (200 bootstrap
replicates). Prints seconds, peak RSS and seconds per 100k records (flat = linear).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
from _common import measured  # noqa: E402

from pipeline.audit.chain import ChainWriter  # noqa: E402


def generate(directory: Path, n: int, model_path: Path, test: Path) -> float:
    import numpy as np
    import pandas as pd

    from pipeline.model import load
    from pipeline.runtime.hashing import file_sha256

    started = time.perf_counter()
    model = load(model_path)
    sha = file_sha256(model_path)
    df = pd.read_parquet(test)
    score = model.score(df)
    y = (df["income"] == ">50K").to_numpy()
    cols = [*model.input_columns, *(c for c in ("race",) if c not in model.input_columns)]
    rows = [{c: (v.item() if hasattr(v, "item") else v) for c, v in r.items()}
            for r in df[cols].to_dict("records")]
    pick = np.random.default_rng(0).integers(0, len(df), n)
    directory.mkdir(parents=True)
    w = ChainWriter(directory, "bench0", rotate_bytes=64_000_000, rotate_seconds=10**7)
    ref = {"name": "model", "version": sha[:12], "sha256": sha}
    t0 = 1_790_000_000.0
    for start in range(0, n, 5000):
        batch = []
        for k, i in enumerate(pick[start:start + 5000], start):
            p = float(score[i])
            batch.append({"kind": "prediction", "ts": t0 + k * 0.01, "request_id": f"r{k}",
                          "index": 0, "model": ref, "input_sha256": "0" * 64,
                          "features": dict(rows[i]), "probability": p,
                          "label": ">50K" if p >= 0.5 else "<=50K", "label_id": int(p >= 0.5),
                          "threshold": 0.5, "latency_ms": 1.0, "key_id": "bench"})
        for k, i in enumerate(pick[start:start + 5000], start):
            batch.append({"kind": "outcome", "ts": t0 + k * 0.01 + 0.005, "request_id": f"r{k}",
                          "index": 0, "label": ">50K" if y[i] else "<=50K",
                          "label_id": int(y[i]), "key_id": "bench"})
        w.append(batch)
    w.close_file()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--model", type=Path, default=ROOT / "artifacts" / "model.pkl")
    ap.add_argument("--split", type=Path, default=ROOT / "artifacts" / "split")
    args = ap.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model}: not found; run `make run` first (or --model)")
    print("| predictions (+ outcomes) | log size | generate s | monitor s | peak RSS MiB | "
          "s per 100k |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            d = Path(tmp) / f"log-{n}"
            gen = generate(d, n, args.model, args.split / "test.parquet")
            size = sum(p.stat().st_size for p in d.iterdir()) / 2**20
            wall, rss = measured(
                [sys.executable, "-m", "pipeline.monitor", f"monitor.log_dir={d}",
                 f"monitor.model={args.model}", f"monitor.reference={args.split / 'train.parquet'}",
                 f"monitor.output_dir={Path(tmp) / f'reports-{n}'}"], Path(tmp))
            print(f"| {n:,} | {size:.0f} MiB | {gen:.1f} | {wall:.1f} | {rss:.0f} | "
                  f"{wall / n * 100_000:.2f} |", flush=True)


if __name__ == "__main__":
    main()
