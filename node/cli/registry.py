"""``vhnode registry``: this partner's own registry of subjects it knows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal, cast

import click

from node.cli.common import fail, home_option, json_option, main, node_at, print_json
from node.errors import NotAProvider
from node.flows import admin, key_epochs

MAX_ERROR_LINES = 20


@main.group()
def registry() -> None:
    """This partner's own registry of subjects it knows."""


EXIT_REFUSED = 3
"""``registry import``: imported, but some rows or identifiers were refused."""


@registry.command("import")
@home_option
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by suffix.")
@json_option
def registry_import(home: Path, file: Path, fmt: str | None, as_json: bool) -> None:
    """Import registrations from CSV or JSON Lines (formats: docs/api.md "Import files").

    A bad row is reported by line and skipped; a bad identifier is reported by line and
    column (CSV) or member (JSONL) and left out, the row imported with its valid
    identifiers. Exit status: 0 everything imported; 3 imported, but some rows or
    identifiers were refused (listed); 1 nothing imported or the file unreadable.
    """
    with node_at(home) as ctx:
        report = admin.import_registrations(ctx, file, cast(Literal["csv", "jsonl"] | None, fmt))
    if as_json:
        print_json(report.as_json(max_errors=len(report.errors)))
    else:
        # The same words as --json, so what a person reads is what a script parses.
        click.echo(
            f"rows: {report.rows}  upserted: {report.upserted}  unchanged: {report.unchanged}"
            f"  invalid: {report.invalid}  invalid_identifiers: {report.invalid_identifiers}"
        )
        for convenant_id, version in sorted(report.tag_set_versions.items()):
            click.echo(f"tag set {convenant_id}: now version {version}")
        for err in report.errors[:MAX_ERROR_LINES]:
            click.echo(str(err))
        if len(report.errors) > MAX_ERROR_LINES:
            click.echo(f"… and {len(report.errors) - MAX_ERROR_LINES} more (--json lists all)")
    if report.invalid and report.invalid == report.rows:
        fail(f"no valid row in {file}")
    if report.errors:
        fail(
            f"{report.invalid} row(s) and {report.invalid_identifiers} identifier(s) of "
            f"{file} refused (listed above); everything else is imported",
            code=EXIT_REFUSED,
        )


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


@registry.command("next-epoch")
@home_option
@click.argument("convenant_id")
@json_option
def registry_next_epoch(home: Path, convenant_id: str, as_json: bool) -> None:
    """Change the OPRF key of a convenant's tag set now (docs/protocol.md §6.1.1).

    Publishes the whole set again under the next key epoch, as the schedule ([oprf]
    epoch_days) does: after a tag set or an OPRF output has leaked, every tag learned
    before tests nothing. Costs one OPRF evaluation per subject key in scope.
    """
    with node_at(home) as ctx:
        changed = asyncio.run(key_epochs.change_now(ctx, convenant_id))
    if changed is None:
        raise NotAProvider(f"this node provides no tag set under {convenant_id}")
    data = {
        "convenant_id": changed.convenant_id,
        "oprf_epoch": changed.epoch,
        "tag_set_version": changed.version,
        "tags": changed.count,
    }
    if as_json:
        print_json(data)
    else:
        click.echo(
            f"{convenant_id}: OPRF key epoch {changed.epoch}, tag set v{changed.version} "
            f"({changed.count} tags)"
        )


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
