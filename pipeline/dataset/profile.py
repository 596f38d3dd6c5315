"""The ingest report's profile of the typed data: missing values, categories, numeric ranges.

Accumulated chunk by chunk (`Profile.add`), so ingest never needs the whole frame: counts and
sums add up, min and max combine. The mean is the exact sum over the count, as pandas computes
it for one frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

from pipeline.config import DatasetSpec
from pipeline.runtime.outputs import rounded


class Profile:
    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.cats: dict[str, dict[str, int]] = {}
        self.nums: dict[str, list] = {}  # name -> [min, max, sum, count]

    def _count(self, key: str, s: pd.Series) -> None:
        into = self.cats.setdefault(key, {})
        for k, v in s.value_counts(sort=False).items():
            into[str(k)] = into.get(str(k), 0) + int(v)

    def add(self, frame: pd.DataFrame) -> None:
        for name, col in self.spec.columns.items():
            if name not in frame or col.pii is not None:
                continue  # never profile personal data: counts of values could reveal it
            s = frame[name]
            if col.type in ("category", "bool"):
                self._count(name, s)
            elif col.type in ("int", "float"):
                d = s.dropna()
                acc = self.nums.setdefault(name, [None, None, 0, 0])
                if len(d):
                    lo, hi = float(d.min()), float(d.max())
                    acc[0] = lo if acc[0] is None else min(acc[0], lo)
                    acc[1] = hi if acc[1] is None else max(acc[1], hi)
                    total = d.sum()
                    acc[2] += total.item() if hasattr(total, "item") else total  # ints exact
                    acc[3] += len(d)
        for name in self.spec.sensitive:
            self._count(f"sensitive.{name}", frame[name])

    def result(self) -> dict:
        nums = {
            name: {"min": lo, "max": hi, "mean": rounded(total / n) if n else None}
            for name, (lo, hi, total, n) in self.nums.items()
        }
        return {"categories": self.cats, "numeric": nums}
