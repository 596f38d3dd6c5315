"""A further model source for the loader abstraction, written as a real class (no MLflow):
a folder of model files with a `current.json` naming the live one — what a plain HTTP model
server or a bucket with a pointer file looks like. Loaded only through `_target_`."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.loaders import LoadedModel


class PointerFileSource:
    def __init__(self, folder: str, name: str = "pointer") -> None:
        self.folder, self.name = Path(folder), name

    def _current(self) -> dict:
        return json.loads((self.folder / "current.json").read_text())

    def resolve(self) -> str:
        return str(self._current()["version"])

    def load(self) -> LoadedModel:
        from pipeline.model import load

        cur = self._current()
        model = load(self.folder / cur["file"], expected_sha256=cur.get("sha256"))
        return LoadedModel(model=model, name=self.name, version=str(cur["version"]),
                           uri=(self.folder / cur["file"]).as_uri(),
                           metadata={"source": "pointer-file"})
