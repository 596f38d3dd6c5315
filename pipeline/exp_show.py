"""Experiments side by side, in a terminal: `python -m pipeline.exp_show` (`make exp-show`).

    python -m pipeline.exp_show [--width 120] [--all-commits]

One line per experiment from `dvc exp show --json`: name, dataset, model, mitigation, test
balanced accuracy, the disparate impact ratio of each sensitive attribute the experiment's own
dataset declares (so another dataset gets its own columns, never Adult's), the verdict and the
failing gates. Columns are cut to fit `--width` (default 120); a cut value ends in "…".
`dvc exp show` itself shows every column.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline.runtime.runner import EXIT_USER_ERROR

FIXED = (("experiment", 16), ("dataset", 8), ("model", 6), ("mitigation", 10),
         ("bal_acc", 7))
TAIL = (("verdict", 9), ("failed_gates", 12))
MIN_WIDTH = 80


def _rows(exp_json: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per workspace, baseline and experiment."""
    out = []
    for base in exp_json:
        rev = base.get("rev", "?")
        out.append(_flat(base.get("name") or (rev if rev == "workspace" else rev[:7]),
                         base.get("data") or {}))
        for exp in base.get("experiments") or []:
            rev = (exp.get("revs") or [{}])[0]
            out.append(_flat(exp.get("name") or rev.get("name") or rev.get("rev", "?")[:7],
                             rev.get("data") or {}, child=True))
    return out


def _flat(name: str, data: dict[str, Any], child: bool = False) -> dict[str, Any]:
    params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
    metrics = {k: (v or {}).get("data", {}) for k, v in (data.get("metrics") or {}).items()}
    test_perf = metrics.get("metrics/performance.json", {}).get("test", {})
    fair = metrics.get("metrics/fairness.json", {}).get("test", {})
    gov = metrics.get("metrics/governance.json", {})
    ds = params.get("data", {})
    attrs = list(ds.get("sensitive") or {})
    return {
        "experiment": ("├ " if child else "") + str(name),
        "dataset": ds.get("name", ""),
        "model": (params.get("model") or {}).get("name", ""),
        "mitigation": (params.get("mitigation") or {}).get("name", ""),
        "bal_acc": test_perf.get("bal_acc"),
        "dir": {a: (fair.get(a) or {}).get("dir") for a in attrs},
        "verdict": gov.get("verdict", ""),
        "failed_gates": gov.get("failed_gates", ""),
    }


def _cell(value: Any, width: int) -> str:
    text = "" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def table(rows: list[dict[str, Any]], width: int) -> list[str]:
    """The lines to print: the fixed columns, one `dir:<attr>` per attribute any row's dataset
    declares (in first-seen order), then verdict and failed gates taking what is left."""
    attrs = list(dict.fromkeys(a for r in rows for a in r["dir"]))
    cols = [*FIXED, *((f"dir:{a}", max(7, min(len(a) + 4, 14))) for a in attrs), *TAIL]
    used = sum(w for _, w in cols) + 2 * (len(cols) - 1)
    if used > width:  # drop attribute columns from the right until it fits
        while used > width and len(cols) > len(FIXED) + len(TAIL):
            used -= cols[-len(TAIL) - 1][1] + 2
            del cols[-len(TAIL) - 1]
    else:  # the last column (the failing gates) takes the rest
        name, w = cols[-1]
        cols[-1] = (name, w + width - used)

    def value(r: dict, c: str) -> Any:
        return r["dir"].get(c[4:]) if c.startswith("dir:") else r[c]

    lines = ["  ".join(_cell(c, w).ljust(w) for c, w in cols).rstrip()]
    lines.append("  ".join("─" * w for _, w in cols))
    for r in rows:
        lines.append("  ".join(_cell(value(r, c), w).ljust(w) for c, w in cols).rstrip())
    return lines


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.exp_show", description=__doc__.split(
        "\n\n")[0])
    # 120 whatever the terminal says: the same table in a log, a pipe or a pull request.
    p.add_argument("--width", type=int, default=120)
    p.add_argument("--all-commits", action="store_true", help="experiments of every commit")
    try:
        args = p.parse_args(argv)
    except SystemExit as e:
        return EXIT_USER_ERROR if e.code else 0
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "exp", "show", "--json"]
    if args.all_commits:
        cmd.append("--all-commits")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        print(f"exp-show: `dvc exp show` failed: {proc.stderr.strip()[-400:]}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        rows = _rows(json.loads(proc.stdout or "[]"))
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError) as e:
        print(f"exp-show: unexpected `dvc exp show --json` output ({e})", file=sys.stderr)
        return EXIT_USER_ERROR
    for line in table(rows, max(args.width, MIN_WIDTH)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
