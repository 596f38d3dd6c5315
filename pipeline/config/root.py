"""The composed config (`params.yaml`), validated as a whole before a stage does any work."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.config.dataset import DatasetSpec
from pipeline.config.model import MetricsSpec, MitigationSpec, ModelSpec
from pipeline.config.serve import ServeSpec
from pipeline.config.split import SplitSpec


class Config(Section):
    seed: int = Field(ge=0, le=2**32 - 1)
    data: DatasetSpec
    split: SplitSpec
    model: ModelSpec
    mitigation: MitigationSpec
    metrics: MetricsSpec
    serve: ServeSpec

    @model_validator(mode="after")
    def _cross_section(self) -> Config:
        for attr in self.split.stratify_by:
            if attr not in self.data.sensitive:
                raise ValueError(
                    f"split.stratify_by: '{attr}' is not a sensitive attribute of dataset "
                    f"'{self.data.name}' (expected one of: {', '.join(self.data.sensitive)})"
                )
        known = ", ".join(self.data.sensitive)
        attr = getattr(self.mitigation, "attribute", None)
        if attr is not None and attr not in self.data.sensitive:
            raise ValueError(
                f"mitigation.attribute: '{attr}' is not a sensitive attribute of dataset "
                f"'{self.data.name}' (expected one of: {known})"
            )
        for i, combo in enumerate(self.metrics.crossings(list(self.data.sensitive))):
            bad = [a for a in combo if a not in self.data.sensitive]
            if bad or len(combo) < 2 or len(set(combo)) != len(combo):
                raise ValueError(
                    f"metrics.intersections.{i}: {combo} must name 2+ distinct sensitive "
                    f"attributes (expected from: {known})"
                )
        return self
