"""Registry section (conf/registry/): where models are tracked and registered, and how."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.config.base import Section


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

    @model_validator(mode="after")
    def _distinct_aliases(self) -> RegistrySpec:
        # One name for both would let "not promoted" move the champion (a REJECTED model
        # registered as challenger=champion).
        if self.champion_alias == self.challenger_alias:
            raise ValueError(f"challenger_alias: must differ from champion_alias "
                             f"('{self.champion_alias}')")
        return self
