"""The layers of docs/architecture.md: each package imports only downwards, and no cycles.

Read from the source with ``ast`` (every ``import``, also inside functions and under
``TYPE_CHECKING``), so a late import cannot hide an upward edge or a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "node"

# Bottom to top. A module may import its own layer and every layer below it, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("node.errors",),
    ("node.protocol",),
    ("node.policy",),
    ("node.clock", "node.config", "node.keys", "node.logging_setup", "node.systemd", "node.tls"),
    ("node.store",),
    ("node.flows",),
    ("node.http",),
    ("node.cli", "node.demo", "node.__main__"),
)


def layer_of(module: str) -> int:
    if module == "node":  # the package's own __init__: a docstring
        return 0
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} belongs to no layer: add it to docs/architecture.md")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The project modules ``path`` imports (``from a import b`` yields ``a.b`` if a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "node":
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "node":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {
        name: {m for m in imported(path, name, known) if m in known and m != name}
        for name, path in mods.items()
    }


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_imports_only_go_downwards() -> None:
    upward = sorted(
        f"{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)})"
        for src, dsts in graph().items()
        for dst in dsts
        if layer_of(dst) > layer_of(src)
    )
    assert upward == []


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``g`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (found := visit(m)) is not None:
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (found := visit(n)) is not None:
            return found
    return None


def test_no_import_cycles() -> None:
    # A package's __init__ importing its own submodules is a package, not a cycle.
    g = {
        src: {d for d in dsts if not (src + ".").startswith(d + ".") or d == src}
        for src, dsts in graph().items()
    }
    assert find_cycle(g) is None, " -> ".join(find_cycle(g) or [])


@pytest.mark.parametrize(
    ("g", "cyclic"),
    [
        ({"a": {"b"}, "b": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ],
)
def test_the_cycle_finder_finds_cycles(g: dict[str, set[str]], cyclic: bool) -> None:
    assert (find_cycle(g) is not None) is cyclic


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text("from node.http import app\nimport node.flows.asking\n")
    found = set(imported(src, "node.protocol.mod", {"node.http.app", "node.flows.asking"}))
    assert found == {"node.http.app", "node.flows.asking"}
    assert all(layer_of(m) > layer_of("node.protocol.mod") for m in found)
