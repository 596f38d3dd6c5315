"""The audit log as one frame of predictions with their outcomes, read in the verify pass.

The chain is verified while it is read (pipeline.audit.chain.verify): a broken chain is a
DataError naming the first broken link, never a report on doctored data. Records are kept in
chunks of plain lists turned into frames with categorical strings, so a million records take
hundreds of MB, not the gigabytes of a million dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.audit.chain import iso, verify
from pipeline.runtime.errors import DataError

CHUNK = 100_000
META = ("_ts", "_request_id", "_index", "_sha256", "_version", "_probability", "_label_id")


@dataclass
class LogFrame:
    predictions: Any                  # DataFrame: META columns + logged feature columns + _y
    outcomes: int                     # outcome records joined
    duplicate_outcomes: int           # later outcomes for an id that already had one
    orphan_outcomes: int              # outcomes whose prediction is not in the frame
    other_models: dict[str, int] = field(default_factory=dict)  # sha256 -> records skipped
    first: str | None = None
    last: str | None = None
    records: int = 0


class _Collector:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.frames: list[Any] = []
        self.outcomes: list[tuple] = []

    def __call__(self, rec: dict) -> None:
        kind = rec["kind"]
        if kind == "prediction":
            row = rec["features"]
            m = rec["model"]
            row["_ts"], row["_request_id"], row["_index"] = rec["ts"], rec["request_id"], \
                rec["index"]
            row["_sha256"], row["_version"] = m.get("sha256"), m.get("version")
            row["_probability"], row["_label_id"] = rec["probability"], rec["label_id"]
            self.rows.append(row)
            if len(self.rows) >= CHUNK:
                self.flush()
        elif kind == "outcome":
            self.outcomes.append((rec["request_id"], rec["index"], rec["label_id"], rec["ts"]))

    def flush(self) -> None:
        import pandas as pd

        if not self.rows:
            return
        df = pd.DataFrame.from_records(self.rows)
        self.rows = []
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].astype("category")
        self.frames.append(df)


def read(directory: Path, model_sha256: str | None) -> LogFrame:
    """Every prediction of the model with `model_sha256` (None: all), outcomes joined."""
    import pandas as pd

    if not Path(directory).is_dir():
        raise DataError(f"audit log {directory}: no such directory (serve.audit.dir)")
    col = _Collector()
    report = verify(Path(directory), col)
    if report.files == 0:
        raise DataError(f"audit log {directory}: no segments (*.NNNNNN.jsonl) in it")
    if not report.ok:
        raise DataError(f"audit log {directory} is broken: {report.problems[0]}; nothing "
                        f"judged (python -m pipeline.audit verify {directory} lists every "
                        "problem)")
    col.flush()
    if not col.frames:
        raise DataError(f"audit log {directory}: no predictions in it")
    df = pd.concat(col.frames, ignore_index=True) if len(col.frames) > 1 else col.frames[0]
    for c in df.columns:  # categories differ between chunks: union them
        if isinstance(df[c].dtype, pd.CategoricalDtype) or df[c].dtype == object:
            df[c] = df[c].astype("category")
    other: dict[str, int] = {}
    if model_sha256 is not None:
        counts = df["_sha256"].astype(str).value_counts()
        other = {k: int(v) for k, v in counts.items() if k != model_sha256}
        df = df[df["_sha256"].astype(str) == model_sha256].reset_index(drop=True)
        if df.empty:
            held = ", ".join(f"{k[:12]} ({v} records)" for k, v in other.items())
            raise DataError(f"audit log {directory} holds no prediction of model "
                            f"{model_sha256[:12]} (monitor.model); it holds: {held}")
    out = pd.DataFrame(col.outcomes, columns=["_request_id", "_index", "_y", "_outcome_ts"])
    n_out = len(out)
    out = out.drop_duplicates(["_request_id", "_index"], keep="first")
    dup = n_out - len(out)
    df["_request_id"] = df["_request_id"].astype(str)
    merged = df.merge(out[["_request_id", "_index", "_y"]], on=["_request_id", "_index"],
                      how="left", sort=False)
    orphans = len(out) - int(merged["_y"].notna().sum())
    return LogFrame(merged, n_out - dup, dup, max(orphans, 0), other, iso(report.first_ts),
                    iso(report.last_ts), report.records)
