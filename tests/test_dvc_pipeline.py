"""Real `dvc` in a temporary git repo: caching, experiments, dvc.yaml honesty."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, VENV_BIN, clone_built, run

DVC = str(VENV_BIN / "dvc")


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w-]+)'", output))


@pytest.mark.slow
def test_repro_reruns_only_what_changed(built: Path, tmp_path: Path):
    repo = clone_built(built, tmp_path / "repo")  # every stage already ran there
    out = run([DVC, "repro", "split"], repo).stdout
    assert ran(out) == set() and "up to date" in out

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["split"]["seed"] = 7
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([DVC, "repro", "split"], repo).stdout
    assert ran(out) == {"split"}

    raw = repo / "data" / "adult" / "adult.data"
    lines = raw.read_text().splitlines(keepends=True)
    raw.write_text("".join(lines[:-100]))  # a changed raw file: drop its last rows
    out = run([DVC, "repro", "split"], repo).stdout
    assert ran(out) == {"ingest", "split"}


@pytest.mark.slow
def test_exp_run_recomposes_params_with_hydra(built: Path, tmp_path: Path):
    repo = clone_built(built, tmp_path / "repo")
    out = run([DVC, "exp", "run", "-S", "data=german", "split"], repo)
    assert ran(out.stdout) == {"ingest", "split"}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["name"] == "german"
    shown = run([DVC, "exp", "show", "--no-pager", "--csv"], repo).stdout
    assert "german" in shown


def _stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _pipeline_imports(path: Path) -> set[str]:
    """Modules of this repo a file imports, anywhere in it (lazy and relative imports too)."""
    names = set()
    package = list(path.relative_to(ROOT).parts[:-1])  # the package the file belongs to
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if module:
                names.add(module)
                names |= {f"{module}.{a.name}" for a in node.names}
    return {n for n in names if n.split(".")[0] in ("pipeline", "serve")}


def _module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    if (base / "__init__.py").exists():
        return base / "__init__.py"
    if base.with_suffix(".py").exists():
        return base.with_suffix(".py")
    return None


def code_closure(module: str) -> set[Path]:
    """Every repo source file a stage module reaches through imports."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        f = _module_file(todo.pop())
        if f is None or f in seen:
            continue
        seen.add(f)
        parts = f.relative_to(ROOT).parts
        for i in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parts[:i]))
        if f.name == "__init__.py":
            # a package's other modules count only if imported; __init__ may re-export them
            pass
        todo.extend(_pipeline_imports(f))
    return {p.relative_to(ROOT) for p in seen}


def _covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


@pytest.mark.parametrize("name", list(_stages()))
def test_dvc_yaml_declares_exactly_what_each_stage_reads(name):
    spec = _stages()[name]
    module = importlib.import_module(f"pipeline.{name}")
    assert spec["cmd"] == f"python -m pipeline.{name} --dvc"
    if getattr(module, "PARAMS_FILE", False):  # the whole file, one dep instead of sections
        assert "params" not in spec and "params.yaml" in spec["deps"], (
            f"'{name}' reads params.yaml as a file: dvc.yaml must list it under deps only")
    else:
        assert list(spec.get("params", [])) == list(module.PARAMS), (
            f"dvc.yaml params of '{name}' differ from pipeline/{name}.py PARAMS"
        )
    # UNTRACKED_OUTS: files a stage writes that DVC must not track (register's record of a
    # side effect, which a run-cache restore would falsify).
    tracked = [o for o in module.OUTS if o not in getattr(module, "UNTRACKED_OUTS", ())]
    assert [o if isinstance(o, str) else next(iter(o)) for o in spec.get("outs", [])] == \
        tracked, f"dvc.yaml outs of '{name}' differ from pipeline/{name}.py OUTS"
    code_deps = [d for d in spec["deps"] if d.startswith(("pipeline", "serve"))]
    reached = code_closure(f"pipeline.{name}")
    missing = sorted(str(p) for p in reached
                     if p != Path("pipeline/__init__.py") and not _covered(p, code_deps))
    assert not missing, f"stage '{name}' imports {missing} but dvc.yaml does not list them"
    unused = [d for d in code_deps
              if not any(p == Path(d) or Path(d) in p.parents for p in reached)]
    assert not unused, f"dvc.yaml lists {unused} for '{name}' but the stage never imports them"
