"""Model sources for the server tests: real classes with the `ModelSource` interface.

    PointerSource(pointer)      which model file is current is named in a small JSON file,
                                {"current": "a.pkl"}; rewriting the file is a new release
    PointerSource(pointer) with {"unreachable": true} in the file: resolve() and load() raise
                                ConnectionError, like a registry that cannot be reached
    PointerSource(pointer) with {"refuse": "a.pkl"} in the file: load() of that file raises
                                ModelRefused, as the registry source does for a version that
                                is not VALIDATED and promoted (the test double for issue 9)
    SlowSource(path, delay)     a model file whose score() sleeps `delay` s per record, for
                                overload and timeout tests; it raises for a record with
                                capital-gain 99999 (a model error the schema cannot catch)

The server instantiates them from config (`serve.source._target_`), in its worker processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipeline.loaders import LoadedModel, LocalFileSource
from pipeline.runtime.errors import ModelRefused


class PointerSource:
    def __init__(self, pointer: str, name: str = "test-model") -> None:
        self.pointer = Path(pointer)
        self.name = name

    def _spec(self) -> dict:
        spec = json.loads(self.pointer.read_text(encoding="utf-8"))
        if spec.get("unreachable"):
            raise ConnectionError("model registry unreachable (test)")
        return spec

    def _current(self) -> LocalFileSource:
        return LocalFileSource(str(self.pointer.parent / self._spec()["current"]),
                               name=self.name)

    def resolve(self) -> str:
        return self._current().resolve()

    def load(self) -> LoadedModel:
        spec, source = self._spec(), self._current()
        if spec.get("refuse") == spec["current"]:
            raise ModelRefused(f"version {source.resolve()} of {self.name}: "
                               "verdict=REJECTED, not promoted (test)")
        return source.load()


def point(pointer: Path, current: str | None = None, unreachable: bool = False,
          refuse: str | None = None) -> None:
    """Rewrite a pointer file atomically (the server may read it at any moment)."""
    spec = json.loads(pointer.read_text()) if pointer.exists() else {}
    if current is not None:
        spec["current"] = current
    spec["unreachable"] = unreachable
    spec["refuse"] = refuse
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec), encoding="utf-8")
    tmp.replace(pointer)


FAIL_GAIN = 99999


class SlowModel:
    """Delegates to a real model; score() first sleeps `delay` seconds per record, and fails
    for a record with capital-gain == FAIL_GAIN."""

    def __init__(self, model: Any, delay: float) -> None:
        self._model = model
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def score(self, X: Any) -> Any:
        time.sleep(self._delay * len(X))
        if (X["capital-gain"] == FAIL_GAIN).any():
            raise ValueError("model failure (test)")
        return self._model.score(X)


class SlowSource(LocalFileSource):
    def __init__(self, path: str, delay: float, name: str | None = None) -> None:
        super().__init__(path, name)
        self.delay = float(delay)

    def load(self) -> LoadedModel:
        loaded = super().load()
        return LoadedModel(model=SlowModel(loaded.model, self.delay), name=loaded.name,
                           version=loaded.version, uri=loaded.uri, metadata=loaded.metadata)


def train_models(base: Path, inputs: Path) -> dict[str, Path]:
    """Train the two small models the server tests serve, in parallel (~10 s), into `base`,
    from the split files under `inputs` (a repo where the split stage ran).

    `a`: hgb (20 rounds) + ThresholdOptimizer, needs `sex` at predict time (like the default
    model); `b`: logistic regression, no mitigator, a subset of a's inputs - so the server
    can swap from a to b without a new request schema.
    """
    import subprocess
    import sys

    from tests.conftest import ROOT, env

    runs = {
        "a": ["model.max_iter=20"],
        "b": ["model=logreg", "mitigation=none"],
    }
    procs = {}
    for name, overrides in runs.items():
        out = base / name
        procs[name] = (out, subprocess.Popen(
            [sys.executable, "-m", "pipeline.train", *overrides, f"+inputs={inputs}",
             f"hydra.run.dir={out}"],
            cwd=ROOT, env=env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    models = {}
    for name, (out, proc) in procs.items():
        log, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise AssertionError(f"training model {name} failed:\n{log}")
        models[name] = out / "artifacts" / "model.pkl"
    return models
