"""Per-group statistics and group exclusion.

For the rows of one group ``g`` (``n_g`` rows out of ``n``), with ``y`` the true label and ``ŷ``
the prediction, both 0/1 with 1 the positive (favourable) outcome::

    count          = n_g
    share          = n_g / n
    positives      = #{y = 1}                 negatives       = #{y = 0}
    selected       = #{ŷ = 1}
    true_positives = #{y = 1, ŷ = 1}          false_positives = #{y = 0, ŷ = 1}
    selection_rate = selected / count          (None when count == 0)
    tpr            = true_positives / positives   (None when positives == 0)
    fpr            = false_positives / negatives  (None when negatives == 0)

The rates come from fairlearn's MetricFrame; the integer counts from one ``np.bincount``.
A rate whose denominator is zero is *undefined* (None), never 0: a group with no positives has
no true positive rate, and reporting 0 would invent a disparity.

A group is *excluded* from disparity metrics when it is empty, when ``count < min_count`` or
when ``share < min_share``. The boundary is inclusive: ``count == min_count`` is kept. Excluded
groups stay in the table with the reason.

Groups come from the categories of a categorical Series, in category order, so a declared
category with no rows appears with count 0 (and is excluded as "empty group"); otherwise from
the sorted unique values. Missing values are rejected: encode them as an explicit category.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.fairness._inputs import check_labels, check_thresholds

INTERSECTION_SEP = "|"


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Counts and rates of one group; see the module docstring for the formulas."""

    group: str
    count: int
    share: float
    positives: int
    negatives: int
    selected: int
    true_positives: int
    false_positives: int
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    excluded: bool
    exclusion_reason: str | None


def encode_groups(groups: pd.Series) -> tuple[list[str], np.ndarray]:
    """Return (group labels in deterministic order, integer code of each row).

    Labels are the categories of a categorical Series (in category order, including unused
    ones), else the sorted unique values; each is converted to `str`. Raises ValueError on
    missing values or on two values with the same string form.
    """
    import pandas as pd

    s = groups if isinstance(groups, pd.Series) else pd.Series(groups)
    n_missing = int(s.isna().sum())
    if n_missing:
        raise ValueError(
            f"sensitive attribute {s.name!r} has {n_missing} missing value(s); "
            "encode them as an explicit category (e.g. 'Unknown') before measuring fairness"
        )
    if isinstance(s.dtype, pd.CategoricalDtype):
        categories = list(s.cat.categories)
        codes = s.cat.codes.to_numpy()
    else:
        uniques = list(pd.unique(s))
        try:
            categories = sorted(uniques)
        except TypeError:  # mixed types: order by string form, still deterministic
            categories = sorted(uniques, key=str)
        codes = pd.Categorical(s, categories=categories).codes
    labels = [str(c) for c in categories]
    if len(set(labels)) != len(labels):
        raise ValueError(f"sensitive attribute {s.name!r} has values with the same string form")
    return labels, np.asarray(codes, dtype=np.int64)


def intersection(
    sensitive: pd.DataFrame, columns: Sequence[str], *, sep: str = INTERSECTION_SEP
) -> pd.Series:
    """Intersectional group of each row, e.g. ``"Female|White"``.

    Returns a categorical Series named ``"*".join(columns)`` whose categories are the Cartesian
    product of each column's groups (see `encode_groups`), first column varying slowest, so
    empty cells exist as categories and show up with count 0.
    """
    import pandas as pd

    columns = list(columns)
    if not columns:
        raise ValueError("an intersection needs at least one column")
    if len(set(columns)) != len(columns):
        raise ValueError(f"intersection columns repeat: {columns}")
    missing = [c for c in columns if c not in sensitive.columns]
    if missing:
        raise ValueError(
            f"intersection columns {missing} not in sensitive columns {list(sensitive.columns)}"
        )
    code = np.zeros(len(sensitive), dtype=np.int64)
    per_column_labels = []
    for col in columns:
        labels, codes = encode_groups(sensitive[col].rename(col))
        clash = [lab for lab in labels if sep in lab]
        if clash:
            raise ValueError(f"values {clash} of {col!r} contain the separator {sep!r}")
        code = code * len(labels) + codes
        per_column_labels.append(labels)
    categories = [sep.join(parts) for parts in itertools.product(*per_column_labels)]
    return pd.Series(
        pd.Categorical.from_codes(code, categories=categories),
        index=sensitive.index,
        name="*".join(columns),
    )


def exclusion_reason(count_: int, share: float, *, min_count: int, min_share: float) -> str | None:
    """Why a group is excluded from disparity metrics, or None if it is kept.

    Thresholds are inclusive: ``count == min_count`` and ``share == min_share`` are kept.
    """
    if count_ == 0:
        return "empty group"
    reasons = []
    if count_ < min_count:
        reasons.append(f"count {count_} < min_count {min_count}")
    if share < min_share:
        reasons.append(f"share {share:.6g} < min_share {min_share}")
    return "; ".join(reasons) or None


def confusion_by_group(
    codes: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per-group confusion counts, shape ``(n_groups, 2, 2)``: ``cm[g, y, ŷ] = #rows``.

    One ``np.bincount`` over the cell index ``g * 4 + y * 2 + ŷ``.
    """
    cell = codes * 4 + y_true * 2 + y_pred
    return np.bincount(cell, minlength=4 * n_groups).reshape(n_groups, 2, 2)


# Rates come from fairlearn; the integer counts (positives, selected, ...) from one bincount,
# which is exact and avoids five more MetricFrame passes (each costs a full column copy).
def _frame_metrics() -> dict:
    from fairlearn.metrics import count, false_positive_rate, selection_rate, true_positive_rate

    return {
        "count": count,
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
    }


def group_stats(
    y_true, y_pred, groups: pd.Series, *, min_count: int, min_share: float
) -> list[GroupStats]:
    """Per-group counts and rates (via fairlearn's MetricFrame), in deterministic group order.

    `y_true`, `y_pred`: 0/1 arrays, 1 = positive label (anything else raises ValueError).
    `groups`: the group of each row (same length); see `encode_groups` for the group order.
    Groups with ``count < min_count`` or ``share < min_share`` (or no rows) are marked excluded.
    """
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    yt, yp = check_labels(y_true, y_pred)
    check_thresholds(min_count, min_share)
    labels, codes = encode_groups(groups)
    if len(codes) != len(yt):
        raise ValueError(f"groups has {len(codes)} rows but y_true has {len(yt)}")
    n = len(yt)

    cm = confusion_by_group(codes, yt, yp, len(labels))
    frame = MetricFrame(
        metrics=_frame_metrics(),
        y_true=yt,
        y_pred=yp,
        sensitive_features=pd.Series(
            np.asarray(labels, dtype=object)[codes], name=getattr(groups, "name", None) or "group"
        ),
    )
    by_group = frame.by_group  # only groups with rows; empty categories are filled in below

    out = []
    for i, label in enumerate(labels):
        (tn, fp), (fn, tp) = cm[i].tolist()
        n_g, pos, neg, sel = tn + fp + fn + tp, fn + tp, tn + fp, fp + tp
        if n_g:
            row = by_group.loc[label]
            if int(row["count"]) != n_g:  # pragma: no cover - guards the two code paths
                raise RuntimeError(f"group {label!r}: MetricFrame count != bincount count")
            sr = float(row["selection_rate"])
            # fairlearn reports 0.0 for a rate with an empty denominator; that is undefined.
            tpr = float(row["tpr"]) if pos > 0 else None
            fpr = float(row["fpr"]) if neg > 0 else None
        else:
            sr = tpr = fpr = None
        share = n_g / n
        reason = exclusion_reason(n_g, share, min_count=min_count, min_share=min_share)
        out.append(
            GroupStats(
                group=label,
                count=n_g,
                share=share,
                positives=pos,
                negatives=neg,
                selected=sel,
                true_positives=tp,
                false_positives=fp,
                selection_rate=sr,
                tpr=tpr,
                fpr=fpr,
                excluded=reason is not None,
                exclusion_reason=reason,
            )
        )
    return out
