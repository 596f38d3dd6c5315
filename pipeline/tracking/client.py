"""A thin wrapper over MLflow tracking and the model registry.

Everything MLflow-specific the pipeline and the server need lives here: resolving the tracking
URI (relative SQLite paths against the main repo, also from DVC's temporary experiment
workspaces), bounded retries with backoff, idempotent lookups by model sha256, aliases, and the
champion's URI/version/tags.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from pipeline.runtime.errors import ConfigError, ModelRefused, PipelineError
from pipeline.runtime.hashing import tree_sha256

log = logging.getLogger("pipeline.tracking.client")
T = TypeVar("T")
_GLOBAL_URI_LOCK = threading.Lock()  # mlflow's registry URI is process-global: see download()

SHA_TAG = "model_sha256"  # sha256 of artifacts/model.pkl, the file governance judged
# sha256 over the model directory as the artifact store holds it (MLflow re-pickles the model,
# so its bytes differ from artifacts/model.pkl): what the server verifies before unpickling.
ARTIFACT_SHA_TAG = "artifact_sha256"
# MLflow error codes that are answers, not outages: never retried.
FINAL_ERRORS = {
    "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE",
    "PERMISSION_DENIED", "UNAUTHENTICATED", "BAD_REQUEST", "INVALID_STATE", "NOT_FOUND",
}
# MLflow's SQL stores write a tag or alias as select-then-insert (`session.merge`) and report
# any SQLAlchemy error as BAD_REQUEST. Two registrations tagging the same version at once can
# both insert: PostgreSQL refuses the second (seen in tests/test_stack.py). That is a race,
# not an answer: the retry finds the row and updates it.
_UNIQUE_RACE = re.compile(r"UniqueViolation|duplicate key value violates unique constraint|"
                          r"UNIQUE constraint failed|IntegrityError|sqlalche\.me/e/\d+/gkpj")


def _final(error_code: str, message: str) -> bool:
    """Whether an MLflow error is an answer that a retry would not change."""
    if error_code == "BAD_REQUEST" and _UNIQUE_RACE.search(message or ""):
        return False
    return error_code in FINAL_ERRORS


class RegistryError(PipelineError):
    """The registry could not be reached or refused a request (after retries)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code  # MLflow's error code when the server answered


def repo_root() -> Path:
    """The main repo: DVC sets DVC_ROOT to it even inside queued experiment workspaces."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd())


def resolve_uri(uri: str, root: Path | None = None) -> str:
    """Make `sqlite:///relative.db` absolute against the repo root; leave others as they are."""
    root = root or repo_root()
    m = re.fullmatch(r"sqlite:///(?!/)(.+)", uri)
    if m:
        return f"sqlite:///{(root / m[1]).resolve()}"
    if not re.match(r"^(sqlite|https?|file|databricks|postgresql|mysql)[+:a-z]*://", uri):
        raise ConfigError(
            f"registry.tracking_uri: '{redact(uri)}' is not a tracking URI (expected "
            "sqlite:///path.db, http(s)://host:port, …)"
        )
    return uri


@contextlib.contextmanager
def store_lock(tracking_uri: str, root: Path | None = None) -> Iterator[None]:
    """Serialise registrations on this machine (DVC's queue workers included: they all resolve
    the same main repo): decide-and-move-aliases must not interleave, or two candidates of one
    sweep could each see the other missing. An embedded SQLite store is locked next to the
    database, before it is first opened (opening a new store creates its schema). A tracking
    server is locked per URI under the repo's .dvc/tmp; registrations from other machines are
    covered by `Registry.create_version_once` and the register stage re-checking the champion
    after it moved it (see pipeline.register.settle)."""
    resolved = resolve_uri(tracking_uri, root)
    m = re.fullmatch(r"sqlite:///(.+)", resolved)
    if m is not None:
        path = f"{m[1]}.lock"
    else:
        digest = hashlib.sha256(redact(resolved).encode()).hexdigest()[:16]
        path = str((root or repo_root()) / ".dvc" / "tmp" / f"govpipe-registry-{digest}.lock")

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(path, timeout=600):
            yield
    except Timeout:
        raise RegistryError(f"another registration held {path} for 10 minutes") from None


def component(message: str) -> str:
    """Which part of a tracking server's stack an error came from, in words (empty when the
    message does not say). Proxied artefact requests (`/mlflow-artifacts/`) that fail mean the
    server's artefact store refused or is down: the client only sees a 500 or a reset, the
    cause (missing bucket, unreachable S3 endpoint, refused credentials) is in the server's
    log, never in ours."""
    if "mlflow-artifacts" in message:
        return ("the tracking server's artefact store failed (an S3 bucket missing, its "
                "endpoint down or its credentials refused; the server's log names which)")
    return ""


def redact(uri: str) -> str:
    """Hide credentials embedded in a URI (user:password@host) before it is logged or stored."""
    return re.sub(r"//[^/@]+@", "//***@", uri)


def _configure_http(retries: int, backoff: float, timeout: float) -> None:
    # MLflow's own HTTP retry loop defaults to 7 retries with exponential backoff (minutes);
    # bound it by config, before mlflow reads the variables.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(math.ceil(backoff))  # int only
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(timeout))
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")


def validate_names(model_name: str, *aliases: str) -> None:
    """MLflow's own rules for model and alias names, checked before anything is written."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import (
        _validate_model_alias_name,
        _validate_model_alias_name_reserved,
        _validate_model_name,
    )

    try:
        _validate_model_name(model_name)
    except MlflowException as e:
        raise ConfigError(f"registry.model_name: '{model_name}' is invalid for MLflow "
                          f"({e.message})") from None
    for a in aliases:
        try:
            _validate_model_alias_name(a)
            _validate_model_alias_name_reserved(a)
        except MlflowException as e:
            raise ConfigError(f"registry alias '{a}' is invalid for MLflow ({e.message})") from None


ROOT_TAG = "govpipe.root"  # experiment tag: the repo root an embedded store was created in


def relocate(db: Path, root: Path) -> None:
    """Make an embedded store that was copied or moved with its repo write into the new repo.

    MLflow stores artefact locations as absolute paths (it resolves relative ones when an
    experiment is created), so a copied `mlflow.db` would keep writing into, and serving from,
    the original's `mlartifacts/`. Experiments created here record their root (`ROOT_TAG`);
    when the database now lives under another root, every stored path under the old root is
    rewritten to the new one, in one transaction. Direct SQL because MLflow has no API to
    change an experiment's artefact location; the columns are MLflow's path columns."""

    if not db.is_file():
        return
    new = str(root.resolve())
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute("SELECT value FROM experiment_tags WHERE key = ?",
                           (ROOT_TAG,)).fetchall()
    except sqlite3.DatabaseError:
        con.close()
        return  # not (yet) an MLflow schema: MLflow reports that better
    try:
        with con:
            for old in {r[0] for r in rows} - {new}:
                log.warning("embedded store moved from %s to %s: rewriting artefact paths",
                            old, new)
                for table, column in _PATH_COLUMNS:
                    con.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?) "
                                f"WHERE {column} LIKE ?", (old, new, f"%{old}/%"))
                con.execute("UPDATE experiment_tags SET value = ? WHERE key = ? AND value = ?",
                            (new, ROOT_TAG, old))
    finally:
        con.close()


_PATH_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                 ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                 ("model_versions", "source"))


def _global_tracking_uri() -> str | None:
    """The tracking URI set in this process (None if none was): what to restore afterwards,
    without making MLflow's default one explicit."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    return mlflow.get_tracking_uri() if is_tracking_uri_set() else None


class Registry:
    def __init__(self, tracking_uri: str, *, retries: int = 3, backoff: float = 1.0,
                 timeout: float = 10.0, root: Path | None = None) -> None:
        _configure_http(retries, backoff, timeout)
        self.root = root or repo_root()
        self.uri = resolve_uri(tracking_uri, self.root)
        m = re.fullmatch(r"sqlite:///(.+)", self.uri)
        if m and Path(m[1]).resolve().parent == self.root.resolve():
            relocate(Path(m[1]), self.root)
        self.retries, self.backoff = retries, backoff
        from mlflow import MlflowClient

        try:
            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        except Exception as e:  # unknown scheme, bad URI
            raise ConfigError(f"registry.tracking_uri: cannot use '{redact(self.uri)}' ({e})") \
                from None

    def close(self) -> None:
        """Drop the SQLAlchemy engines MLflow caches per database URI (class-level, shared by
        every client in the process). After an embedded store was damaged and restored in
        place, a cached engine keeps failing ("no such table"); a fresh one reads the file
        again. No-op for a tracking server."""
        if not self.uri.startswith("sqlite:"):
            return
        from mlflow.store.model_registry.sqlalchemy_store import (
            SqlAlchemyStore as RegistryStore,
        )
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

        for store in (TrackingStore, RegistryStore):
            with store._engine_map_lock:
                engine = store._engine_map.pop(self.uri, None)
            if engine is not None:
                engine.dispose()

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one registry request with bounded retries; a clear error when they run out."""
        from mlflow.exceptions import MlflowException

        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except MlflowException as e:
                if _final(e.error_code, str(e.message)):  # an answer: retrying won't change it
                    raise RegistryError(f"registry refused to {what}: {e.message}",
                                        code=e.error_code) from None
                error: Exception = e
            except (OSError, ConnectionError) as e:
                error = e
            if attempt == self.retries:
                first = str(error).splitlines()[0][:300] if str(error) else ""
                where = component(str(error))
                raise RegistryError(
                    f"could not {what} at {redact(self.uri)} after {attempt + 1} attempt(s): "
                    + (f"{where}; " if where else "") + f"{type(error).__name__}: {first}"
                ) from None
            delay = self.backoff * 2**attempt
            log.warning("registry: %s failed (%s); retrying in %.1f s", what,
                        type(error).__name__, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def create_version_once(self, model_name: str, sha: str, source: str, run_id: str,
                            tags: dict[str, str], model_id: str | None):
        """Create a version, then keep exactly one per model sha: the lowest version number
        wins and any other one just created is deleted. Under concurrent registrations every
        process ends with the same winner (each sees its own version and every earlier one)."""
        mine = self.call("register the model version", self.client.create_model_version,
                         model_name, source, run_id=run_id, tags=tags, model_id=model_id)
        winner = self.version_by_sha(model_name, sha)
        if winner is not None and str(winner.version) != str(mine.version):
            log.info("version %s duplicates version %s (same model sha256); deleting it",
                     mine.version, winner.version)
            self.call("delete a duplicate version", self.client.delete_model_version,
                      model_name, mine.version)
            return winner
        return mine

    def download(self, uri: str, dst: Path) -> Path:
        """A model (models:/NAME/VERSION) or artifact URI, downloaded into `dst`.

        MLflow resolves a models:/ URI with the process-global registry URI and ignores the one
        passed in (ModelsArtifactRepository._get_model_uri_infos, mlflow 3.x): in a process that
        never set it — a promote command, a re-registration, a second store — it read MLflow's
        default store and returned another store's version N. So it is pointed at this
        registry for the call. (Resolving the version's files ourselves would skip the
        `registered_model_meta` file MLflow adds on download, which `artifact_sha256` covers.)"""
        import mlflow
        import mlflow.artifacts

        with _GLOBAL_URI_LOCK:
            # The tracking URI too: a version whose source is a logged model (models:/m-…)
            # is resolved through the process-global tracking URI, and MLflow's default one
            # (sqlite:///mlflow.db) created an empty embedded store in the working directory
            # of every process that downloaded from a tracking server.
            previous = mlflow.get_registry_uri(), _global_tracking_uri()
            mlflow.set_registry_uri(self.uri)
            mlflow.set_tracking_uri(self.uri)
            try:
                return Path(self.call("download the model", mlflow.artifacts.download_artifacts,
                                      artifact_uri=uri, dst_path=str(dst),
                                      tracking_uri=self.uri, registry_uri=self.uri))
            finally:
                mlflow.set_registry_uri(previous[0])
                mlflow.set_tracking_uri(previous[1])

    def artifact_digest(self, uri: str) -> str:
        """`ARTIFACT_SHA_TAG` of a stored model: downloaded afresh, hashed as a tree."""

        with tempfile.TemporaryDirectory(prefix="govpipe-digest-") as tmp:
            return tree_sha256(self.download(uri, Path(tmp)))

    def load_verified(self, uri: str, expected_digest: str, what: str):
        """The model at `uri` (models:/NAME/VERSION), unpickled only if its downloaded files
        hash to `expected_digest` (ModelRefused otherwise: changed in the artifact store)."""
        import mlflow.sklearn

        with tempfile.TemporaryDirectory(prefix="govpipe-model-") as tmp:
            local = self.download(uri, Path(tmp))
            digest = tree_sha256(local)
            if digest != expected_digest:
                raise ModelRefused(
                    f"{what}: its stored files hash to {digest[:12]}…, not the "
                    f"{ARTIFACT_SHA_TAG} {expected_digest[:12]}… recorded at registration "
                    "(changed in the artifact store)")
            return self.call("load the model", mlflow.sklearn.load_model, str(local))

    def ping(self) -> None:
        self.call("reach the tracking store", self.client.search_experiments, max_results=1)

    def experiment_id(self, name: str, artifact_location: str | None) -> str:
        exp = self.call("look up the experiment", self.client.get_experiment_by_name, name)
        if exp is not None:
            return exp.experiment_id
        location = tags = None
        if artifact_location:
            location = (self.root / artifact_location).resolve().as_uri()
            tags = {ROOT_TAG: str(self.root.resolve())}  # see relocate()
        try:
            return self.call("create the experiment", self.client.create_experiment, name,
                             artifact_location=location, tags=tags)
        except RegistryError as e:
            if e.code != "RESOURCE_ALREADY_EXISTS":
                raise
        # a concurrent registration created it first
        return self.call("look up the experiment", self.client.get_experiment_by_name,
                         name).experiment_id

    def version_by_sha(self, model_name: str, sha: str):
        found = self.call("search model versions", self.client.search_model_versions,
                          f"name='{model_name}' and tags.{SHA_TAG}='{sha}'")
        return min(found, key=lambda v: int(v.version)) if found else None

    def run_by_sha(self, experiment_id: str, sha: str):
        runs = self.call("search runs", self.client.search_runs, [experiment_id],
                         f"tags.{SHA_TAG} = '{sha}'", order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def logged_model(self, run_id: str) -> tuple[str, str | None]:
        """(source URI, model id) of a run's model: MLflow 3 keeps it as a logged model."""
        run = self.call("read the run", self.client.get_run, run_id)
        outputs = getattr(run, "outputs", None)
        for out in getattr(outputs, "model_outputs", None) or []:
            return f"models:/{out.model_id}", out.model_id
        return f"runs:/{run_id}/model", None

    def alias_version(self, model_name: str, alias: str) -> str | None:
        try:
            mv = self.call("resolve an alias", self.client.get_model_version_by_alias,
                           model_name, alias)
        except RegistryError as e:
            if e.code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # no such alias (or model) yet
            raise
        return str(mv.version)

    def versions_by_alias(self, model_name: str) -> dict[str, str]:
        """{alias: version} for the registered model ({} if it does not exist yet)."""
        try:
            rm = self.call("look up the registered model", self.client.get_registered_model,
                           model_name)
        except RegistryError as e:
            if e.code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        return {a: str(v) for a, v in (rm.aliases or {}).items()}

    def champion(self, model_name: str, alias: str = "champion") -> dict[str, Any]:
        """The champion's URI, version and tags (RegistryError if there is none)."""
        mv = self.call(f"resolve {model_name}@{alias}", self.client.get_model_version_by_alias,
                       model_name, alias)
        return {"name": model_name, "alias": alias, "version": str(mv.version),
                "uri": f"models:/{model_name}/{mv.version}", "run_id": mv.run_id,
                "tags": dict(mv.tags)}


def servable(tags: dict[str, str]) -> list[str]:
    """Why a version must not be served (empty: it may). The register stage sets these tags;
    the server checks them again because anyone with write access can move an alias."""
    problems = []
    if tags.get("verdict") != "VALIDATED":
        problems.append(f"verdict is {tags.get('verdict', 'missing')!r}, not 'VALIDATED'")
    if tags.get("promoted") != "true":
        problems.append("it was never promoted by the register stage (tag promoted="
                        f"{tags.get('promoted', 'missing')!r})")
    if tags.get("policy_overrides"):
        problems.append(f"it was judged under overridden policy ({tags['policy_overrides']})")
    if not tags.get(ARTIFACT_SHA_TAG):
        problems.append(f"no {ARTIFACT_SHA_TAG} tag to verify its bytes against")
    return problems
