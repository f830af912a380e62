"""The ``vhnode demo`` click command (registered by ``node.cli``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.demo.render import print_summary
from node.demo.run import run_demo
from node.demo.ui import hold


@click.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (docs/demo.md).")
@click.option(
    "--subjects-per-partner",
    type=click.IntRange(min=50),
    default=3000,
    show_default=True,
    help="Registrations per partner.",
)
@click.option(
    "--seed", type=int, default=2026, show_default=True, help="Seed of the synthetic data."
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Build the federation in this (new or empty) directory and keep it.",
)
@click.option(
    "--ui",
    is_flag=True,
    help="After the scripted run keep the federation running for the web app: print each "
    "node's URL and its logins (password, TOTP secret); Ctrl-C stops every node.",
)
@click.option(
    "--plain-http",
    is_flag=True,
    help="Peers speak plain HTTP instead of mutual TLS (the default: a self-signed "
    "certificate per node, its key on the node's card).",
)
def demo(
    as_json: bool,
    subjects_per_partner: int,
    seed: int,
    keep: Path | None,
    ui: bool,
    plain_http: bool,
) -> None:
    """Run a seven-node federation on loopback and check every answer against the truth.

    After the bekendheid questions, a second stage asks politie for detail of one hit:
    one category delivered, one denied, one delivered after the politie liaison approves.
    Exits 1 if any answer or detail text disagrees with the synthetic ground truth, any
    log fails to verify, or any node fails. With --ui, Ctrl-C (or SIGTERM) is the normal
    end: the exit status is still that of the checks.
    """
    if ui and as_json:
        raise click.UsageError("--ui prints logins for people; it does not combine with --json")
    report = run_demo(
        subjects_per_partner,
        seed,
        keep,
        say=None if as_json else click.echo,
        ui=hold(click.echo) if ui else None,
        mutual_tls=not plain_http,
    )
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        if report.get("error"):
            click.echo(f"error: {report['error']}", err=True)
    else:
        print_summary(report)
    if not report["ok"]:
        raise click.exceptions.Exit(1)
