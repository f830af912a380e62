"""Every runtime dependency in pyproject.toml is imported by the package: ``pip install
vhnode`` pulls nothing that no code uses (docs/adr/0003-migrations-and-key-derivation.md
removed sqlite-utils on those grounds)."""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "node").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_every_declared_dependency_is_imported() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in project["dependencies"]
    }
    providers = packages_distributions()  # import name -> the distributions providing it
    used = {
        dist.lower().replace("_", "-")
        for module in imported_top_level_modules()
        for dist in providers.get(module, [])
    }
    assert declared - used == set(), "declared in pyproject.toml but imported nowhere in node/"
