"""The governance policy: what a model must be judged under to become the champion.

The policy is the part of the config that decides *whether* a model may be promoted, as
opposed to *which* model is built: the gates and their enforcement (the whole `governance`
section), the metrics settings that decide which groups the gates see, and the registry names
the server resolves. It is whatever is committed in `conf/` for the dataset: an experiment
(`dvc exp run -S …`, a standalone override) that changes any of it can still be registered,
but at most as a challenger, tagged with what it overrode. A policy change is a commit, visible
in history and review, never a command-line flag.

    committed = policy.committed(root, data="adult", registry="embedded")
    overridden = policy.overrides(policy.of(cfg), committed)   # ["governance.fairness", …]
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from pipeline.config import validate
from pipeline.runtime.errors import ConfigError

# Dotted keys of the composed config that form the policy.
KEYS = (
    # What the favourable outcome is and whom fairness is measured for are policy too: an
    # experiment that redefines either (`-S data.target.positive=…`, `-S data.sensitive…`)
    # is judged against its own meaning of "fair", so it may be challenger at most.
    "data.target",
    "data.sensitive",
    "governance",
    "metrics.min_count",
    "metrics.min_share",
    "metrics.intersections",
    "metrics.extra_fairness_metrics",
    "registry.model_name",
    "registry.champion_alias",
    "registry.challenger_alias",
    "registry.promotion",
)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def of(config: dict[str, Any]) -> dict[str, Any]:
    """The policy part of a composed config (a plain mapping, e.g. `Config.model_dump()`)."""
    return {k: _get(config, k) for k in KEYS}


def overrides(effective: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """The policy keys (at the finest level that differs) where `effective` departs."""
    out: list[str] = []

    def walk(a: Any, b: Any, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{where}.{k}")
        elif a != b:
            out.append(where)

    for k in KEYS:
        walk(effective.get(k), committed.get(k), k)
    return out


def committed(root: Path, data: str, registry: str) -> dict[str, Any]:
    """The policy composed from `conf/` as committed at HEAD (not the working tree), for the
    dataset and registry groups named. ConfigError if there is no commit or no such group."""
    proc = subprocess.run(["git", "archive", "--format=tar", "HEAD", "conf"], cwd=root,
                          capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise ConfigError("no committed conf/ to take the governance policy from (git archive "
                          f"HEAD conf: {proc.stderr.decode(errors='replace').strip()[:200]})")
    with tempfile.TemporaryDirectory(prefix="govpipe-policy-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        raw = _compose(Path(tmp) / "conf", [f"data={data}", f"registry={registry}"])

    cfg = validate(raw)
    if cfg.data.name != data:
        raise ConfigError(f"committed conf/data/{data}.yaml declares dataset "
                          f"'{cfg.data.name}': the file name and `name` must agree")
    return of(cfg.model_dump(mode="json"))


def _compose(conf_dir: Path, overrides_: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    # A standalone stage runs inside Hydra, whose global state refuses a second initialisation:
    # step aside for this composition and put the running one back afterwards.
    running = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3"):
            cfg = compose("config", overrides=overrides_)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"committed conf/ does not compose with {overrides_}: "
                          f"{str(e).splitlines()[0]}") from None
    finally:
        GlobalHydra.instance().hydra = running
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    return raw
