"""`_target_` in config -> an object: the one way, `hydra.utils.instantiate`.

Model sources (`conf/serve/source/`), fairness plug-in metrics and PII plug-in detectors are
all named this way. Hydra's own errors carry a chained traceback hint meant for developers;
here they become a ConfigError naming what was being built and the target, so a stage exits 2
with one line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.runtime.errors import ConfigError


def instantiate_target(cfg: Mapping[str, Any], what: str, *, partial: bool = False,
                       error: type[ConfigError] = ConfigError) -> Any:
    """`cfg["_target_"]` called with the other keys as keyword arguments, or (`partial`) bound
    to them as a `functools.partial` to call later. Raises `error` (a ConfigError) naming
    `what` and the target when the target is missing, cannot be imported, or refuses the
    arguments."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    target = cfg.get("_target_")
    if not isinstance(target, str) or not target:
        raise error(f"{what}: `_target_` must be a dotted import path, got {target!r}")
    module, _, attr = target.rpartition(".")
    if not module or not attr:
        raise error(f"{what}: _target_ {target!r} is not a dotted path like 'module.callable'")
    conf = {**cfg, "_partial_": True} if partial else dict(cfg)
    try:
        # _convert_="all": the target receives plain lists and dicts, not OmegaConf nodes.
        return instantiate(conf, _convert_="all")
    except InstantiationException as exc:
        # The cause says what failed (import, arguments); Hydra's own message adds advice
        # about HYDRA_FULL_ERROR, which is for debugging Hydra, not the config.
        cause = exc.__cause__
        reason = f"{type(cause).__name__}: {cause}" if cause else str(exc)
        reason = " ".join(line.strip() for line in reason.splitlines()
                          if line.strip() and "HYDRA_FULL_ERROR" not in line)
        raise error(f"{what}: _target_ {target!r}: {reason}") from None
