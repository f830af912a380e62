"""Public interfaces are documented: the CLI reference is generated and must be current."""

from __future__ import annotations

from pathlib import Path

from node.cli import main
from node.cli_reference import render

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == render(), "run: python -m node.cli_reference > docs/cli.md"


def test_readme_shows_the_two_commands_and_every_command_group() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "vhnode demo" in readme
    assert "pytest" in readme
    for name in main.commands:  # type: ignore[attr-defined]
        assert f"vhnode {name}" in readme, name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.strip().splitlines()[-1]
    assert command in readme
