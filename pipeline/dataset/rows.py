"""Type and validate every row of a raw frame against its dataset spec.

Two passes, so each error message names one rule:
1. `parse` turns text into the declared types and reports values that are not of that type,
   and missing values where the spec does not allow them (rows with a missing value in a
   `missing: drop` column are dropped and counted instead);
2. `check` runs a pandera schema built from the spec (ranges, allowed categories, nulls) over
   the typed frame, lazily, so one run reports every failing rule at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.config import DatasetSpec
from pipeline.dataset.read import SOURCE_FILE, SOURCE_ROW
from pipeline.runtime.errors import DataError

MAX_EXAMPLES = 3


@dataclass
class Problem:
    column: str
    rule: str
    index: pd.Index
    values: list[object] = field(default_factory=list)


@dataclass
class Parsed:
    frame: pd.DataFrame
    rows_in: int
    missing: dict[str, int]
    dropped: dict[str, int]  # reason -> rows, each dropped row counted once


def _where(raw: pd.DataFrame, idx: Iterable[int]) -> str:
    return ", ".join(
        f"{raw.at[i, SOURCE_FILE]} row {raw.at[i, SOURCE_ROW]}" for i in list(idx)[:MAX_EXAMPLES]
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def report(problems: list[Problem], raw: pd.DataFrame, spec: DatasetSpec) -> DataError:
    lines = []
    for p in problems:
        n = len(p.index)
        where = _where(raw, p.index)
        hidden = spec.columns[p.column].pii is not None if p.column in spec.columns else False
        shown = "" if hidden or not p.values else (
            "; values " + ", ".join(_show(v) for v in p.values[:MAX_EXAMPLES])
        )
        lines.append(
            f"  column '{p.column}': {n} row(s) break rule {p.rule} (e.g. {where}{shown})"
        )
    return DataError(
        f"dataset '{spec.name}' does not match its spec ({len(problems)} problem(s)):\n"
        + "\n".join(lines)
    )


# Numbers are typed through float64, which holds integers exactly only below 2**53 (2**53 + 1
# already reads as 2**53). A larger "int" would be rounded silently, and past 2**63 wrap round
# to a negative int64 when `check` casts the column, after the range rules passed it. So it is
# a type error here.
MAX_EXACT_INT = 2**53
TYPE_RULES = {
    "int": "type int (a whole number, |value| < 2^53)",
    "float": "type float (a finite number)",
}


def _to_number(s: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    num = pd.to_numeric(s, errors="coerce").astype("float64")
    bad = s.notna() & num.isna()
    bad |= num.notna() & ~np.isfinite(num)  # "inf", or a literal beyond float range ("1e400")
    if kind == "int":
        bad |= num.notna() & np.isfinite(num) & ((num % 1 != 0) | (num.abs() >= MAX_EXACT_INT))
    return num, bad


def parse(raw: pd.DataFrame, spec: DatasetSpec) -> Parsed:
    problems: list[Problem] = []
    typed: dict[str, pd.Series] = {}
    missing: dict[str, int] = {}
    drop_mask = pd.Series(False, index=raw.index)
    dropped: dict[str, int] = {}
    for name, col in spec.columns.items():
        s = raw[name]
        if col.replace:
            s = s.replace(col.replace)
        if col.type in ("int", "float"):
            s, bad = _to_number(s, col.type)
            if bad.any():
                problems.append(Problem(name, TYPE_RULES[col.type], raw.index[bad],
                                        raw.loc[bad, name].tolist()))
            s = s.mask(bad)
            na = s.isna() & ~bad
        elif col.type == "date":
            parsed = pd.to_datetime(s, errors="coerce", format="ISO8601")
            bad = s.notna() & parsed.isna()
            if bad.any():
                problems.append(Problem(name, "type date (ISO 8601)", raw.index[bad],
                                        raw.loc[bad, name].tolist()))
            s, na = parsed, s.isna()
        else:
            na = s.isna()
        missing[name] = int(na.sum())
        if col.missing == "error" and na.any():
            problems.append(Problem(name, "not missing (spec says missing: error)", raw.index[na]))
        elif col.missing == "drop":
            new = na & ~drop_mask
            if new.any():
                dropped[f"missing {name}"] = int(new.sum())
            drop_mask |= na
        typed[name] = s
    if problems:
        raise report(problems, raw, spec)
    frame = pd.DataFrame(typed, index=raw.index)[~drop_mask]
    return Parsed(frame=frame, rows_in=len(raw), missing=missing, dropped=dropped)


def _pandera_schema(spec: DatasetSpec):
    import pandera.pandas as pa

    cols = {}
    for name, col in spec.columns.items():
        checks = []
        if col.min is not None:
            checks.append(pa.Check.ge(col.min))
        if col.max is not None:
            checks.append(pa.Check.le(col.max))
        if col.type == "category":
            checks.append(pa.Check.isin(col.categories))
        cols[name] = pa.Column(checks=checks, nullable=col.missing == "keep")
    return pa.DataFrameSchema(cols, strict=True)


def _rule(check: str, spec: DatasetSpec, column: str) -> str:
    col = spec.columns.get(column)
    if check.startswith("isin") and col is not None:
        return "allowed categories (unknown category)"
    if check.startswith("greater_than_or_equal_to") and col is not None:
        return f"min {col.min:g}"
    if check.startswith("less_than_or_equal_to") and col is not None:
        return f"max {col.max:g}"
    if check == "not_nullable":
        return "not missing"
    return check


def check(parsed: Parsed, raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Validate the typed frame; return it with category columns as ordered-category dtypes."""
    import pandera.pandas as pa

    frame = parsed.frame
    try:
        _pandera_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        problems = []
        for (column, chk), grp in fc.groupby(["column", "check"], sort=True, dropna=False):
            idx = pd.Index([int(i) for i in grp["index"].dropna()])
            problems.append(Problem(str(column), _rule(str(chk), spec, str(column)), idx,
                                    grp["failure_case"].tolist()))
        raise report(problems, raw, spec) from None
    out = {}
    for name, col in spec.columns.items():
        s = frame[name]
        if col.type == "category":
            s = pd.Categorical(s, categories=col.categories)
        elif col.type == "int":
            s = s.astype("int64") if not s.isna().any() else s.astype("Int64")
        elif col.type == "string":
            s = s.astype("str")
        out[name] = s
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)
