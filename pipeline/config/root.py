"""The composed config (`params.yaml`), validated as a whole before a stage does any work."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.base import Section
from pipeline.config.dataset import DatasetSpec
from pipeline.config.split import SplitSpec


class Config(Section):
    seed: int = Field(ge=0, le=2**32 - 1)
    data: DatasetSpec
    split: SplitSpec

    @model_validator(mode="after")
    def _cross_section(self) -> Config:
        for attr in self.split.stratify_by:
            if attr not in self.data.sensitive:
                raise ValueError(
                    f"split.stratify_by: '{attr}' is not a sensitive attribute of dataset "
                    f"'{self.data.name}' (expected one of: {', '.join(self.data.sensitive)})"
                )
        return self
