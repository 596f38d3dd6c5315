"""Governance section: the gates a model must pass, and what the model card says about it.

Enforcement has two levels:
- a criterion's `enforcement` (default: inherit): `warn` makes it advisory — a failure is
  reported but does not reject; `block` makes it hard — a failure refuses registration even
  when the global enforcement is `warn`;
- the global `enforcement` says what a REJECTED verdict means downstream: `block` (default)
  refuses registration; `warn` registers the model tagged REJECTED and never promotes it.
A privacy-scan hit always rejects and always blocks.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import Section

Enforcement = Literal["block", "warn"]

# Performance metrics the metrics stage writes, and the direction a gate may take on each.
PERFORMANCE_HIGHER_IS_BETTER = ("acc", "bal_acc", "prec", "rec", "f1", "roc_auc", "avg_prec")
PERFORMANCE_LOWER_IS_BETTER = ("log_loss", "brier")
RATIO_METRICS = ("disparate_impact_ratio",)


class Criterion(Section):
    metric: str
    min: float | None = None
    max: float | None = None
    attributes: Literal["all"] | list[str] = Field(
        default="all", description='fairness only: attributes/intersections ("sex*race")'
    )
    enforcement: Enforcement | None = None
    use_confidence_bound: bool | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Criterion:
        if (self.min is None) == (self.max is None):
            raise ValueError(f"criterion '{self.metric}': give exactly one of `min` or `max`")
        return self


class ModelCardSpec(Section):
    intended_use: str
    out_of_scope: list[str] = []
    limitations: list[str] = []
    owners: str = ""
    audit_min_share: float = Field(
        default=0.02, ge=0, lt=1,
        description="bias-audit tables exclude categories under this share (NYC LL 144: 2%)",
    )
    # Dates come from config, never the clock: the same inputs must give the same card bytes,
    # and an audit is a committed event (this section is part of the committed policy).
    audit_date: str | None = Field(
        default=None, description="the bias audit's date, YYYY-MM-DD; the next is due a year on")
    distribution_date: str | None = Field(
        default=None, description="NYC LL 144: the date the tool is first used (YYYY-MM-DD)")

    @field_validator("audit_date", "distribution_date", mode="before")
    @classmethod
    def _iso_date(cls, v: object) -> object:
        # A YAML loader may already have made a date of an unquoted 2026-12-01.
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return v.isoformat()
        if isinstance(v, str):
            try:
                parsed = dt.date.fromisoformat(v)
            except ValueError:
                parsed = None
            if parsed is None or len(v) != 10:  # fromisoformat also takes 20261201
                raise ValueError(f"'{v}' is not a date written YYYY-MM-DD")
        return v


class GovernanceSpec(Section):
    name: str
    enforcement: Enforcement = "block"
    use_confidence_bound: bool = Field(
        default=False, description="gate on the pessimistic CI bound instead of the estimate"
    )
    split: Literal["val", "test"] = "test"
    fairness: list[Criterion] = []
    performance: list[Criterion] = []
    model_card: ModelCardSpec

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> GovernanceSpec:
        for i, c in enumerate(self.fairness):
            where = f"fairness.{i}"
            if c.metric in RATIO_METRICS:
                if c.min is None or not 0 <= c.min <= 1:
                    raise ValueError(
                        f"{where}.min: {c.metric} is a ratio in [0, 1]; give `min` in [0, 1], "
                        f"got min={c.min}, max={c.max}"
                    )
            elif c.max is not None and not 0 <= c.max <= 1:
                raise ValueError(f"{where}.max: a difference of rates lies in [0, 1], "
                                 f"got {c.max}")
        for i, c in enumerate(self.performance):
            where = f"performance.{i}"
            if c.attributes != "all":
                raise ValueError(f"{where}.attributes: performance gates are overall")
            if c.metric in PERFORMANCE_HIGHER_IS_BETTER:
                if c.min is None or not 0 <= c.min <= 1:
                    raise ValueError(f"{where}.min: {c.metric} lies in [0, 1]; give `min` in "
                                     f"[0, 1], got min={c.min}, max={c.max}")
            elif c.metric in PERFORMANCE_LOWER_IS_BETTER:
                if c.max is None or c.max < 0:
                    raise ValueError(f"{where}.max: {c.metric} is a loss; give `max` >= 0, "
                                     f"got min={c.min}, max={c.max}")
            else:
                known = ", ".join(PERFORMANCE_HIGHER_IS_BETTER + PERFORMANCE_LOWER_IS_BETTER)
                raise ValueError(f"{where}.metric: '{c.metric}' is not a performance metric "
                                 f"the metrics stage writes ({known})")
        return self
