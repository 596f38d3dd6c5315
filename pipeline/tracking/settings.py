"""The registry section for the user tools (champion, promote): params.yaml, with simple dotted
overrides from the command line (`registry.tracking_uri=…`), validated like a stage's. A group
choice among the overrides (`data=german`, `registry=server`) composes conf/ with all of them
instead, as `dvc exp run -S` would: `make champion data=german` needs nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import validate
from pipeline.config.load import load_yaml
from pipeline.runtime.errors import ConfigError
from pipeline.runtime.runner import CONF_DIR, compose


def _compose(overrides: list[str], groups: set[str]) -> dict[str, Any]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    for o in overrides:
        group, choice = o.split("=", 1)
        if group in groups and not (CONF_DIR / group / f"{choice}.yaml").is_file():
            have = sorted(f.stem for f in (CONF_DIR / group).glob("*.yaml"))
            raise ConfigError(f"{o}: no conf/{group}/{choice}.yaml (have: {', '.join(have)})")
    try:
        return compose(overrides, job_name="settings")
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"cannot compose conf/ with {' '.join(overrides)}: {e}") from None


def load_config(argv: list[str], path: Path = Path("params.yaml")) -> tuple[Any, list[str]]:
    """(the validated Config, the arguments that were not `key=value` overrides)."""

    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    groups = {d.name for d in CONF_DIR.iterdir() if d.is_dir()}
    if any(o.split("=", 1)[0] in groups for o in overrides):
        return validate(_compose(overrides, groups)), [a for a in argv if a not in overrides]
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
