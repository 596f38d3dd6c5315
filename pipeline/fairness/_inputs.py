"""Input checks shared by the fairness modules.

Labels are encoded by the caller: 1 is the positive (favourable) outcome, 0 the other. Anything
else is rejected here, so a mismatched positive label can never be silently treated as 0.
"""

from __future__ import annotations

import numpy as np


def check_binary(name: str, values) -> np.ndarray:
    """Return `values` as a 1-D int64 array of 0/1, or raise ValueError.

    Accepts bool, integer and float arrays whose every value is exactly 0 or 1. NaN, other
    numbers and non-numeric dtypes (strings, objects, categoricals) are rejected.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must be numeric 0/1 (1 = positive label), got dtype {arr.dtype}; "
            "encode labels before computing fairness metrics"
        )
    ok = (arr == 0) | (arr == 1)
    if not ok.all():
        bad = np.unique(arr[~ok])[:5]
        raise ValueError(
            f"{name} must contain only 0 and 1 (1 = positive label); found {bad.tolist()}"
        )
    return arr.astype(np.int64, copy=False)


def check_labels(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Validate `y_true` and `y_pred` together: both 0/1, same non-zero length."""
    yt = check_binary("y_true", y_true)
    yp = check_binary("y_pred", y_pred)
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} rows but y_pred has {len(yp)}")
    if len(yt) == 0:
        raise ValueError("y_true and y_pred are empty; fairness metrics need at least one row")
    return yt, yp


def check_thresholds(min_count: int, min_share: float) -> None:
    """Validate the group-exclusion thresholds."""
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)):
        raise ValueError(f"min_count must be an int, got {min_count!r}")
    if min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    if isinstance(min_share, bool) or not isinstance(min_share, (int, float, np.number)):
        raise ValueError(f"min_share must be a number, got {min_share!r}")
    if not 0.0 <= float(min_share) <= 1.0:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
