"""Type and validate every row of the raw chunks against their dataset spec.

Two passes per chunk, so each error message names one rule:
1. `parse` turns text into the declared types and reports values that are not of that type,
   and missing values where the spec does not allow them (rows with a missing value in a
   `missing: drop` column are dropped and counted instead);
2. `check` runs a pandera schema built from the spec (ranges, allowed categories, nulls) over
   the typed frame, lazily, so one run reports every failing rule at once.

`Validator` runs both over every chunk and keeps, per column and rule, the count and the first
examples, so the error at the end reads as if the whole dataset had been validated at once
(and a dataset with type errors still reports those first, as one pass would).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.config import DatasetSpec
from pipeline.config.dataset import FALSE_SPELLINGS, TRUE_SPELLINGS
from pipeline.dataset.read import SOURCE_FILE, SOURCE_ROW
from pipeline.runtime.errors import DataError

MAX_EXAMPLES = 3


@dataclass
class Problem:
    """Rows of one column breaking one rule: how many, and where the first few are."""

    column: str
    rule: str
    order: tuple  # where the problem sits in a one-pass report
    count: int = 0
    where: list[str] = field(default_factory=list)
    values: list[object] = field(default_factory=list)

    def add(self, raw: pd.DataFrame, idx: Iterable[int], values: list[object]) -> None:
        idx = list(idx)
        self.count += len(idx)
        room = MAX_EXAMPLES - len(self.where)
        self.where += [f"{raw.at[i, SOURCE_FILE]} row {raw.at[i, SOURCE_ROW]}"
                       for i in idx[:max(room, 0)]]
        self.values += values[:max(MAX_EXAMPLES - len(self.values), 0)]


@dataclass
class Parsed:
    frame: pd.DataFrame
    rows_in: int
    missing: dict[str, int]
    dropped: dict[str, int]  # reason -> rows, each dropped row counted once


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def report(problems: list[Problem], spec: DatasetSpec) -> DataError:
    problems = sorted(problems, key=lambda p: p.order)
    lines = []
    for p in problems:
        n, where = p.count, ", ".join(p.where)
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
    "bool": f"type bool ({'/'.join(TRUE_SPELLINGS)} or {'/'.join(FALSE_SPELLINGS)}, any case)",
}
_BOOLS = {**dict.fromkeys(TRUE_SPELLINGS, True), **dict.fromkeys(FALSE_SPELLINGS, False)}


def _to_bool(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    value = s.str.strip().str.lower().map(_BOOLS)
    return value, s.notna() & value.isna()


def _to_number(s: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    import pandas as pd

    num = pd.to_numeric(s, errors="coerce").astype("float64")
    bad = s.notna() & num.isna()
    bad |= num.notna() & ~np.isfinite(num)  # "inf", or a literal beyond float range ("1e400")
    if kind == "int":
        bad |= num.notna() & np.isfinite(num) & ((num % 1 != 0) | (num.abs() >= MAX_EXACT_INT))
    return num, bad


def _problem(found: dict, column: str, rule: str, order: tuple) -> Problem:
    key = (column, rule)
    if key not in found:
        found[key] = Problem(column, rule, order)
    return found[key]


def parse(raw: pd.DataFrame, spec: DatasetSpec, found: dict) -> Parsed:
    """Typed frame of one raw chunk; problems go into `found` ((column, rule) -> Problem)."""
    import pandas as pd

    typed: dict[str, pd.Series] = {}
    missing: dict[str, int] = {}
    drop_mask = pd.Series(False, index=raw.index)
    dropped: dict[str, int] = {}
    for pos, (name, col) in enumerate(spec.columns.items()):
        s = raw[name]
        if col.replace:
            s = s.replace(col.replace)
        if col.type in ("int", "float"):
            s, bad = _to_number(s, col.type)
            if bad.any():
                _problem(found, name, TYPE_RULES[col.type], (0, pos, 0)).add(
                    raw, raw.index[bad], raw.loc[bad, name].tolist())
            s = s.mask(bad)
            na = s.isna() & ~bad
        elif col.type == "bool":
            s, bad = _to_bool(s)
            if bad.any():
                _problem(found, name, TYPE_RULES["bool"], (0, pos, 0)).add(
                    raw, raw.index[bad], raw.loc[bad, name].tolist())
            na = s.isna() & ~bad
        elif col.type == "date":
            parsed = pd.to_datetime(s, errors="coerce", format="ISO8601")
            bad = s.notna() & parsed.isna()
            if bad.any():
                _problem(found, name, "type date (ISO 8601)", (0, pos, 0)).add(
                    raw, raw.index[bad], raw.loc[bad, name].tolist())
            s, na = parsed, s.isna()
        else:
            na = s.isna()
        missing[name] = int(na.sum())
        if col.missing == "error" and na.any():
            _problem(found, name, "not missing (spec says missing: error)", (0, pos, 1)).add(
                raw, raw.index[na], [])
        elif col.missing == "drop":
            new = na & ~drop_mask
            if new.any():
                dropped[f"missing {name}"] = int(new.sum())
            drop_mask |= na
        typed[name] = s
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


def check(parsed: Parsed, raw: pd.DataFrame, spec: DatasetSpec, schema, found: dict):
    """Validate one typed chunk against `schema` (`_pandera_schema`); problems go into
    `found`. Returns the chunk with category columns as category dtypes, or None if it broke a
    rule."""
    import pandas as pd
    import pandera.pandas as pa

    frame = parsed.frame
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        for (column, chk), grp in fc.groupby(["column", "check"], sort=True, dropna=False):
            idx = [int(i) for i in grp["index"].dropna()]
            # Sorted as one pass's groupby over the whole data would sort them.
            _problem(found, str(column), _rule(str(chk), spec, str(column)),
                     (1, str(column), str(chk))).add(raw, idx, grp["failure_case"].tolist())
        return None
    out = {}
    for name, col in spec.columns.items():
        s = frame[name]
        if col.type == "category":
            s = pd.Categorical(s, categories=col.categories)
        elif col.type == "int":
            # The dtype follows the spec, not the chunk: one chunk without a missing value must
            # not write int64 where the next writes Int64 (one file, one schema).
            s = s.astype("Int64") if col.missing == "keep" else s.astype("int64")
        elif col.type == "bool":
            s = s.astype("boolean") if col.missing == "keep" else s.astype("bool")
        elif col.type == "string":
            s = s.astype("str")
        out[name] = s
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)


class Validator:
    """Parse and check chunk after chunk; `finish` raises one report for the whole dataset."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.schema = _pandera_schema(spec)
        self.parse_problems: dict = {}
        self.check_problems: dict = {}
        self.rows_in = 0
        self.missing = dict.fromkeys(spec.columns, 0)
        self.dropped: dict[str, int] = {}

    def add(self, raw: pd.DataFrame) -> pd.DataFrame | None:
        """The typed, validated chunk; None once any chunk broke a rule (later chunks are
        still read for the report's counts, but no longer checked or kept)."""
        parsed = parse(raw, self.spec, self.parse_problems)
        self.rows_in += parsed.rows_in
        for k, v in parsed.missing.items():
            self.missing[k] += v
        for k, v in parsed.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v
        if self.parse_problems:
            return None  # type errors are reported alone, as one pass reports them first
        frame = check(parsed, raw, self.spec, self.schema, self.check_problems)
        return None if self.check_problems else frame

    def finish(self) -> None:
        problems = self.parse_problems or self.check_problems
        if problems:
            raise report(list(problems.values()), self.spec)
