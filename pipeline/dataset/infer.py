"""Infer a draft column spec from a data file: the scaffold's evidence (`pipeline.scaffold`).

Each column gets a type, its allowed values (categories up to a limit, numeric ranges observed
and rounded outward), what a missing value does, and flags a reviewer must see:

- PII: a header that names personal data (`HEADER_PII`), values the privacy detectors find in
  a sample (`PII_SAMPLE` values, more than `PII_SHARE` of them), or an identifier (a string
  that is different on nearly every row). A flagged column is drafted `pii: drop` and its
  values never reach the draft, the console or a log: not even as categories.
- sensitive attribute: sex/gender, race/ethnicity, age (binned at 40, the US ADEA line).
- leakage: a single column that predicts the target almost perfectly on its own (a one-column
  tree, `LEAK_ACCURACY`), or a name that looks like an outcome.

The file is read once, as text (the pipeline's own reading rules: every value a string, empty
as missing), so what the draft declares is what ingest will find.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from pipeline.config.dataset import FALSE_SPELLINGS, MAX_INT_TARGET_VALUES, TRUE_SPELLINGS

# Values that mean "missing" in files people export (added to source.na_values when a column
# is otherwise numeric or otherwise a small category).
NA_TOKENS = ("?", "NA", "N/A", "n/a", "NULL", "null", "None", "nan", "NaN", "-")
MAX_CATEGORIES = 50
PII_SAMPLE = 200
PII_SHARE = 0.1
ID_UNIQUE_SHARE = 0.9   # distinct/rows of a word-less string above this: an identifier
TEXT_MIN_WORDS = 3.0    # mean words per value from which a string is free text
LEAK_ACCURACY = 0.98
HEADER_PII = re.compile(
    r"(^|[^a-z])(name|first.?name|last.?name|surname|full.?name|e.?mail|phone|mobile|"
    r"ssn|social.?security|passport|address|street|zip|post.?code|dob|birth|born|"
    r"case.?(no|num|number|id)|uuid|guid|ip.?addr|iban|account|card|licen[cs]e|"
    r"id|identifier|booking|docket)([^a-z]|$)|^(first|last|given|middle|family|forename)s?$",
    re.I)
HEADER_OUTCOME = re.compile(
    r"(^|[^a-z])(outcome|result|label|target|decision|approved|granted|predict\w*|"
    r"score|recid\w*|default(ed)?|y)([^a-z]|$)", re.I)
SENSITIVE = (("sex", re.compile(r"^(sex|gender)$", re.I)),
             ("race", re.compile(r"^(race|ethnicity|race.?ethnicity|ethnic.?group)$", re.I)),
             ("age", re.compile(r"^age$", re.I)))
AGE_BINS = [40]
AGE_LABELS = ["under_40", "40_and_over"]


@dataclass
class ColumnDraft:
    name: str
    type: str                      # int | float | bool | category | string | date
    missing: int = 0               # missing values (after na tokens)
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    pii: str | None = None         # why it is flagged PII (None: not flagged)
    text: bool = False             # free text: a feature through a text encoder
    sensitive: str | None = None   # the attribute name it is a candidate for
    leak: str | None = None        # why it may leak the target
    notes: list[str] = field(default_factory=list)


def _outward(lo: float, hi: float, integral: bool) -> tuple[float, float]:
    """Observed [lo, hi] widened to the next multiple of a tenth of the larger magnitude's power
    of ten (17..90 stays 17..90; 3..99,999 becomes 0..100,000): room for unseen values of the
    same order, never a narrower range than the data."""
    top = max(abs(lo), abs(hi))
    if top == 0:
        return lo, hi
    step = 10.0 ** (math.floor(math.log10(top)) - 1)
    if integral:
        step = max(step, 1.0)
    lo2, hi2 = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if integral:
        return float(int(lo2)), float(int(hi2))
    return float(f"{lo2:.12g}"), float(f"{hi2:.12g}")


def _numeric(s: pd.Series) -> tuple[pd.Series, bool] | None:
    import pandas as pd

    num = pd.to_numeric(s, errors="coerce")
    if num.isna().any() or not np.isfinite(num.to_numpy(dtype=float)).all():
        return None
    integral = bool(((num % 1) == 0).all() and (num.abs() < 2**53).all())
    return num.astype(float), integral


def _is_date(s: pd.Series) -> bool:
    import pandas as pd

    if s.str.len().min() < 8 or not s.str.match(r"^\d{4}-\d{2}-\d{2}").all():
        return False
    return bool(pd.to_datetime(s, errors="coerce", format="ISO8601").notna().all())


def _is_bool(s: pd.Series) -> bool:
    low = set(s.str.strip().str.lower().unique())
    words = set(TRUE_SPELLINGS + FALSE_SPELLINGS) - {"1", "0"}
    return len(low) == 2 and low <= words


def infer_column(name: str, raw: pd.Series, max_categories: int, scrubber) -> tuple[
        ColumnDraft, set[str]]:
    """(the draft, the NA tokens this column uses). `raw` is text with real missing as NaN."""
    tokens = {t for t in NA_TOKENS if (raw == t).any()}
    values = raw.dropna()
    rest = values[~values.isin(tokens)]
    use_tokens: set[str] = set()
    draft = ColumnDraft(name=name, type="string")
    if tokens and len(rest) and (_numeric(rest) is not None or rest.nunique() <= max_categories):
        values, use_tokens = rest, tokens
    draft.missing = int(len(raw) - len(values))
    why = _pii_reason(name, values, scrubber)
    if why:
        draft.pii = why
        draft.type = "date" if len(values) and _is_date(values) else "string"
        return draft, use_tokens
    if len(values) == 0:
        draft.notes.append("every value is missing")
        return draft, use_tokens
    num = _numeric(values)
    if num is not None:
        series, integral = num
        draft.type = "int" if integral else "float"
        draft.min, draft.max = _outward(float(series.min()), float(series.max()), integral)
    elif _is_bool(values):
        draft.type = "bool"
    elif _is_date(values):
        draft.type = "date"
    elif values.nunique() <= max_categories:
        draft.type = "category"
        draft.categories = sorted(str(v) for v in values.unique())
    else:
        words = values.str.split().str.len().mean()
        draft.text = bool(words >= TEXT_MIN_WORDS)
        draft.type = "string"
        if not draft.text:
            draft.notes.append(f"more than {max_categories} distinct short values: neither a "
                               "category nor free text, so not a feature")
    return draft, use_tokens


def _pii_reason(name: str, values: pd.Series, scrubber) -> str | None:
    if HEADER_PII.search(name.replace("-", "_")):
        return "its header names personal data or an identifier"
    sample = values.astype(str).head(PII_SAMPLE)
    if len(sample):
        hits = sum(1 for v in sample if scrubber.scan(v))
        if hits > PII_SHARE * len(sample):
            kinds = sorted({f.entity for v in sample for f in scrubber.scan(v)})
            return f"the privacy detectors find {', '.join(kinds)} in {hits}/{len(sample)} values"
    if len(values) >= 20 and values.nunique() > ID_UNIQUE_SHARE * len(values):
        words = values.astype(str).str.split().str.len().mean()
        if words < TEXT_MIN_WORDS and _numeric(values) is None:
            return "a different value on nearly every row: an identifier"
    return None


def sensitive_candidate(draft: ColumnDraft) -> str | None:
    for attr, pattern in SENSITIVE:
        if pattern.match(draft.name.strip()):
            if attr == "age" and draft.type in ("int", "float"):
                return "age_group"
            if draft.type == "category":
                return attr
    return None


def leakage(name: str, raw: pd.Series, y: np.ndarray) -> str | None:
    """Why `name` may leak the target, or None. A one-column depth-3 tree's accuracy (on the
    data itself: this is a smell test, not a model) at LEAK_ACCURACY or above, or a name that
    reads like an outcome."""
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier

    ok = raw.notna().to_numpy()
    if ok.sum() >= 20:
        num = pd.to_numeric(raw[ok], errors="coerce")
        x = (num.to_numpy(dtype=float) if num.notna().all()
             else pd.factorize(raw[ok])[0].astype(float))
        tree = DecisionTreeClassifier(max_depth=3, random_state=0)
        acc = float(tree.fit(x.reshape(-1, 1), y[ok]).score(x.reshape(-1, 1), y[ok]))
        majority = max(y[ok].mean(), 1 - y[ok].mean())
        if acc >= LEAK_ACCURACY and acc > majority + 0.01:
            return f"on its own it predicts the target with accuracy {acc:.3f}"
    if HEADER_OUTCOME.search(name.replace("-", "_")):
        return "its name reads like an outcome"
    return None


def target_values(raw: pd.Series) -> tuple[str, list[str], int | None, int | None]:
    """(type, labels as text, min, max) of a target column: int for whole numbers spanning
    2..MAX_INT_TARGET_VALUES values, bool for true/false-style words, else category."""
    values = raw.dropna()
    labels = sorted(str(v) for v in values.unique())
    num = _numeric(values)
    if num is not None and num[1]:
        lo, hi = int(num[0].min()), int(num[0].max())
        if 0 < hi - lo < MAX_INT_TARGET_VALUES:
            return "int", labels, lo, hi
    if _is_bool(values):
        return "bool", labels, None, None
    return "category", labels, None, None
