"""Turn a raw mapping into a validated `Config`, with errors a person can act on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from pipeline.config.root import Config
from pipeline.errors import ConfigError

_REL_PATH = re.compile(r"^([A-Za-z_][\w\-]*(?:\.[\w\-]+)*): (.*)$", re.S)


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<root>"


def describe(err: ValidationError) -> str:
    """One line per problem: key path, the bad value, what was expected."""
    lines = []
    for e in err.errors(include_url=False):
        msg = e["msg"].removeprefix("Value error, ")
        where = _path(e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown key (not in the schema; check spelling)")
        elif e["type"] == "missing":
            lines.append(f"  {where}: required key is missing")
        elif e["type"] == "value_error":
            # Cross-field rules raise "sub.path: text"; join it to where pydantic found it.
            m = _REL_PATH.match(msg)
            if m:
                where = m[1] if where == "<root>" else f"{where}.{m[1]}"
                msg = m[2]
            lines.append(f"  {where}: {msg}")
        elif e["type"] in ("model_type", "dict_type"):
            lines.append(f"  {where}: expected a mapping, got {type(e.get('input')).__name__}")
        else:
            value = repr(e.get("input"))
            if len(value) > 80:
                value = value[:77] + "..."
            lines.append(f"  {where}: got {value}; expected: {msg}")
    return "invalid config:\n" + "\n".join(lines)


def validate(raw: Mapping[str, Any]) -> Config:
    try:
        return Config.model_validate(dict(raw))
    except ValidationError as err:
        raise ConfigError(describe(err)) from None
