"""What goes into an MLflow run: scrubbed params, metric names MLflow accepts, tags, a synthetic
input example. Pure functions, so the register stage stays a short script."""

from __future__ import annotations

import json
import re
from typing import Any

from pipeline.audit.gates import outcome

_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")
MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


def key(name: str) -> str:
    """A metric/param/tag key MLflow accepts: `sex*race` → `sex_x_race`."""
    return _BAD_KEY_CHARS.sub("_", name.replace("*", "_x_"))


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        value = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True)
        out[key(prefix[:-1])] = value[:MAX_PARAM_LEN]
    return out


def params(sections: dict[str, Any]) -> dict[str, str]:
    """Flattened config for MLflow params. The dataset's per-column rules are long and belong in
    the config artefact; params keep what one compares runs by."""
    slim = json.loads(json.dumps(sections))
    slim.get("data", {}).pop("columns", None)
    return flatten(slim)


def metrics(performance: dict, fairness_summary: dict) -> dict[str, float]:
    out = {}
    for split, perf in performance.items():
        for k, v in perf.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "threshold":
                out[key(f"{split}.{k}")] = float(v)
    for split, attrs in fairness_summary.items():
        for attr, values in attrs.items():
            for k, v in values.items():
                if v is not None:
                    out[key(f"{split}.{attr}.{k}")] = float(v)
    return out


def gate_tags(governance: dict) -> dict[str, str]:
    tags = {}
    for g in governance["gates"]:
        tags[key(f"gate.{g['id']}")] = outcome(g["passed"], g["advisory"])
    tags["gate.privacy_scan"] = outcome(governance["privacy_scan"]["findings"] == 0, False)
    return tags


def synthetic_example(spec, columns: list[str]) -> dict[str, list]:
    """One made-up record within the spec's rules (never a row of the data): the first allowed
    category, the middle of each numeric range."""
    row: dict[str, list] = {}
    for c in columns:
        if c in spec.columns:
            col = spec.columns[c]
            if col.type == "category":
                row[c] = [col.categories[0]]
            elif col.type == "bool":
                row[c] = [False]
            elif col.type in ("int", "float"):
                lo = col.min if col.min is not None else 0.0
                hi = col.max if col.max is not None else lo
                mid = (lo + hi) / 2
                row[c] = [int(round(mid))] if col.type == "int" else [float(mid)]
            else:
                row[c] = ["text"]
        else:  # a derived sensitive attribute
            row[c] = [spec.sensitive[c].groups(spec.columns)[0]]
    return row
