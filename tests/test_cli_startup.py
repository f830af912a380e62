"""What a CLI call imports: a command loads its own module only, and `vhnode query` none of
the node's server, crypto or store (issue 9 item 17; the timing is bench/bench_cli.py's).

Checked in fresh processes: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from node import config
from node.cli import api_client, main
from node.cli.common import COMMANDS
from node.config import CONFIG_FILE
from tests.federation import free_port

# The HTTP stack, the OPRF and the key handling, logging, and the node's own layers that
# use them. (PyNaCl may come with node.config, whose wire fields use the JWS encoding: a
# few milliseconds.)
HEAVY = ("aiohttp", "cryptography", "rbcl", "structlog", "node.flows", "node.store", "node.http")


def imported_after(code: str) -> set[str]:
    """The top-level packages and node modules a fresh interpreter holds after ``code``."""
    script = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted({m if m.startswith('node') else m.split('.')[0]"
        " for m in sys.modules})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_importing_the_cli_imports_no_command_and_nothing_heavy() -> None:
    modules = imported_after("import node.cli")
    assert heavy_in(modules) == []
    assert "pydantic" not in modules
    assert "nacl" not in modules
    assert not {m for m in modules if m.startswith("node.cli.") and m != "node.cli.common"}


def test_help_of_the_whole_cli_loads_no_command_module() -> None:
    code = (
        "from node.cli import main\n"
        "try:\n    main.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    modules = imported_after(code)
    assert heavy_in(modules) == []
    assert "pydantic" not in modules


def test_a_whole_query_call_loads_neither_pydantic_nor_server_crypto_or_store(
    tmp_path: Path,
) -> None:
    # A home as init writes it, whose listener is not there: the call runs to its end
    # (option parsing, node.toml, the request) and fails on connect.
    (tmp_path / CONFIG_FILE).write_text(
        f'node_id = "x"\n\n[http]\nhost = "127.0.0.1"\nport = {free_port()}\n'
    )
    args = ["query", "--home", str(tmp_path), "--token", "vhn_x", "--convenant", "c",
            "--purpose", "p", "--case", "X", "--bsn", "111222333",
            "--person", "A||B|1990-01-01"]  # fmt: skip
    code = (
        "from node.cli import main\nfrom node.errors import VhnodeError\n"
        f"try:\n    main.main({args!r}, standalone_mode=False)\n"
        "except VhnodeError as e:\n    assert 'cannot reach the node' in e.detail, e.detail"
    )
    modules = imported_after(code)
    assert "node.cli.query" in modules
    assert heavy_in(modules) == []
    assert "pydantic" not in modules
    assert "node.cli.audit" not in modules  # another command's module stays unloaded


def test_the_cli_and_the_config_name_the_same_file() -> None:
    assert api_client.CONFIG_FILE == config.CONFIG_FILE


def test_each_summary_in_the_lazy_table_is_the_commands_own() -> None:
    ctx = click.Context(main)
    for name, (_, _, summary) in COMMANDS.items():
        cmd = main.get_command(ctx, name)
        assert cmd is not None, name
        assert cmd.get_short_help_str(1000) == summary, name
