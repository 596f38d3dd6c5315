"""Sweeps beyond the basic launcher: resuming a sweep, and the Ray launcher's work.

Resume. A standalone job that finished leaves a stamp next to its outputs, `.<stage>.done`,
holding the sha256 of the config it ran with (and of `+inputs`). A rerun with
`+resume=true` and the same `hydra.sweep.dir` skips every job whose stamp matches and whose
declared outputs are all there, so only the jobs that failed or never ran run again. Outputs
are committed whole or not at all (runtime/outputs.py), so a present output is a finished one.
The stamp covers config and inputs, not code: after a code change, sweep into a new directory.

Ray. `hydra/launcher=ray` (conf/hydra/launcher/ray.yaml) names
`hydra_plugins.govpipe_launchers.RayLauncher`, a thin class (Hydra instantiates launchers only
from the `hydra_plugins` package) whose `launch` is `ray_launch` here. It keeps
hydra-ray-launcher's config keys (`ray.init`, `ray.remote`) and differs from its launch in four
ways, each a failure seen with hydra-ray-launcher 1.2.2 and Ray 2.60:
  * every job is awaited and its result kept: the stock launcher stops at the first failed job,
    and the driver's exit then kills the jobs still running;
  * a stage's own exit (status 2 after a logged user error) is a failed job, not a crashed
    worker that Ray retries three times and reports with a traceback;
  * a job runs in the driver's working directory (relative sweep dirs and repo inputs mean the
    same files everywhere; workers otherwise start wherever their raylet did), so the repo must
    be on a file system every node shares, as under SLURM;
  * no `object_store_memory` is injected (the stock launcher's CI default makes `ray.init`
    refuse to join a running cluster); `null` values are left out of `ray.init`.
A local Ray (`address: null`) listens on 127.0.0.1 only: it is this sweep's alone (and a
driver joining a cluster at a 127.x address uses loopback too).

Hydra and Ray are imported inside the functions that use them (tests/test_layout.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.runtime import logs
from pipeline.runtime.errors import ConfigError

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn

log = logging.getLogger("pipeline.sweeps")

EXIT_USER_ERROR = 2
# Ray reads this once, at import: false makes a local node use the loopback address.
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


# --- resume -----------------------------------------------------------------------------------

def stamp_path(out_dir: Path, stage: str) -> Path:
    return out_dir / f".{stage}.done"


def job_digest(raw: dict[str, Any], inputs: Path | None) -> str:
    """sha256 of what a job's results depend on besides code: its config and its inputs."""
    body = json.dumps({"config": raw, "inputs": str(inputs.resolve()) if inputs else None},
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def resume_flag(value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"resume: expected true or false, got {value!r}")
    return value


def finished(out_dir: Path, stage: str, outs: Sequence[str], digest: str) -> bool:
    """Whether this job already ran to the end with this config and these inputs."""
    stamp = stamp_path(out_dir, stage)
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8")).get("config_sha256")
    except (OSError, ValueError, AttributeError):
        return False
    return recorded == digest and all((out_dir / o).exists() for o in outs)


def mark_finished(out_dir: Path, stage: str, digest: str) -> None:
    """Write the stamp atomically, after the outputs are in place."""
    stamp = stamp_path(out_dir, stage)
    tmp = stamp.with_name(f"{stamp.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"stage": stage, "config_sha256": digest}) + "\n",
                   encoding="utf-8")
    os.replace(tmp, stamp)


# --- Ray --------------------------------------------------------------------------------------

def ray_launch(launcher: Any, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> list[JobReturn]:
    """Submit every job of the batch, wait for all, return their results (failed ones too)."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import configure_log, filter_overrides, setup_globals
    from omegaconf import OmegaConf, open_dict

    setup_globals()
    config = launcher.config
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    logs.setup()  # the driver's own messages (jobs set up their own, in their workers)
    init = {k: v for k, v in OmegaConf.to_container(launcher.ray_cfg.init, resolve=True).items()
            if v is not None}
    remote_opts = OmegaConf.to_container(launcher.ray_cfg.remote, resolve=True) or {}
    ray = _start_ray(init)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info("Ray launcher: %d jobs on %s, sweep dir %s", len(job_overrides),
             init.get("address") or "a local Ray", sweep_dir)

    job = ray.remote(**remote_opts)(_ray_job) if remote_opts else ray.remote(_ray_job)
    cwd = os.getcwd()
    submitted = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        shown = " ".join(filter_overrides(overrides))
        log.info("\t#%d : %s", idx, shown)
        sweep_config = launcher.hydra_context.config_loader.load_sweep_config(
            config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"ray_{idx}"
            sweep_config.hydra.job.num = idx
        ref = job.remote(launcher.hydra_context, sweep_config, launcher.task_function,
                         Singleton.get_state(), cwd)
        submitted.append((idx, list(overrides), shown, ref))

    results = [_result(ray, *s) for s in submitted]
    failed = [f"#{idx} ({shown})" for (idx, _, shown, _), r in zip(submitted, results, strict=True)
              if r.status.name != "COMPLETED"]
    if failed:
        log.error("Ray launcher: %d of %d jobs failed: %s. The others finished; to run only the "
                  "missing ones, rerun the same command with hydra.sweep.dir=%s +resume=true",
                  len(failed), len(results), ", ".join(failed), sweep_dir)
    else:
        log.info("Ray launcher: all %d jobs finished", len(results))
    return results


def _on_loopback(address: str | None) -> bool:
    """A local Ray, or a cluster on this machine's loopback address: the driver must use the
    loopback address too, or it waits for a raylet on the host's external address."""
    if address is None:
        return True
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    return host == "localhost" or host.startswith("127.")


def _start_ray(init: dict[str, Any]) -> Any:
    if _on_loopback(init.get("address")):
        os.environ.setdefault(RAY_LOOPBACK_ENV, "0")  # before Ray is imported: see the top
    try:
        # Heavy and optional (the `ray` extra): imported when a sweep uses it, never before.
        import ray
    except ImportError:
        log.error("hydra/launcher=ray needs Ray: `uv sync --extra ray`")
        sys.exit(EXIT_USER_ERROR)
    if not ray.is_initialized():
        try:
            ray.init(**init)
        except (ConnectionError, ValueError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            # The address only: other init arguments may hold credentials.
            log.error("Ray launcher: cannot %s: %s", f"join Ray at {init['address']}"
                      if init.get("address") else "start a local Ray", first)
            sys.exit(EXIT_USER_ERROR)
    return ray


def _result(ray: Any, idx: int, overrides: list[str], shown: str, ref: Any) -> JobReturn:
    from hydra.core.utils import JobReturn, JobStatus

    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        # The job's process died (killed, out of memory, node lost) or Ray could not run it.
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        log.error("Ray launcher: job #%d (%s) failed: %s", idx, shown, first)
        return JobReturn(overrides=overrides, status=JobStatus.FAILED,
                         _return_value=SystemExit(f"job #{idx} ({shown}) failed: {first}"))


def _ray_job(hydra_context: Any, sweep_config: Any, task_function: Any,
             singleton_state: dict[Any, Any], cwd: str) -> JobReturn:
    """One job, in a Ray worker."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals

    overrides = list(sweep_config.hydra.overrides.task)
    try:
        os.chdir(cwd)
    except OSError as e:
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=SystemExit(
            f"{cwd}: not reachable on this Ray node ({e.strerror}); the Ray launcher needs the "
            "repo on a file system every node shares"))
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    try:
        return run_job(hydra_context=hydra_context, task_function=task_function,
                       config=sweep_config, job_dir_key="hydra.sweep.dir",
                       job_subdir_key="hydra.sweep.subdir")
    except SystemExit as e:
        # The stage logged why and exited; returned, not raised, so the worker lives on and
        # Ray does not rerun a job that failed on its input.
        return JobReturn(overrides=overrides, status=JobStatus.FAILED,
                         _return_value=SystemExit(e.code))
