"""The request and response models, derived from the dataset spec and the model's input columns.

Nothing here is written per dataset: a new `conf/data/<name>.yaml` gives a new schema.

    schema = RequestSchema.build(spec, input_columns, max_records=1000)
    schema.body        # pydantic type FastAPI validates the body against (and documents)
    schema.rows(body)  # validated body -> list of row tuples in `input_columns` order

A body is either one record (`{"age": 39, ...}`) or a batch (`{"records": [{...}, ...]}`); a
body with a `records` key is a batch, anything else a single record. Every record field is
required, typed strictly (no "39" for 39, no true for 1; 39.0 is 39, as in JSON Schema), range-
and category-checked, and finite (NaN/inf are refused: Python's JSON parser accepts them).
Columns that are not model
inputs - PII, the target, unused features - are unknown keys and refused (`extra="forbid"`),
except the declared sensitive attributes passed as `extra_columns` (serve.audit.
request_attributes): optional, validated like the rest, logged for monitoring, never rows.
"""

from __future__ import annotations

import datetime as dt
import keyword
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)

from pipeline.config.dataset import ColumnSpec, DatasetSpec

Row = tuple[Any, ...]


def _attr(column: str, taken: set[str]) -> str:
    """A Python identifier for a column name like `education-num` (the alias keeps the name)."""
    base = re.sub(r"\W", "_", column)
    if not base or base[0].isdigit() or keyword.iskeyword(base) or base.startswith("_"):
        base = f"f_{base}"
    name, i = base, 1
    while name in taken or name == "model_config":
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _field_type(col: ColumnSpec) -> Any:
    """The strict pydantic type of one column, bounds and categories included."""
    if col.type == "category":
        return Literal[tuple(col.categories or ())]
    if col.type == "int":
        return Annotated[int, Field(strict=True, ge=_int_bound(col.min, up=True),
                                    le=_int_bound(col.max, up=False)),
                         BeforeValidator(_integral)]
    if col.type == "float":
        # strict float still accepts JSON integers (1 -> 1.0), never strings or booleans.
        return Annotated[float, Field(strict=True, allow_inf_nan=False, ge=col.min, le=col.max)]
    if col.type == "bool":
        return Annotated[bool, Field(strict=True)]  # JSON true/false only, never 1 or "yes"
    if col.type == "string":
        return Annotated[str, Field(strict=True, max_length=1000)]
    return dt.date  # JSON has no date type: ISO strings, so not strict


def _integral(v: Any) -> Any:
    """39.0 is the integer 39 (as in JSON Schema); 39.5, "39", true, NaN stay errors."""
    if type(v) is float and v.is_integer():
        return int(v)
    return v


def _int_bound(bound: float | None, up: bool) -> int | None:
    if bound is None:
        return None
    b = int(bound)
    return b + 1 if up and b < bound else b


@dataclass(frozen=True)
class RequestSchema:
    columns: tuple[str, ...]          # model input columns, in the order the frame uses
    record: type[BaseModel]           # one record
    batch: type[BaseModel]            # {"records": [record, ...]}
    body: Any                         # record | batch, chosen by the presence of `records`
    _getter: Callable[[BaseModel], Any]
    records: Any = None               # TypeAdapter of [record, ...] (1..max_records)
    types: dict[str, str] | None = None  # column -> spec type (int, float, category, ...)
    extras: tuple[str, ...] = ()      # optional monitoring-only fields (never model inputs)
    _extra_getter: Callable[[BaseModel], Any] | None = None

    @classmethod
    def build(cls, spec: DatasetSpec, input_columns: Sequence[str],
              max_records: int, extra_columns: Sequence[str] = ()) -> RequestSchema:
        """`extra_columns`: declared sensitive attribute columns the model does not take,
        accepted as optional fields for the audit log (serve.audit.request_attributes)."""
        unknown = [c for c in input_columns if c not in spec.columns]
        if unknown:
            raise ValueError(
                f"the model needs column(s) {unknown} that dataset '{spec.name}' does not "
                "declare; serve the model with the dataset config it was trained on")
        pii = [c for c in input_columns if spec.columns[c].pii is not None]
        if pii:
            raise ValueError(f"the model needs PII column(s) {pii}; refusing to serve it")
        taken: set[str] = set()
        fields: dict[str, Any] = {}
        attrs: list[str] = []
        for c in input_columns:
            col = spec.columns[c]
            attr = _attr(c, taken)
            attrs.append(attr)
            ftype = _field_type(col)
            if col.missing == "keep":  # the model was trained with this column missing
                ftype = ftype | None
            fields[attr] = (ftype, Field(alias=c, description=col.description))
        extras = tuple(c for c in extra_columns if c not in input_columns
                       and spec.columns[c].pii is None)
        extra_attrs = []
        for c in extras:
            attr = _attr(c, taken)
            extra_attrs.append(attr)
            fields[attr] = (_field_type(spec.columns[c]) | None, Field(
                default=None, alias=c, description="optional, for monitoring only: logged "
                "in the audit log, never given to the model"))
        title = re.sub(r"\W", "", spec.name.title()) or "Dataset"
        record = create_model(
            f"{title}Record",
            __config__=ConfigDict(extra="forbid", populate_by_name=False, frozen=True),
            **fields,
        )
        batch = create_model(
            f"{title}Batch",
            __config__=ConfigDict(extra="forbid"),
            records=(list[record], Field(min_length=1, max_length=max_records)),
        )
        body = Annotated[
            Union[Annotated[record, Tag("record")], Annotated[batch, Tag("batch")]],  # noqa: UP007
            Discriminator(_which),
        ]
        getter = operator.attrgetter(*attrs)
        if len(attrs) == 1:
            getter = (lambda g: lambda r: (g(r),))(getter)
        records = TypeAdapter(Annotated[list[record],
                                        Field(min_length=1, max_length=max_records)])
        types = {c: spec.columns[c].type for c in input_columns}
        extra_getter = None
        if extra_attrs:
            g = operator.attrgetter(*extra_attrs)
            extra_getter = g if len(extra_attrs) > 1 else (lambda r: (g(r),))
        return cls(tuple(input_columns), record, batch, body, getter, records, types, extras,
                   extra_getter)

    def validate_records(self, records: Any, where: tuple = ()) -> list[Row]:
        """Records from another protocol's body -> rows, validated exactly like /predict's
        batch; errors are raised as FastAPI's, located under `where` in the caller's body."""
        from fastapi.exceptions import RequestValidationError

        try:
            valid = self.records.validate_python(records)
        except ValidationError as e:
            raise RequestValidationError(
                [{**err, "loc": ("body", *where, *err["loc"])} for err in e.errors(
                    include_input=False, include_url=False)]) from None
        get = self._getter
        return [get(r) for r in valid]

    def rows(self, body: BaseModel) -> list[Row]:
        """The validated records as row tuples: the canonical form (cache key, frame rows)."""
        get = self._getter
        if isinstance(body, self.record):
            return [get(body)]
        return [get(r) for r in body.records]


    def extra_values(self, body: BaseModel) -> list[Row] | None:
        """The monitoring-only fields of each record (None where a record sent none)."""
        get = self._extra_getter
        if get is None:
            return None
        recs = [body] if isinstance(body, self.record) else body.records
        out = [get(r) for r in recs]
        return out if any(any(v is not None for v in e) for e in out) else None


def _which(value: Any) -> str:
    if isinstance(value, dict):
        return "batch" if "records" in value else "record"
    return "batch" if hasattr(value, "records") else "record"


class ModelRef(BaseModel):
    name: str
    version: str


class Prediction(BaseModel):
    probability: float = Field(ge=0, le=1, description="P(favourable label)")
    label: str = Field(description="the label at the configured threshold, e.g. '>50K'")
    label_id: Literal[0, 1] = Field(description="1 if label is the favourable label, else 0")
    favourable: bool = Field(description="whether label is the favourable label "
                                         "(favourable_label); the same as label_id == 1")


class PredictResponse(BaseModel):
    model: ModelRef
    threshold: float
    favourable_label: str = Field(description="the target's favourable label (label_id 1)")
    favourable_means: str | None = Field(
        description="what the favourable label means, in words (data.target.favourable_means)")
    predictions: list[Prediction] = Field(description="one per record, in request order")


class ErrorItem(BaseModel):
    field: str = Field(description="where in the body, e.g. 'records[0].age'")
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ErrorItem]


class ErrorResponse(BaseModel):
    detail: str


_FORMS = ("dataframe_records", "dataframe_split", "instances", "inputs")


def field_path(loc: Sequence[Any]) -> str:
    """FastAPI/pydantic error location -> 'records[0].age' (drops 'body' and the union tag)."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    if parts and parts[0] in ("record", "batch") or (parts and parts[0] in _FORMS and
                                                      len(parts) > 1 and parts[1] == parts[0]):
        parts = parts[1:]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<body>"
