"""Registry section (conf/registry/): where models are tracked and registered, and how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.evaluation.names import PERFORMANCE_METRICS


class FairnessLimit(Section):
    """A candidate may not be less fair than the champion by more than `max_regression`."""

    metric: str = Field(description="a fairness metric the metrics stage produces")
    attributes: list[str] | Literal["all"] = "all"
    max_regression: float = Field(ge=0, le=1)


class PromotionSpec(Section):
    """Champion/challenger: when a VALIDATED candidate replaces the champion.

    Semantics of MLflow's `MetricThreshold(min_absolute_change, min_relative_change,
    greater_is_better)`: with greater_is_better, the candidate needs
    value >= champion + min_absolute_change and value >= champion + min_relative_change *
    |champion| (each only when set); with neither set it needs value > champion. Both figures
    come from the same evaluation data (the champion is re-scored on the candidate's split)."""

    metric: str = "bal_acc"
    greater_is_better: bool = True
    min_absolute_change: float | None = Field(default=None, gt=0)
    min_relative_change: float | None = Field(default=None, gt=0, le=1)
    fairness: list[FairnessLimit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_metric(self) -> PromotionSpec:
        if self.metric not in PERFORMANCE_METRICS:
            raise ValueError(f"metric: '{self.metric}' is not produced by the metrics stage "
                             f"(expected one of: {', '.join(PERFORMANCE_METRICS)})")
        if PERFORMANCE_METRICS[self.metric] != self.greater_is_better:
            raise ValueError(f"greater_is_better: {self.metric} is better when "
                             f"{'higher' if PERFORMANCE_METRICS[self.metric] else 'lower'}, "
                             f"so greater_is_better must be "
                             f"{str(PERFORMANCE_METRICS[self.metric]).lower()}")
        return self


class RegistrySpec(Section):
    name: str
    tracking_uri: str = Field(
        description="sqlite:///mlflow.db (relative to the repo root) or http(s)://host:port; "
                    "credentials only from the environment (MLFLOW_TRACKING_USERNAME/PASSWORD "
                    "or MLFLOW_TRACKING_TOKEN), never here"
    )
    artifact_location: str | None = Field(
        default=None, description="embedded store only: folder for run artefacts (repo-relative)"
    )
    experiment: str = Field(min_length=1)
    model_name: str = Field(min_length=1)
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    allow_dirty: bool = False
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    timeout_seconds: float = Field(default=10, gt=0, le=600)
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)

    @model_validator(mode="after")
    def _distinct_aliases(self) -> RegistrySpec:
        # One name for both would let "not promoted" move the champion (a REJECTED model
        # registered as challenger=champion).
        if self.champion_alias == self.challenger_alias:
            raise ValueError(f"challenger_alias: must differ from champion_alias "
                             f"('{self.champion_alias}')")
        return self
