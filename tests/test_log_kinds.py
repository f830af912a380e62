"""Log kinds are one enumeration, and each kind is built in one place.

``LogKind`` (node/store/log_kinds.py) names every kind; ``node/flows/log_entries.py`` has
the constructors, and no other module of the package fills a ``LogEntry`` by hand. An
entry made with a member is byte-identical to one made with the bare string.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from node.flows import log_entries
from node.store import log
from node.store.log_kinds import LogKind

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {ROOT / "node/flows/log_entries.py", ROOT / "node/store/log.py"}


def test_kinds_are_unique_dotted_names() -> None:
    values = [k.value for k in LogKind]
    assert len(set(values)) == len(values)
    for v in values:
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", v), v


def test_no_module_builds_a_log_entry_by_hand() -> None:
    offenders = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        if path in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                if name == "LogEntry":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_every_kind_has_a_constructor() -> None:
    source = (ROOT / "node/flows/log_entries.py").read_text(encoding="utf-8")
    unbuilt = [k.name for k in LogKind if f"LogKind.{k.name}" not in source]
    assert unbuilt == []


def test_a_member_gives_the_same_body_as_its_string() -> None:
    made = log_entries.user_created(name="admin-vh", role="admin")
    by_hand = log.LogEntry(
        kind="user.created", actor="admin-vh", outcome="created", data={"role": "admin"}
    )
    assert type(made.kind) is str
    args = (7, bytes(32), "2026-03-02T10:00:00Z", "vh-test")
    assert log._canonical_body(made, *args) == log._canonical_body(by_hand, *args)
