"""Split config: ratios, seed and the attributes to stratify on (besides the target)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.base import Section


class SplitSpec(Section):
    name: str
    train: float = Field(gt=0, lt=1)
    val: float = Field(ge=0, lt=1)
    test: float = Field(gt=0, lt=1)
    seed: int = Field(ge=0, le=2**32 - 1)
    stratify_by: list[str] = Field(
        default_factory=list, description="sensitive attribute names; the target is always used"
    )

    @model_validator(mode="after")
    def _ratios_sum_to_one(self) -> SplitSpec:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"train + val + test must sum to 1, got {self.train} + {self.val} + "
                f"{self.test} = {total:g}"
            )
        return self
