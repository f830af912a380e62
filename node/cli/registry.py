"""``vhnode registry``: this partner's own registry of subjects it knows."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

import click

from node.cli.common import fail, home_option, json_option, main, node_at, print_json
from node.flows import admin

MAX_ERROR_LINES = 20


@main.group()
def registry() -> None:
    """This partner's own registry of subjects it knows."""


@registry.command("import")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by suffix.")
@json_option
def registry_import(home: Path, file: Path, fmt: str | None, as_json: bool) -> None:
    """Import registrations from CSV or JSON Lines; invalid rows are reported and skipped."""
    with node_at(home) as ctx:
        report = admin.import_registrations(ctx, file, cast(Literal["csv", "jsonl"] | None, fmt))
    invalid = len(report.errors)
    if as_json:
        print_json(report.as_json(max_errors=invalid))
    else:
        click.echo(
            f"rows: {report.rows}  changed: {report.upserted}  unchanged: {report.unchanged}"
            f"  invalid: {invalid}"
        )
        for convenant_id, version in sorted(report.tag_set_versions.items()):
            click.echo(f"tag set {convenant_id}: now version {version}")
        for err in report.errors[:MAX_ERROR_LINES]:
            click.echo(str(err))
        if invalid > MAX_ERROR_LINES:
            click.echo(f"… and {invalid - MAX_ERROR_LINES} more (--json lists all)")
    if invalid and invalid == report.rows:
        fail(f"no valid row in {file}")


@registry.command("purge")
@home_option
@json_option
def registry_purge(home: Path, as_json: bool) -> None:
    """Remove registrations past their retain_until day now.

    A running node does this by itself every [retention] purge_interval_seconds.
    """
    with node_at(home) as ctx:
        refs = admin.purge_all_expired(ctx)
    if as_json:
        print_json({"purged": len(refs), "refs": refs})
    else:
        click.echo(f"purged {len(refs)} registration(s) past their retain_until day")


@registry.command("stats")
@home_option
@json_option
def registry_stats(home: Path, as_json: bool) -> None:
    """Number of registrations and the tag set published under each convenant."""
    with node_at(home) as ctx:
        st = admin.status(ctx)
    data = {"registrations": st["registrations"], "tag_sets": st["convenants"]}
    if as_json:
        print_json(data)
        return
    click.echo(f"registrations: {data['registrations']}")
    for convenant_id, h in sorted(st["convenants"].items()):
        click.echo(
            f"tag set {convenant_id} (convenant v{h['version']}): "
            f"version {h['tag_set_version']}, {h['tag_set_count']} tags"
        )
