"""Derive sensitive-attribute columns from the dataset spec (as-is, value map, or binning)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.config import DatasetSpec, SensitiveSpec


def derive_one(frame: pd.DataFrame, s: SensitiveSpec, spec: DatasetSpec) -> pd.Series:
    import pandas as pd

    groups = s.groups(spec.columns)
    src = frame[s.column]
    if s.bins is not None:
        edges = [-np.inf, *s.bins, np.inf]
        # right=False: [lo, hi) so a bin edge belongs to the upper group ("25 and over").
        values = pd.cut(src.astype("float64"), bins=edges, right=False, labels=s.labels)
        return pd.Series(pd.Categorical(values.astype(object), categories=groups),
                         index=frame.index)
    if s.map is not None:
        return pd.Series(pd.Categorical(src.astype(object).map(s.map), categories=groups),
                         index=frame.index)
    return pd.Series(pd.Categorical(src.astype(object), categories=groups), index=frame.index)


def derive(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Add one categorical column per sensitive attribute, named after the attribute."""
    out = frame.copy()
    for name, s in spec.sensitive.items():
        out[name] = derive_one(frame, s, spec)
    return out
