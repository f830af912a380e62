"""Public interfaces are documented: the CLI reference is generated and must be current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click

from node.cli import main
from node.cli.reference import render

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    # A fresh process: click caches each command's help option from the first context
    # that asked, so rendering inside the test process would depend on test order.
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli.reference"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == proc.stdout, "run: python -m node.cli.reference > docs/cli.md"


def top_level_commands() -> dict[str, click.Command]:
    """Every top-level command, loaded (the group imports each one only when it runs)."""
    ctx = click.Context(main)
    loaded = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    return {name: cmd for name, cmd in loaded.items() if cmd is not None}


def test_cli_reference_names_every_command() -> None:
    text = render()
    for name, cmd in top_level_commands().items():
        sub = getattr(cmd, "commands", {"": None})
        for leaf in sub:
            assert f"## vhnode {name} {leaf}".rstrip() in text


def test_readme_shows_the_two_commands_and_every_command_group() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "vhnode demo" in readme
    assert "pytest" in readme
    for name in top_level_commands():
        assert f"vhnode {name}" in readme, name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.strip().splitlines()[-1]
    assert command in readme


def test_the_test_command_installs_the_browser_and_runs_pytest() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert "apt-get install -y -qq chromium" in script  # CI runs as root on a fresh machine
    assert "sudo apt-get install -y chromium" in script  # everyone else is told how
    assert script.strip().splitlines()[-1].endswith("pip install -q -e '.[test]' && pytest -q")


def test_the_user_guide_shows_every_screenshot_and_only_existing_ones() -> None:
    """docs/gebruikersgids.md and docs/screenshots/ (made by scripts/screenshots.py) agree:
    no broken picture in the guide, no picture left out of it, and each a PNG 1280 px wide
    (the script's viewport) of a size a README can carry."""
    guide = (ROOT / "docs" / "gebruikersgids.md").read_text()
    shown = set(re.findall(r"\]\(screenshots/([\w-]+\.png)\)", guide))
    shots = ROOT / "docs" / "screenshots"
    made = {p.name for p in shots.glob("*.png")}
    assert shown, "the guide shows no screenshot"
    assert shown - made == set(), "run: python scripts/screenshots.py"
    assert made - shown == set(), "a screenshot the guide does not show"
    index = (shots / "README.md").read_text()
    for name in made:
        assert f"[{name}]({name})" in index, name
        data = (shots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        width = int.from_bytes(data[16:20], "big")  # IHDR: width, then height
        assert width == 1280, (name, width)
        assert len(data) < 600_000, (name, len(data))
    readme = (ROOT / "README.md").read_text()
    assert "docs/gebruikersgids.md" in readme
