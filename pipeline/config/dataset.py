"""Dataset spec: everything ingest, split and the server need to know about one dataset.

Bringing a new dataset means writing one `conf/data/<name>.yaml` (its `data:` section validates
against `DatasetSpec`); no code changes. `python -m pipeline.scaffold FILE` drafts it.

Targets and features as users have them:
- a column the model never uses may be declared `NAME: ignore` (present in the file, never
  read: no type needed, its values go nowhere);
- an `int` or `bool` target works as it is (`positive: 1`, `positive: true`): it is read as a
  two-or-more-label category whose labels are the values' canonical text ("1", "true");
- every type is a feature or refused here: `int`, `float`, `bool` (numeric), `category`
  (one-hot), `string` with a declared `text` encoder (TF-IDF or hashing); `date` and a
  `string` without an encoder are config errors.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section

ColumnType = Literal["int", "float", "bool", "category", "string", "date"]
PiiPolicy = Literal["drop", "hash", "year"]
IGNORE = "ignore"
# Spellings a `bool` column accepts (compared lower-case); anything else is a type error.
TRUE_SPELLINGS = ("true", "t", "yes", "y", "1")
FALSE_SPELLINGS = ("false", "f", "no", "n", "0")
# An `int` target becomes a category of its values: a range wider than this is not a label.
MAX_INT_TARGET_VALUES = 20


class SourceSpec(Section):
    """Where the raw files are and how to parse them."""

    dir: str = Field(description="folder under the repo root, tracked by data.dvc")
    files: list[str] = Field(min_length=1)
    format: Literal["csv", "parquet"] = "csv"
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    skip_initial_space: bool = False
    comment: str | None = Field(default=None, min_length=1, max_length=1)
    na_values: list[str] = []
    names: list[str] | None = Field(default=None, description=(
        "the file's column names in order, replacing its header row (or naming a headerless "
        "file's columns): needed when a header repeats a name"))
    provenance: str | None = None
    licence: str | None = None

    @field_validator("names")
    @classmethod
    def _unique_names(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            dup = sorted({n for n in v if v.count(n) > 1})
            raise ValueError(f"names repeats {dup}; every column needs its own name")
        return v


class TextSpec(Section):
    """How a free-text (`string`) feature becomes numbers. Both encoders are deterministic:
    TF-IDF keeps the `max_features` most frequent terms of the train split (scikit-learn's
    TfidfVectorizer); hashing maps terms to `max_features` buckets with no vocabulary (the
    model then stores no words from the data at all)."""

    encoder: Literal["tfidf", "hashing"] = "tfidf"
    max_features: int = Field(default=100, ge=1, le=5000)
    ngram_max: int = Field(default=1, ge=1, le=3, description="1: words; 2: words and pairs")


class ColumnSpec(Section):
    """One raw column: its type and the values it may take.

    `replace` maps raw spellings to canonical ones before validation (Adult's test labels end
    with '.'). `missing` says what a missing value does: `error` (the default) fails ingest,
    `drop` drops the row and counts it in the report, `keep` keeps it as missing.
    """

    type: ColumnType
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    missing: Literal["error", "drop", "keep"] = "error"
    replace: dict[str, str] = {}
    pii: PiiPolicy | None = None
    text: TextSpec | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _rules_fit_type(self) -> ColumnSpec:
        if self.text is not None and self.type != "string":
            raise ValueError(
                f"`text` (an encoder) is only allowed for type string, not {self.type}")
        if self.type == "category" and not self.categories:
            raise ValueError("a category column needs a non-empty `categories` list")
        if self.type != "category" and self.categories is not None:
            raise ValueError(f"`categories` is only allowed for type category, not {self.type}")
        if self.type not in ("int", "float") and (self.min is not None or self.max is not None):
            raise ValueError(f"`min`/`max` are only allowed for int and float, not {self.type}")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"bounds must be finite numbers, got {bound}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.categories and len(set(self.categories)) != len(self.categories):
            raise ValueError("`categories` has duplicates")
        return self


class TargetSpec(Section):
    column: str
    positive: str = Field(description="the favourable outcome; encoded as 1, everything else 0")
    # Plain words for the model card and the server's answer: what the favourable label means
    # for the person scored ("earns more than $50K a year"), and what every other label means.
    favourable_means: str | None = None
    unfavourable_means: str | None = None


class SensitiveSpec(Section):
    """A sensitive attribute, taken from a column as-is or derived by a value map or binning.

    Binning uses right-open intervals: with `bins: [25]` and `labels: [under_25, 25_and_over]`,
    age 24 is `under_25` and 25 is `25_and_over`.
    """

    column: str
    map: dict[str, str] | None = None
    bins: list[float] | None = None
    labels: list[str] | None = None

    @model_validator(mode="after")
    def _one_derivation(self) -> SensitiveSpec:
        if self.map is not None and self.bins is not None:
            raise ValueError("use either `map` or `bins`, not both")
        if self.bins is not None:
            if self.bins != sorted(set(self.bins)):
                raise ValueError(f"`bins` must be strictly increasing, got {self.bins}")
            if self.labels is None or len(self.labels) != len(self.bins) + 1:
                raise ValueError(
                    f"`labels` needs len(bins)+1 = {len(self.bins) + 1} entries, got "
                    f"{0 if self.labels is None else len(self.labels)}"
                )
        elif self.labels is not None:
            raise ValueError("`labels` is only allowed together with `bins`")
        return self

    def groups(self, columns: dict[str, ColumnSpec]) -> list[str]:
        """The attribute's possible values, in a fixed order (used for categorical dtypes)."""
        if self.bins is not None:
            return list(self.labels or [])
        if self.map is not None:
            return list(dict.fromkeys(self.map.values()))
        return list(columns[self.column].categories or [])


def _canonical(value: object) -> object:
    """YAML's 1 / true as the label text the data is read into ("1", "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


def _target_as_category(raw: dict) -> dict:
    """An `int` or `bool` target (and a category target written with numbers) as the string
    category every later stage works with; other mistakes are left for the validators."""
    target, columns = raw.get("target"), raw.get("columns")
    if not isinstance(target, dict) or not isinstance(columns, dict):
        return raw
    col = columns.get(target.get("column"))
    if not isinstance(col, dict):
        return raw
    col = dict(col)
    kind = col.get("type")
    if kind == "bool":
        spellings = {s: "true" for s in TRUE_SPELLINGS} | {s: "false" for s in FALSE_SPELLINGS}
        spellings |= {k.upper(): v for k, v in spellings.items()}
        spellings |= {k.capitalize(): v for k, v in spellings.items()}
        col.update(type="category", categories=["false", "true"],
                   replace={**spellings, **col.get("replace", {})})
    elif kind == "int":
        lo, hi = col.get("min"), col.get("max")
        if not isinstance(lo, int) or not isinstance(hi, int) or not (
                0 < hi - lo < MAX_INT_TARGET_VALUES):
            raise ValueError(
                f"columns.{target['column']}: an int target needs whole-number `min` and `max` "
                f"spanning 2 to {MAX_INT_TARGET_VALUES} values (its labels), got min {lo}, "
                f"max {hi}")
        col.pop("min"), col.pop("max")
        col.update(type="category", categories=[str(v) for v in range(lo, hi + 1)])
    elif kind == "category" and isinstance(col.get("categories"), list):
        col["categories"] = [_canonical(c) for c in col["categories"]]
    return {**raw, "columns": {**columns, target["column"]: col},
            "target": {**target, "positive": _canonical(target.get("positive"))}}


class DatasetSpec(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    source: SourceSpec
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    # Filled from `columns: {NAME: ignore}`: present in the file, never read or kept.
    ignored: list[str] = []
    # Every column of the file in order, ignored ones included (a headerless file's layout).
    file_columns: list[str] = []
    target: TargetSpec
    features: list[str] = Field(min_length=1)
    sensitive: dict[str, SensitiveSpec] = Field(min_length=1)
    sensitive_as_features: bool = False

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
            return raw
        cols = raw["columns"]
        ignored = [k for k, v in cols.items() if v == IGNORE]
        if ignored or not raw.get("file_columns"):
            raw = {**raw, "columns": {k: v for k, v in cols.items() if v != IGNORE},
                   "ignored": ignored, "file_columns": list(cols)}
        used = [("target.column", (raw.get("target") or {}).get("column")
                 if isinstance(raw.get("target"), dict) else None)]
        used += [("features", f) for f in raw.get("features") or [] if isinstance(f, str)]
        sens = raw.get("sensitive")
        used += [(f"sensitive.{k}.column", v.get("column")) for k, v in (
            sens.items() if isinstance(sens, dict) else ()) if isinstance(v, dict)]
        for where, name in used:
            if name in ignored:
                raise ValueError(
                    f"{where}: '{name}' is declared `ignore` (never read); give it a type "
                    "instead")
        return _target_as_category(raw)

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("`features` has duplicates")
        return v

    @model_validator(mode="after")
    def _columns_exist(self) -> DatasetSpec:
        names = ", ".join(self.columns)
        if self.source.names is not None and sorted(self.source.names) != sorted(
                self.file_columns):
            raise ValueError(
                "source.names: must name exactly the declared columns (ignored ones included); "
                f"differs by {sorted(set(self.source.names) ^ set(self.file_columns))}")
        self._check_target(names)
        self._check_features(names)
        for name, s in self.sensitive.items():
            self._check_sensitive(name, s, names)
        return self

    def _check_target(self, names: str) -> None:
        target = self.columns.get(self.target.column)
        if target is None:
            raise ValueError(f"target.column: '{self.target.column}' is not a column ({names})")
        if target.type != "category":
            raise ValueError(f"target.column: '{self.target.column}' is {target.type}; a target "
                             "is a category, int or bool column")
        if self.target.positive not in (target.categories or []):
            raise ValueError(
                f"target.positive: '{self.target.positive}' is not one of the target's "
                f"categories {target.categories}"
            )
        if target.missing != "error":
            raise ValueError(
                f"columns.{self.target.column}.missing: the target must have missing: error"
            )

    def _check_features(self, names: str) -> None:
        cols = self.columns
        for f in self.features:
            if f not in cols:
                raise ValueError(f"features: '{f}' is not a column ({names})")
            if f == self.target.column:
                raise ValueError(f"features: the target '{f}' cannot be a feature")
            if cols[f].pii is not None:
                raise ValueError(f"features: '{f}' is a PII column (pii: {cols[f].pii})")
            if cols[f].type == "date":
                raise ValueError(
                    f"features: '{f}' is a date, which is not a model input; derive a number "
                    "from it in the data, or leave it out of `features`")
            if cols[f].type == "string" and cols[f].text is None:
                raise ValueError(
                    f"features: '{f}' is free text (type string) with no encoder; declare "
                    f"`columns.{f}.text: {{encoder: tfidf, max_features: 100}}` (or hashing), "
                    "or leave it out of `features`")

    def _check_sensitive(self, name: str, s: SensitiveSpec, names: str) -> None:
        cols = self.columns
        src = cols.get(s.column)
        if src is None:
            raise ValueError(f"sensitive.{name}.column: '{s.column}' is not a column ({names})")
        if src.missing != "error":
            raise ValueError(
                f"sensitive.{name}: source column '{s.column}' must have missing: error "
                "(a sensitive attribute may not be missing)"
            )
        if src.pii is not None:
            raise ValueError(f"sensitive.{name}: source column '{s.column}' is PII")
        if s.bins is not None and src.type not in ("int", "float"):
            raise ValueError(f"sensitive.{name}.bins: needs a numeric column")
        if s.map is not None:
            unmapped = [c for c in (src.categories or []) if c not in s.map]
            if src.type != "category" or unmapped:
                raise ValueError(
                    f"sensitive.{name}.map: must map every category of '{s.column}'; "
                    f"missing: {unmapped}"
                )
        if s.bins is None and s.map is None and src.type != "category":
            raise ValueError(
                f"sensitive.{name}: column '{s.column}' is {src.type}; use `bins` or `map`"
            )
        if name in cols and (name != s.column or s.map is not None or s.bins is not None):
            raise ValueError(
                f"sensitive.{name}: the name clashes with column '{name}'; pick another name"
            )

    @property
    def model_features(self) -> list[str]:
        """Columns the model sees: the declared features, minus sensitive sources unless allowed."""
        if self.sensitive_as_features:
            return list(self.features)
        sources = {s.column for s in self.sensitive.values()}
        return [f for f in self.features if f not in sources]
