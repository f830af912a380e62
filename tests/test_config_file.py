"""The files an admin starts from say what the code does: `vhnode init` writes node.toml
with the comments config/node.example.toml promises, and the README names the example
convenant by its id."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from node.config import CONFIG_FILE, NodeConfig, load_config, render_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "node.example.toml"


def comments(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def test_the_example_is_what_render_config_writes_for_its_values() -> None:
    text = EXAMPLE.read_text()
    cfg = NodeConfig.model_validate(tomllib.loads(text))
    assert render_config(cfg) == text, "regenerate config/node.example.toml from render_config"


def test_init_writes_node_toml_with_the_examples_comments(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [
            sys.executable, "-m", "node", "init", "--home", str(home), "--node-id", "ggz-zwb",
            "--organisation", "GGZ Westelijk Noord-Brabant", "--org-type", "ggz",
            "--endpoint", "https://vhnode.ggz.example.nl", "--port", "8411",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    written = (home / CONFIG_FILE).read_text()
    assert comments(written) == comments(EXAMPLE.read_text())
    assert "# source_url = " in written  # an option without default, shown to copy
    cfg = load_config(home)
    assert (cfg.node_id, cfg.http.port) == ("ggz-zwb", 8411)


def test_the_readme_names_the_example_convenant_by_its_id() -> None:
    example_id = tomllib.loads((ROOT / "config" / "convenant.example.toml").read_text())["id"]
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"--convenant ([a-z0-9][a-z0-9_.-]+)", readme))
    named |= set(re.findall(r"vhnode convenant withdraw ([a-z0-9][a-z0-9_.-]+)", readme))
    assert named == {example_id}
