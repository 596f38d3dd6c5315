"""Run a stage function in one of two modes.

    python -m pipeline.<stage> --dvc            # what dvc.yaml runs
    python -m pipeline.<stage> [OVERRIDES] [-m] # standalone Hydra app, sweeps included

Under `--dvc` the stage reads `params.yaml` (the composition DVC tracks) and writes the tracked
output paths. Standalone, Hydra composes `conf/` with the overrides and the stage writes the
same relative paths under Hydra's run directory (`outputs/…` or `multirun/…`), so experiments
never touch DVC-tracked outputs. Inputs are read from the repo (tracked outputs of earlier
stages) unless `+inputs=DIR` points at an earlier standalone run. A finished job leaves a stamp
of its config beside its outputs, so rerunning a sweep with its `hydra.sweep.dir` and
`+resume=true` runs only the jobs that did not finish (runtime/sweeps.py).

Either way the whole config is validated before the stage does any work, and the stage sees
only the keys it declares in `PARAMS` — the same list `dvc.yaml` gives DVC (a test checks), or,
for a stage with `PARAMS_FILE = True`, the sections it reads from params.yaml, which dvc.yaml
then tracks as one file dep.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import validate
from pipeline.config.load import load_yaml
from pipeline.privacy import Scrubber, install_log_scrubbing
from pipeline.runtime import logs, sweeps
from pipeline.runtime.errors import ConfigError, DataError, PipelineError
from pipeline.runtime.outputs import Outputs

log = logging.getLogger("pipeline")

DVC_FLAG = "--dvc"
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EXIT_USER_ERROR = 2


class ParamsView:
    """The validated config, restricted to the keys a stage declared: `split` allows the whole
    section, `data.target` that key and everything below it (DVC's dotted-key params, so a
    change elsewhere in `data` does not rerun the stage).

    A property or method of a config model (e.g. `DatasetSpec.model_features`) runs against
    the view itself, so the keys it reads must be declared too. Reading an undeclared key is
    a bug in the stage, not a user error: AttributeError with the stage and the dotted key.
    """

    def __init__(self, cfg: Any, allowed: tuple[str, ...], stage: str, prefix: str = "") -> None:
        self._cfg, self._allowed, self._stage, self._prefix = cfg, allowed, stage, prefix

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        dotted = f"{self._prefix}{key}"
        if dotted in self._allowed:
            return getattr(self._cfg, key)
        member = inspect.getattr_static(type(self._cfg), key, None)
        if key not in getattr(type(self._cfg), "model_fields", {}) and member is not None:
            if isinstance(member, property):
                return member.fget(self)
            if inspect.isfunction(member):
                return types.MethodType(member, self)
        if any(a.startswith(f"{dotted}.") for a in self._allowed):
            return ParamsView(getattr(self._cfg, key), self._allowed, self._stage, f"{dotted}.")
        raise AttributeError(
            f"stage '{self._stage}' reads params '{dotted}' without declaring it; add it to "
            "the stage's PARAMS and to its `params:` in dvc.yaml"
        )


@dataclass(frozen=True)
class Context:
    params: ParamsView
    inputs: Path | None  # standalone `+inputs=DIR`: looked in first
    outputs: Outputs

    def input(self, rel: str | Path) -> Path:
        """An earlier stage's output: from `+inputs=DIR` if it has it, else from the repo."""
        if self.inputs is not None and (self.inputs / rel).exists():
            return self.inputs / rel
        return Path.cwd() / rel

    def require(self, rel: str | Path, producer: str, note: str = "") -> Path:
        """`input(rel)`, or a DataError naming it and the stage that writes it."""
        path = self.input(rel)
        if not path.exists():
            raise DataError(f"{path}: not found; run the {producer} stage first{note}")
        return path


StageFn = Callable[[Context], None]


def _execute(name: str, params: tuple[str, ...], outs: tuple[str, ...], fn: StageFn, raw: Any,
             inputs: Path | None, out_root: Path) -> None:
    cfg = validate(raw, check_estimator=any(p.split(".")[0] == "model" for p in params))

    install_log_scrubbing(Scrubber.from_config(cfg.privacy))  # custom rules and plug-ins too
    outputs = Outputs(out_root)
    ctx = Context(ParamsView(cfg, params, name), inputs, outputs)
    written = outputs.run(lambda: fn(ctx), expected=[out_root / o for o in outs])
    for p in written:
        log.info("wrote %s", _show(p))


def compose(overrides: list[str], job_name: str) -> dict[str, Any]:
    """conf/ composed with Hydra overrides, as a plain mapping (no run directory, no chdir):
    for long-running or report tools (the server, the monitor) that are not stages."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=job_name):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    raw = OmegaConf.to_container(cfg, resolve=True)
    raw.pop("hydra", None)
    return raw


def _show(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _load_params(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"{path} is missing; run `make params` (or `dvc exp run -S ...`)")
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping at the top level")
    return raw


def _run_dvc(name: str, params: tuple[str, ...], outs: tuple[str, ...], fn: StageFn,
             extra: list[str]) -> None:
    if extra:
        raise ConfigError(
            f"under {DVC_FLAG} the stage reads params.yaml only; got extra arguments {extra}. "
            "Use `dvc exp run -S KEY=VALUE` or run the stage standalone without --dvc."
        )
    root = Path.cwd()
    _execute(name, params, outs, fn, _load_params(root / "params.yaml"), None, root)


def _run_hydra(name: str, params: tuple[str, ...], outs: tuple[str, ...], fn: StageFn) -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def task(cfg: Any) -> None:
        out_dir = Path(HydraConfig.get().runtime.output_dir)
        logs.setup(logfile=out_dir / f"{name}.log")
        raw = OmegaConf.to_container(cfg, resolve=True)
        inputs = raw.pop("inputs", None)
        inputs = Path(inputs) if inputs else None
        try:
            resume = sweeps.resume_flag(raw.pop("resume", None))
            digest = sweeps.job_digest(raw, inputs)
            if resume and sweeps.finished(out_dir, name, outs, digest):
                log.info("%s: %s already finished with this config; skipped (+resume)", name,
                         _show(out_dir))
                return
            _execute(name, params, outs, fn, raw, inputs, out_dir)
        except PipelineError as e:
            log.error("%s failed: %s", name, e)
            sys.exit(EXIT_USER_ERROR)
        sweeps.mark_finished(out_dir, name, digest)

    sys.argv.append(f"hydra.job.name={name}")
    # conf/hydra/launcher/ray.yaml shadows the Ray plugin's schema of the same name on purpose
    # (it names its own `_target_`); Hydra warns about every such file, four times a run.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/\w+' is validated against",
                            category=UserWarning)
    task()


def main(name: str, params: tuple[str, ...], outs: tuple[str, ...], fn: StageFn) -> None:
    """Entry point of every stage module: `outs` are the files it must write, no more."""
    args = sys.argv[1:]
    if DVC_FLAG in args:
        logs.setup()
        try:
            _run_dvc(name, params, outs, fn, [a for a in args if a != DVC_FLAG])
        except PipelineError as e:
            log.error("%s failed: %s", name, e)
            sys.exit(EXIT_USER_ERROR)
    else:
        _run_hydra(name, params, outs, fn)
