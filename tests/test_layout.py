"""The module map in pipeline/__init__.py and the README's layout table match the tree."""

from __future__ import annotations

import re

import pipeline
from tests.conftest import ROOT

ENTRY = re.compile(r"^    (  )?([\w/]+(?:\.py|/))\s")


def _mapped() -> set[str]:
    """Paths named by the map: `pkg/` headings, then their files indented two more spaces."""
    out, package = set(), ""
    for line in pipeline.__doc__.splitlines():
        m = ENTRY.match(line)
        if not m:
            continue
        nested, name = m.groups()
        if name.endswith("/"):
            package = name
        else:
            out.add(f"{package}{name}" if nested else name)
    return out


def _tree() -> set[str]:
    base = ROOT / "pipeline"
    return {p.relative_to(base).as_posix() for p in base.rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}


def test_module_map_names_every_module_and_nothing_else():
    mapped, tree = _mapped(), _tree()
    assert not tree - mapped, f"modules missing from pipeline/__init__.py's map: {tree - mapped}"
    assert not mapped - tree, f"the map names modules that do not exist: {mapped - tree}"


def test_readme_layout_names_every_pipeline_package():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    packages = {p.name for p in (ROOT / "pipeline").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    missing = sorted(p for p in packages if f"`pipeline/{p}/`" not in readme)
    assert not missing, f"README's layout table does not describe {missing}"


# pipeline/__init__.py's list of heavy packages (import time, or pulled in with them).
HEAVY = {"pandas", "pyarrow", "pandera", "sklearn", "scipy", "fairlearn", "mlflow", "matplotlib",
         "hydra", "omegaconf", "dvc", "boto3", "botocore", "psycopg2"}


def _imports(tree):
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node, [node.module or ""]


def test_heavy_packages_are_imported_where_used_and_the_rest_at_the_top():
    """The rule in pipeline/__init__.py: heavy third-party packages inside the functions that
    use them (or under TYPE_CHECKING for annotations); stdlib and internal modules at the top,
    unless a comment on the line above says why not."""
    import ast

    problems = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        text = path.read_text()
        lines, tree = text.splitlines(), ast.parse(text)
        top = {id(n) for n in tree.body}
        for node, mods in _imports(tree):
            heavy = any(m.split(".")[0] in HEAVY for m in mods)
            rel = f"{path.relative_to(ROOT)}:{node.lineno}"
            if heavy and id(node) in top:
                problems.append(f"{rel}: {mods} at module top")
            above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
            if not heavy and id(node) not in top and node.col_offset and not (
                    above.startswith("#") or _in_type_checking(tree, node)):
                problems.append(f"{rel}: {mods} inside a function without a reason")
    assert not problems, "\n".join(problems)


def _in_type_checking(tree, node) -> bool:
    import ast

    return any(isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
               and node in n.body for n in tree.body)


def test_stages_run_one_blas_thread_unless_the_environment_says_otherwise():
    import subprocess
    import sys

    code = "import pipeline.train, os; print(os.environ['OMP_NUM_THREADS'])"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert got == "1"
    got = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "4"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == "4"
