"""monitor: live fairness, drift and a verdict over the prediction audit log.

    python -m pipeline.monitor [--since T] [--until T] [--fail-on-alert] [HYDRA OVERRIDES]
    make monitor

Reads `monitor.log_dir` (verifying the chain as it goes), keeps the predictions of the model
at `monitor.model` (by sha256) with their outcomes, and judges each window with the metrics
stage's fairness code and governance's gates (pipeline.monitoring.live), plus drift against
the training split. Writes `<monitor.output_dir>/monitoring.json` and `monitoring.html`
(atomically) and prints the verdict: OK, ALERT (with reasons) or INSUFFICIENT_EVIDENCE
(never a pass). `--fail-on-alert` exits 1 unless the verdict is OK (for cron or CI); user
errors (a broken log, an empty window, a bad option) exit 2. `--since`/`--until` take ISO
dates or times (UTC unless they say otherwise); the range is [since, until).

Hydra's compose API (as the server uses), not `@hydra.main`: a report tool needs no run
directory, and its outputs have fixed names a cron job or CI step can pick up.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pipeline.audit.chain import iso
from pipeline.config import validate
from pipeline.model import load
from pipeline.monitoring import live, logframe, render
from pipeline.monitoring.drift import Baseline
from pipeline.runtime import logs
from pipeline.runtime.errors import ConfigError, DataError, PipelineError
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.outputs import Outputs
from pipeline.runtime.runner import EXIT_USER_ERROR, compose
from pipeline.tracking.monitoring import tag_champion

log = logging.getLogger("pipeline.monitor")

REPORT, HTML = "monitoring.json", "monitoring.html"
SCHEMA_VERSION = 1
USAGE = ("usage: python -m pipeline.monitor [--since T] [--until T] [--fail-on-alert] "
         "[OVERRIDE ...]")


def parse_time(flag: str, text: str) -> float:
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not an ISO date or time "
                          "(e.g. 2026-11-01 or 2026-11-01T12:00:00+00:00)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def _args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    opts: dict[str, Any] = {"since": None, "until": None, "fail_on_alert": False}
    rest, i = [], 0
    while i < len(argv):
        a = argv[i]
        flag, eq, value = a.partition("=")
        if flag in ("--since", "--until"):
            if not eq:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{flag} needs a value; {USAGE}")
                i, value = i + 1, argv[i + 1]
            opts[flag[2:]] = parse_time(flag, value)
        elif a == "--fail-on-alert":
            opts["fail_on_alert"] = True
        elif a.startswith("--"):
            raise ConfigError(f"unknown option {a}; {USAGE}")
        else:
            rest.append(a)
        i += 1
    if opts["since"] is not None and opts["until"] is not None and \
            opts["since"] >= opts["until"]:
        raise ConfigError("--since must be before --until")
    return opts, rest


def _windows(since: float, until: float, days: float | None) -> list[tuple[float, float]]:
    if days is None:
        return [(since, until)]
    step, out, t = days * 86400, [], since
    while t < until:
        out.append((t, min(t + step, until)))
        t += step
    return out


def _baseline(cfg: Any, root: Path, sha: str) -> Any:
    import pandas as pd

    ref_path = root / cfg.monitor.reference
    if not ref_path.is_file():
        raise DataError(f"monitor.reference {ref_path}: not found (the drift baseline; run "
                        "the split stage)")
    reference = pd.read_parquet(ref_path)
    model = load(root / cfg.monitor.model, expected_sha256=sha)
    scores = model.score(reference) if all(c in reference.columns for c in
                                           model.input_columns) else None
    columns = {c: cfg.data.columns[c].type for c in model.input_columns
               if c in cfg.data.columns}
    return Baseline(reference, columns, cfg.monitor.drift.bins, scores)


def run(cfg: Any, since: float | None, until: float | None, root: Path | None = None) -> dict:
    """Judge the log; write the report files; the report."""

    root = root or Path.cwd()
    mon = cfg.monitor
    model_path = root / mon.model
    if not model_path.is_file():
        raise DataError(f"monitor.model {model_path}: not found (the model whose predictions "
                        "are judged)")
    sha = file_sha256(model_path)
    log_dir = root / mon.log_dir
    lf = logframe.read(log_dir, sha)
    df = lf.predictions
    ts = df["_ts"].to_numpy()
    lo = float(ts.min()) if since is None else since
    hi = float(ts.max()) + 0.001 if until is None else until
    inside = (ts >= lo) & (ts < hi)
    if not inside.any():
        raise DataError(f"no prediction of model {sha[:12]} in [{iso(lo)}, {iso(hi)}); the log "
                        f"covers {lf.first} .. {lf.last}")
    baseline = _baseline(cfg, root, sha)
    windows = []
    for a, b in _windows(lo, hi, mon.window_days):
        part = df[(ts >= a) & (ts < b)].reset_index(drop=True)
        windows.append(live.evaluate(part, cfg, baseline, {"since": iso(a), "until": iso(b)}))
    verdict = live.worst([w["verdict"] for w in windows])
    many = len(windows) > 1
    report = {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "reasons": [f"{w['since']}: {r}" if many else r for w in windows for r in w["reasons"]],
        "insufficient": [f"{w['since']}: {r}" if many else r for w in windows
                         for r in w["insufficient"]],
        "model": {"sha256": sha, "versions": sorted(
            str(v) for v in df["_version"].astype(str).unique())},
        "range": {"since": iso(lo), "until": iso(hi)},
        "log": {"dir": str(mon.log_dir), "records": lf.records, "first": lf.first,
                "last": lf.last, "predictions": int(inside.sum()),
                "outcomes": int(df["_y"][inside].notna().sum()),
                "duplicate_outcomes": lf.duplicate_outcomes,
                "orphan_outcomes": lf.orphan_outcomes, "other_models": lf.other_models},
        "settings": {"threshold": cfg.metrics.threshold, "n_boot": cfg.metrics.n_boot,
                     "alpha": cfg.metrics.alpha, "min_count": cfg.metrics.min_count,
                     "min_share": cfg.metrics.min_share, "seed": cfg.seed,
                     "window_days": mon.window_days, "min_records": mon.min_records,
                     "min_outcomes": mon.min_outcomes, "drift": mon.drift.model_dump()},
        "windows": windows,
    }
    ratio_min = next((c.min for c in cfg.governance.fairness
                      if c.metric == "disparate_impact_ratio"), None)
    out = Outputs(root)

    def write() -> None:
        out.write_json(Path(mon.output_dir) / REPORT, report)
        out.path(Path(mon.output_dir) / HTML).write_text(render.html(report, ratio_min),
                                                         encoding="utf-8")

    for p in out.run(write):
        log.info("wrote %s", p)
    if mon.tag_registry:

        version = tag_champion(cfg.registry, mon.tag_key, sha, verdict,
                               report["reasons"] + report["insufficient"], iso(hi))
        log.info("tagged %s version %s %s=%s", cfg.registry.model_name, version, mon.tag_key,
                 verdict)
    return report


def main(argv: list[str]) -> int:
    logs.setup()
    try:
        opts, overrides = _args(argv)
        cfg = validate(compose(overrides, "monitor"))
        report = run(cfg, opts["since"], opts["until"])
    except PipelineError as e:
        log.error("monitor failed: %s", e)
        return EXIT_USER_ERROR
    except Exception as e:  # Hydra override errors: their text, no traceback
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            log.error("monitor failed: %s", e)
            return EXIT_USER_ERROR
        raise
    print(json.dumps({"verdict": report["verdict"], "reasons": report["reasons"],
                      "insufficient": report["insufficient"]}, indent=2))
    if opts["fail_on_alert"] and report["verdict"] != "OK":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
