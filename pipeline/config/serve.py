"""Serve section (conf/serve/): the HTTP service's settings. Extended by the serve package."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pipeline.config.base import Section


class ServeSpec(Section):
    name: str
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    threshold: float = Field(ge=0, le=1)
    source: dict[str, Any] = Field(description="model source: `_target_` + its arguments")
