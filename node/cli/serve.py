"""``vhnode serve`` and ``vhnode status``: run the node, and what it holds."""

from __future__ import annotations

from pathlib import Path

import click

from node.cli.common import home_option, json_option, main, node_at, print_json
from node.flows import admin
from node.logging_setup import LEVELS


@main.command()
@home_option
@click.option("--log-level", type=click.Choice(LEVELS), default="info", show_default=True)
def serve(home: Path, log_level: str) -> None:
    """Run the node's HTTP server until SIGTERM or Ctrl-C."""
    from node.http import server  # noqa: PLC0415 - the server pulls in the whole HTTP stack

    server.run(home, log_level)


@main.command()
@home_option
@json_option
def status(home: Path, as_json: bool) -> None:
    """This node: id, key fingerprint, counts, convenants."""
    with node_at(home) as ctx:
        st = admin.status(ctx)
    if as_json:
        print_json(st)
        return
    click.echo(f"node id:                 {st['node_id']}")
    click.echo(f"organisation:            {st['organisation']} ({st['org_type']})")
    click.echo(f"signing key fingerprint: {st['signing_key_fingerprint']}")
    click.echo(f"registrations:           {st['registrations']}")
    click.echo(f"peers:                   {', '.join(st['peers']) or 'none'}")
    click.echo(f"log entries:             {st['log_size']}")
    for convenant_id, h in sorted(st["convenants"].items()):
        click.echo(
            f"convenant {convenant_id} v{h['version']}: tag set version "
            f"{h['tag_set_version']}, {h['tag_set_count']} tags"
        )
