"""Dataset spec: everything ingest, split and the server need to know about one dataset.

Bringing a new dataset means writing one `conf/data/<name>.yaml` that validates against
`DatasetSpec`; no code changes.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section

ColumnType = Literal["int", "float", "category", "string", "date"]
PiiPolicy = Literal["drop", "hash", "year"]


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
    provenance: str | None = None
    licence: str | None = None


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
    description: str | None = None

    @model_validator(mode="after")
    def _rules_fit_type(self) -> ColumnSpec:
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


class DatasetSpec(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    source: SourceSpec
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    target: TargetSpec
    features: list[str] = Field(min_length=1)
    sensitive: dict[str, SensitiveSpec] = Field(min_length=1)
    sensitive_as_features: bool = False

    @field_validator("features")
    @classmethod
    def _unique_features(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("`features` has duplicates")
        return v

    @model_validator(mode="after")
    def _columns_exist(self) -> DatasetSpec:
        names = ", ".join(self.columns)
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
            raise ValueError(f"target.column: '{self.target.column}' must have type category")
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
