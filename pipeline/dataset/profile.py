"""The ingest report's profile of a typed frame: missing values, categories, numeric ranges."""

from __future__ import annotations

import pandas as pd

from pipeline.config import DatasetSpec
from pipeline.runtime.outputs import rounded


def profile(frame: pd.DataFrame, spec: DatasetSpec) -> dict:
    cats, nums = {}, {}
    for name, col in spec.columns.items():
        if name not in frame or col.pii is not None:
            continue  # never profile personal data: counts of values could reveal it
        s = frame[name]
        if col.type == "category":
            counts = s.value_counts(sort=False)
            cats[name] = {str(k): int(v) for k, v in counts.items()}
        elif col.type in ("int", "float"):
            d = s.dropna()
            nums[name] = {
                "min": float(d.min()) if len(d) else None,
                "max": float(d.max()) if len(d) else None,
                "mean": rounded(float(d.mean())) if len(d) else None,
            }
    for name in spec.sensitive:
        counts = frame[name].value_counts(sort=False)
        cats[f"sensitive.{name}"] = {str(k): int(v) for k, v in counts.items()}
    return {"categories": cats, "numeric": nums}
