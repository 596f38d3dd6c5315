"""Shared fixtures: real subprocesses of the real entry points, in throwaway directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]

# Fixtures that start real processes (dvc, the stages, servers): a test using one is slow,
# whatever its own marker says, so `pytest -m "not slow"` stays a quick loop on pure logic.
PROCESS_FIXTURES = {"built", "repo", "pulled_data", "serve_models"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) or _starts_processes(item):
            item.add_marker(pytest.mark.slow)


def _starts_processes(item: pytest.Item) -> bool:
    """Whether the test, a fixture it uses or a test-module function they call reaches `run`,
    `stage` or `subprocess`: found from the code, so a new test cannot forget its marker."""
    func = getattr(item, "function", None)
    if func is None:
        return False
    infos = getattr(item, "_fixtureinfo", None)
    fixture_funcs = [d.func for defs in (infos.name2fixturedefs.values() if infos else ())
                     for d in defs if _in_tests(d.func)]
    seen: set[int] = set()
    todo = [func, *fixture_funcs]
    while todo:
        f = todo.pop()
        if id(f.__code__) in seen:
            continue
        seen.add(id(f.__code__))
        for name in _names(f.__code__):
            if name == "subprocess":
                return True
            target = f.__globals__.get(name)
            target = getattr(target, "__wrapped__", target)
            if not _in_tests(target):
                continue
            # By file and name, not identity: pytest imports this file as `conftest` and the
            # tests import it as `tests.conftest`, two module objects.
            if target.__code__.co_filename == __file__ and target.__name__ in ("run", "stage"):
                return True
            todo.append(target)
    return False


def _in_tests(obj: object) -> bool:
    code = getattr(obj, "__code__", None)
    return code is not None and Path(code.co_filename).parent == ROOT / "tests"


def _names(code) -> set[str]:
    """Global names a code object and the functions nested in it refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names
VENV_BIN = Path(sys.executable).parent

# What a clone holds, minus what the pipeline makes; used to copy the repo into a temp dir.
_TOP_LEVEL_SKIP = {
    ".git", ".venv", "outputs", "multirun", "artifacts", "reports", "metrics", "plots",
    "mlruns", "mlartifacts", "mlflow.db", ".pytest_cache", ".ruff_cache", "bench", "tests",
}


def _ignore(src: str, names: list[str]) -> set[str]:
    here = Path(src)
    skip = {n for n in names if n == "__pycache__" or ".partial-" in n}
    if here == ROOT:
        skip |= _TOP_LEVEL_SKIP & set(names)
    if here == ROOT / ".dvc":
        skip |= {"cache", "tmp"} & set(names)
    return skip


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '')}"
    e["PYTHONPATH"] = str(ROOT)
    e["DVC_NO_ANALYTICS"] = "1"
    e.update(
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid",
    )
    e.update(extra)
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600,
        **extra_env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(**extra_env), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return proc


def make(repo: Path, *args: str, check: bool = True,
         **extra_env: str) -> subprocess.CompletedProcess:
    """A Makefile target in a repo copy, with this test run's environment: `-o .venv/.synced`
    keeps make from building a virtualenv in the copy (the copy has none; PATH has ours)."""
    return run(["make", "-s", "-o", ".venv/.synced", *args], repo, check=check, **extra_env)


def wait_for_queue(repo: Path, timeout: float = 600) -> None:
    """Until `dvc queue status` shows nothing queued or running; no task may have failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run([str(VENV_BIN / "dvc"), "queue", "status"], repo).stdout
        if "Running" not in status and "Queued" not in status:
            assert "Failed" not in status, status
            return
        time.sleep(2)
    raise AssertionError(f"queue did not finish: {status}")


def stage(cwd: Path, name: str, *args: str, check: bool = False,
          **extra_env: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", f"pipeline.{name}", *args], cwd, check=check, **extra_env)


def once_per_session(factory: pytest.TempPathFactory, name: str,
                     build: Callable[[Path], object]) -> Path:
    """`build(path)` once per test session, shared by all pytest-xdist workers (each worker
    has its own base temp dir inside the session's): a file lock, then a marker when done."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    target, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)  # a half-built one from a failed try
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def pulled_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw data in the working tree (`dvc pull data.dvc` if a fresh clone lacks it)."""
    def pull(_: Path) -> None:
        if not (ROOT / "data" / "adult" / "adult.data").exists():
            run([str(VENV_BIN / "dvc"), "pull", "data.dvc"], ROOT)

    once_per_session(tmp_path_factory, "pulled", pull)
    return ROOT / "data"


def copy_repo(dest: Path) -> Path:
    """A git repo at `dest` with the project's tracked files and the pulled data."""
    shutil.copytree(ROOT, dest, ignore=_ignore, dirs_exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "copy"], dest)
    return dest


def make_fast(repo: Path, n_boot: int = 20) -> Path:
    """Fewer bootstrap replicates in a repo copy (tests about plumbing, not statistics)."""
    conf = repo / "conf" / "metrics" / "default.yaml"
    conf.write_text(conf.read_text().replace("n_boot: 200", f"n_boot: {n_boot}"))
    run([sys.executable, "-m", "pipeline.compose"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "fast metrics for tests"], repo)
    return repo


@pytest.fixture
def plugin_module_path(monkeypatch):
    """tests/ importable, and the privacy plug-in module not yet imported: the loader must
    import it."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delitem(sys.modules, "privacy_plugins", raising=False)
    yield "privacy_plugins"


@pytest.fixture
def repo(tmp_path: Path, pulled_data: Path) -> Path:
    return copy_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, pulled_data: Path) -> Path:
    """A repo copy where `dvc repro governance` ran with the default config.

    Tests that need earlier stages' outputs read them from here, never from the working tree
    they were started in: a clean clone has none, and a user's workspace may hold an applied
    experiment. Tests only read this copy (or write into their own `hydra.run.dir`).
    """
    def build(repo: Path) -> None:
        copy_repo(repo)
        run([str(VENV_BIN / "dvc"), "repro", "governance"], repo)

    return once_per_session(tmp_path_factory, "built", build)


def clone_built(built: Path, dest: Path) -> Path:
    """A private copy of the built repo (git history, DVC cache and outputs included), for
    tests that change it: `dvc repro` there starts from up-to-date stages."""
    def ignore(src: str, names: list[str]) -> set[str]:
        skip = {"__pycache__"} & set(names)
        if Path(src) == built / ".dvc":
            skip |= {"tmp"} & set(names)  # locks and state of the original's dvc processes
        return skip

    shutil.copytree(built, dest, symlinks=True, ignore=ignore)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "pipeline results"], dest)
    return dest


@pytest.fixture(scope="session")
def serve_models(tmp_path_factory: pytest.TempPathFactory, built: Path) -> dict[str, Path]:
    """The two small models the server tests serve (see tests/serve_sources.py)."""
    from tests.serve_sources import train_models

    base = once_per_session(tmp_path_factory, "serve-models",
                            lambda d: train_models(d, inputs=built))
    return {name: base / name / "artifacts" / "model.pkl" for name in ("a", "b")}


def composed(*overrides: str) -> dict:
    """The composition of conf/ with overrides, as DVC would write it."""
    import tempfile

    from dvc.utils.hydra import compose_and_dump

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "params.yaml"
        compose_and_dump(out, str(ROOT / "conf"), None, "config", str(ROOT), list(overrides))
        return yaml.safe_load(out.read_text())
