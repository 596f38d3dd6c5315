"""Shared pydantic base: unknown keys are errors, values are not silently coerced."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section. `extra="forbid"` turns a typo in a key into an error naming it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)
