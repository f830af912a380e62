"""``vhnode service``: running the node as a systemd service (README "Running the node as
a service", docs/operations.md "Install")."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path, PurePosixPath

import click

from node.cli.common import emit, fail, main, out_option
from node.systemd import DEFAULT_HOME, DEFAULT_USER, UnitSettings, render_unit


@main.group()
def service() -> None:
    """Run the node as a systemd service: its unit file."""


def installed_executable() -> Path | None:
    """The ``vhnode`` of the environment this command runs from: the venv's bin/ beside
    its python (not resolved: a venv's python is a link to the system's), else PATH's."""
    beside = Path(sys.executable).parent / "vhnode"
    if beside.is_file():
        return beside
    found = shutil.which("vhnode")
    return Path(found) if found else None


@service.command("unit")
@click.option(
    "--home",
    type=click.Path(path_type=PurePosixPath),
    default=str(DEFAULT_HOME),
    show_default=True,
    help="The node's home on the server; under /var/lib it is the unit's StateDirectory.",
)
@click.option("--user", default=DEFAULT_USER, show_default=True, help="The system user it runs as.")
@click.option(
    "--exec",
    "executable",
    type=click.Path(path_type=PurePosixPath),
    help="The vhnode program to run. Default: the one running this command.",
)
@out_option
def unit(
    home: PurePosixPath, user: str, executable: PurePosixPath | None, output: Path | None
) -> None:
    """Print a sandboxed systemd unit that runs `vhnode serve` (Type=notify).

    Install it with `vhnode service unit > /etc/systemd/system/vhnode.service`, then
    `systemctl daemon-reload && systemctl enable --now vhnode`. `systemctl reload vhnode`
    re-reads card.json; the log goes to the journal (`journalctl -u vhnode`).
    """
    if executable is None:
        found = installed_executable()
        if found is None:
            fail("cannot tell where vhnode is installed; name it with --exec")
        executable = PurePosixPath(found)
    emit(render_unit(UnitSettings(home=home, user=user, executable=executable)), output)
