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
