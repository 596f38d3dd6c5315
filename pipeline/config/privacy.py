"""Configuration of the detector set and how it is turned into detector objects.

Shape (a plain dict, an OmegaConf node or a :class:`PrivacyConfig`)::

    builtin: [email, phone, us_ssn, credit_card, ipv4, ipv6, iban]   # default: all
    custom:                                                           # default: none
      - {name: EMPLOYEE_ID, pattern: "EMP-\\d{6}"}
    plugins:                                                          # default: none
      - {_target_: my_pkg.detectors.NinoDetector, some_kwarg: 1}

Plug-ins are imported and instantiated with :func:`hydra.utils.instantiate`, so any
importable class or factory function works without touching this package, as long as
the result has a ``name`` (str) and a ``finditer(text)`` method.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.privacy.detectors import BUILTIN_DETECTORS, CustomRegexDetector, Detector
from pipeline.runtime.errors import ConfigError
from pipeline.runtime.targets import instantiate_target

__all__ = ["CustomRule", "PluginError", "PrivacyConfig", "build_detectors", "instantiate_plugin"]

_RULE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class CustomRule(BaseModel):
    """A named regular expression; its matches are reported and scrubbed as ``[name]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    pattern: str

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        # The name becomes the "[NAME]" placeholder: keep it a plain identifier.
        if not _RULE_NAME.match(v):
            raise ValueError(
                f"custom PII rule name {v!r} must start with a letter and contain only "
                "letters, digits and '_'"
            )
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str, info) -> str:
        name = info.data.get("name", "?")
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"custom PII rule {name!r}: invalid regex {v!r}: {exc}") from None
        return v


class PrivacyConfig(BaseModel):
    """Which detectors to run. Defaults: every built-in, no custom rule, no plug-in."""

    model_config = ConfigDict(extra="forbid")

    builtin: list[str] = Field(default_factory=lambda: list(BUILTIN_DETECTORS))
    custom: list[CustomRule] = Field(default_factory=list)
    plugins: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("builtin")
    @classmethod
    def _known_builtins(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in BUILTIN_DETECTORS]
        if unknown:
            raise ValueError(
                f"unknown built-in PII detector(s) {unknown}; valid names: "
                f"{sorted(BUILTIN_DETECTORS)}"
            )
        # Keep order, drop duplicates: running a detector twice only costs time.
        return list(dict.fromkeys(v))

    @field_validator("plugins")
    @classmethod
    def _plugins_have_target(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, entry in enumerate(v):
            if not isinstance(entry.get("_target_"), str) or not entry["_target_"]:
                raise ValueError(f"plugins[{i}] needs a '_target_' (dotted import path)")
        return v


def _to_config(cfg: Any) -> PrivacyConfig:
    if cfg is None:
        return PrivacyConfig()
    if isinstance(cfg, PrivacyConfig):
        return cfg
    try:  # OmegaConf DictConfig -> plain containers, interpolations resolved
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf ships with hydra
        pass
    if isinstance(cfg, BaseModel):
        cfg = cfg.model_dump()
    if not isinstance(cfg, Mapping):
        raise TypeError(f"privacy config must be a mapping or PrivacyConfig, got {type(cfg)!r}")
    return PrivacyConfig.model_validate(dict(cfg))


class PluginError(ConfigError, ValueError):
    """A PII plug-in cannot be built (bad ``_target_`` or arguments)."""


def instantiate_plugin(entry: Mapping[str, Any]) -> Detector:
    """Import and build one plug-in detector from ``{_target_: dotted.path, **kwargs}``."""

    target = entry.get("_target_")
    obj = instantiate_target(entry, "PII plug-in", error=PluginError)
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name or not callable(getattr(obj, "finditer", None)):
        raise TypeError(
            f"PII plug-in {target!r} returned {type(obj).__name__}, which lacks a non-empty "
            "'name' attribute and/or a 'finditer(text)' method"
        )
    return obj


def build_detectors(cfg: PrivacyConfig | Mapping[str, Any] | None = None) -> list[Detector]:
    """Detectors for ``cfg`` in a fixed order: built-ins (as listed), custom rules, plug-ins.

    That order is also the tie-break when two detectors report the very same span.
    """
    config = _to_config(cfg)
    detectors: list[Detector] = [BUILTIN_DETECTORS[n]() for n in config.builtin]
    detectors += [CustomRegexDetector(r.name, r.pattern) for r in config.custom]
    detectors += [instantiate_plugin(p) for p in config.plugins]
    return detectors
