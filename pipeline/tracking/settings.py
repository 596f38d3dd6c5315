"""The registry section for the user tools (champion, promote): params.yaml, with simple dotted
overrides from the command line (`registry.tracking_uri=…`), validated like a stage's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.runtime.errors import ConfigError


def load_config(argv: list[str], path: Path = Path("params.yaml")) -> tuple[Any, list[str]]:
    """(the validated Config, the arguments that were not `key=value` overrides)."""
    from pipeline.config import validate
    from pipeline.config.load import load_yaml

    if not path.exists():
        raise ConfigError(f"{path} is missing; run `make params`")
    raw = load_yaml(path)
    rest = []
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            rest.append(arg)
            continue
        dotted, value = arg.split("=", 1)
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"override {dotted}: no such key in {path}")
            node = node[part]
        node[last] = value
    return validate(raw), rest
