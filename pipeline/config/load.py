"""Turn a raw mapping into a validated `Config`, with errors a person can act on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.root import Config
from pipeline.runtime.errors import ConfigError

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


def validate(raw: Mapping[str, Any], check_estimator: bool = True) -> Config:
    """The composed config as `Config`, or a ConfigError naming every bad key.

    `check_estimator=False` leaves out scikit-learn's own check of the `model` arguments
    (config/model.py): importing its constraint tables costs about 1 s per process, which the
    stages that never build the model (ingest, split, ...) need not pay. The stages that read
    `model` check it, and so does every compose of conf/ (`make run`, `dvc exp run`)."""
    try:
        return Config.model_validate(dict(raw), context={"check_estimator": check_estimator})
    except ValidationError as err:
        raise ConfigError(describe(err)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping. PyYAML keeps the last one
    silently, so a duplicated key in params.yaml would drop a setting without a word; Hydra's
    loader refuses duplicates in conf/, and params.yaml is read the same way."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if (key.tag, key.value) in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key.value}", key.start_mark)
            seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep=deep)


def yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's error in one line: 'FILE, line N: what is wrong' (its marks know where)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    what = getattr(e, "problem", None)
    if mark is None or what is None:
        return str(e)
    return f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}: {what}"


def load_yaml(path: Path) -> Any:
    """A YAML file, or a ConfigError naming the file, line and problem."""
    try:
        with path.open("rb") as fh:  # bytes: PyYAML reports a bad encoding as a YAMLError
            return yaml.load(fh, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {yaml_problem(e)}") from None
