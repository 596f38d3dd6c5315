"""Where a server gets its model: one small interface, several sources.

    source = build_source({"_target_": "pipeline.loaders.LocalFileSource", "path": "..."})
    version = source.resolve()   # cheap: which version is current now (polled on a TTL)
    loaded = source.load()       # expensive: the model itself, with its version and metadata

A further source (a SageMaker endpoint, a plain HTTP model server, …) is any class with these
two methods, named by `_target_` in config; callers never change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pipeline.audit.attestation import AttestationError, examine
from pipeline.audit.keys import public_key as load_public_key
from pipeline.model import load
from pipeline.runtime.errors import ConfigError, ModelRefused
from pipeline.runtime.hashing import file_sha256
from pipeline.runtime.targets import instantiate_target
from pipeline.tracking import attestations
from pipeline.tracking.client import ARTIFACT_SHA_TAG, Registry, servable


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # GovernedModel, or anything with input_columns / score(X)
    name: str
    version: str
    uri: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class ModelSource(Protocol):
    def resolve(self) -> str:
        """The version that `load` would return now; raises if the source is unreachable."""

    def load(self) -> LoadedModel:
        """Load the current version."""


class LocalFileSource:
    """A model artefact on disk (e.g. `artifacts/model.pkl`); its version is its sha256 prefix."""

    def __init__(self, path: str, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem

    def resolve(self) -> str:
        if not self.path.is_file():
            raise FileNotFoundError(f"model file {self.path} not found")
        return file_sha256(self.path)[:12]

    def load(self) -> LoadedModel:
        digest = file_sha256(self.path)
        model = load(self.path, expected_sha256=digest)
        return LoadedModel(model=model, name=self.name, version=digest[:12],
                           uri=f"file://{self.path.resolve()}",
                           metadata={"model_sha256": digest})


def build_source(cfg: Mapping[str, Any]) -> ModelSource:
    """Instantiate `cfg["_target_"]` with the other keys as keyword arguments."""

    source = instantiate_target(cfg, "model source")
    if not isinstance(source, ModelSource):
        raise ConfigError(f"model source {cfg['_target_']}: needs `resolve()` and `load()` "
                          "methods")
    return source


class MlflowRegistrySource:
    """`models:/NAME@ALIAS` from an MLflow registry; the version is the alias's target.

    The alias alone is not trusted (anyone with write access to the registry can move it):
    `load()` refuses, with ModelRefused and before anything is unpickled, a version whose tags
    are not VALIDATED and promoted (by the register stage or a person), or whose downloaded
    files differ from the `artifact_sha256` recorded at registration. With `public_key` (an
    Ed25519 PEM file) it also refuses a version without a statement signed by that key whose
    subject is the downloaded artefact and which says VALIDATED and eligible (tags can be
    edited; a signature cannot be forged without the private key)."""

    def __init__(self, tracking_uri: str, model_name: str, alias: str = "champion",
                 retries: int = 1, backoff_seconds: float = 0.5,
                 timeout_seconds: float = 5, public_key: str | None = None,
                 public_key_env: str | None = None) -> None:
        self.model_name, self.alias = model_name, alias
        # Read once, at startup: a missing or wrong key stops the server before it serves.
        where = "serve source public_key"
        if not public_key and public_key_env and os.environ.get(public_key_env):
            public_key, where = os.environ[public_key_env], public_key_env
        self.public_key = load_public_key(public_key, where) if public_key else None
        self.registry = Registry(tracking_uri, retries=retries, backoff=backoff_seconds,
                                 timeout=timeout_seconds)

    def close(self) -> None:
        """Release cached store connections (the server calls this before rebuilding)."""
        self.registry.close()

    def resolve(self) -> str:
        return self.registry.champion(self.model_name, self.alias)["version"]

    def load(self) -> LoadedModel:
        info = self.registry.champion(self.model_name, self.alias)
        what = f"version {info['version']} of '{self.model_name}' (@{self.alias})"
        problems = servable(info["tags"])
        if problems:
            raise ModelRefused(f"{what} is not served: {'; '.join(problems)}")
        recorded = info["tags"][ARTIFACT_SHA_TAG]
        if self.public_key is not None:
            # The statement must name the recorded digest; load_verified then checks that the
            # downloaded files hash to it, so the signature covers the bytes unpickled.
            _, problems = examine(self._envelope(info, what), self.public_key,
                                  name=self.model_name, version=info["version"],
                                  artifact_sha256=recorded, served=True)
            if problems:
                raise ModelRefused(f"{what} is not served: its attestation does not verify: "
                                   f"{'; '.join(problems)}")
        # The resolved version, not the alias: the alias may move in between.
        model = self.registry.load_verified(info["uri"], recorded, f"{what} is not served")
        return LoadedModel(model=model, name=self.model_name, version=str(info["version"]),
                           uri=info["uri"], metadata=info["tags"])

    def _envelope(self, info: dict, what: str) -> dict | None:
        """The version's attestation when a public key is configured (None otherwise)."""

        if self.public_key is None:
            return None
        try:
            return attestations.fetch(self.registry, self.model_name, info["version"])
        except AttestationError as e:
            raise ModelRefused(f"{what} is not served: {e}") from None
