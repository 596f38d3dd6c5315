"""The pipeline (ingest → metrics, one process per stage under DVC) against the same
computation in one plain Python process, per model; plus the import time of each stage.

    python bench/pipeline_vs_script.py [--models logreg hgb rf]

The "plain script" calls the same stage functions in one process, one after the other, with no
DVC, no YAML and no per-stage interpreter start: what remains between the two is the pipeline's
own overhead (process starts, imports, config validation, DVC hashing). Goal: ≤ 1.5×.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import VENV_BIN, copy_repo, env, measured

STAGES = ("ingest", "split", "train", "metrics")
DVC = str(VENV_BIN / "dvc")

PLAIN = r'''
import sys, time, yaml
from pathlib import Path
t0 = time.perf_counter()
from pipeline.config import validate
from pipeline.runtime.outputs import Outputs
from pipeline.runtime.runner import Context, ParamsView
from pipeline import ingest
from pipeline import split
from pipeline import train
from pipeline import metrics
cfg = validate(yaml.safe_load(Path("params.yaml").read_text()))
for mod in (ingest, split, train, metrics):
    out = Outputs(Path.cwd())
    mod.run(Context(ParamsView(cfg, mod.PARAMS, mod.__name__), None, out))
    out.commit()
print(f"{time.perf_counter() - t0:.3f}")
'''


def import_seconds(stage: str, cwd: Path) -> float:
    """Wall time of importing what the stage imports when it runs (its lazy imports too)."""
    code = (f"import time; t=time.perf_counter(); import pipeline.{stage} as m, inspect, re; "
            "src=inspect.getsource(m.run); "
            "mods=re.findall(r'^\\s+(?:from (\\S+) import|import (\\S+))', src, re.M); "
            "[__import__(a or b) for a, b in mods]; print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env(), capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["logreg", "hgb", "rf"])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            repo = copy_repo(Path(tmp) / f"repo-{model}")
            subprocess.run([sys.executable, "-m", "pipeline.compose", f"model={model}"],
                           cwd=repo, env=env(), check=True)
            measured([DVC, "repro", "metrics"], repo)  # warm caches (pages, .pyc)
            start = time.perf_counter()
            measured([DVC, "repro", "-f", "metrics"], repo)
            t_pipeline = time.perf_counter() - start
            plain = repo / "plain.py"
            plain.write_text(PLAIN)
            start = time.perf_counter()
            measured([sys.executable, str(plain)], repo)
            t_plain = time.perf_counter() - start
            rows.append((model, t_pipeline, t_plain))
            print(f"  {model}: pipeline {t_pipeline:.1f} s, plain {t_plain:.1f} s", flush=True)
        repo = Path(tmp) / f"repo-{args.models[0]}"
        imports = {s: import_seconds(s, repo) for s in STAGES}
    print(f"\n{'model':<8}{'pipeline s':>12}{'plain s':>10}{'ratio':>8}")
    for model, a, b in rows:
        print(f"{model:<8}{a:>12.1f}{b:>10.1f}{a / b:>8.2f}")
    print("\nimport time per stage (s): " + ", ".join(f"{k} {v:.2f}" for k, v in imports.items()))


if __name__ == "__main__":
    main()
