"""govpipe's Ray launcher for Hydra (`hydra/launcher=ray`, conf/hydra/launcher/ray.yaml).

Hydra instantiates launcher classes only from the `hydra_plugins` package, which it finds on
sys.path (the repo root, for `python -m pipeline.<stage>`); the work is in
pipeline/runtime/sweeps.py, which says how it differs from hydra-ray-launcher's own.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class RayLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        self.ray_cfg = ray
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        # Here, not at the top: Hydra imports this module in every app it starts (plugin scan).
        from pipeline.runtime import sweeps

        return sweeps.ray_launch(self, job_overrides, initial_job_idx)

    def __repr__(self) -> str:
        return f"RayLauncher({self.ray_cfg!r})"

