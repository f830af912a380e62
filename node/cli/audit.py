"""``vhnode audit``: verify the tamper-evident log, cross-check peers, report, inzage."""

from __future__ import annotations

import asyncio
import getpass
import json
from pathlib import Path

import aiohttp
import click

from node.cli.common import (
    emit,
    fail,
    home_option,
    json_option,
    main,
    node_at,
    out_option,
    print_json,
)
from node.cli.subjects import (
    ADDRESS_FORMAT,
    PERSON_FORMAT,
    SubjectCommand,
    parse_subjects,
    subjects_from_options,
)
from node.flows import admin
from node.flows.audit import inzage, render, report, verification
from node.flows.context import NodeContext
from node.flows.cross_check import CrossCheck, cross_check


@main.group()
def audit() -> None:
    """The node's tamper-evident log."""


@audit.command("verify")
@home_option
@json_option
def audit_verify(home: Path, as_json: bool) -> None:
    """Recompute the log and check it against its signed tree heads (recorded: audit.verified)."""
    with node_at(home) as ctx:
        report, recorded = verification.verify_and_record_here(ctx, _os_user())
    if not recorded:
        click.echo("note: the log refused the record of this verify (audit.verified)", err=True)
    if as_json:
        print_json(admin.verify_report_json(report))
    elif report.ok:
        click.echo(f"OK: {report.entries} entries, {report.heads} signed tree heads")
    else:
        for p in report.problems:
            where = "head" if p.seq is None else f"seq {p.seq}"
            click.echo(f"{where}: {p.kind}: {p.detail}")
    if not report.ok:
        fail(f"the log does not verify ({len(report.problems)} problem(s))")


@audit.command("cross-check")
@home_option
@click.option("--peer", "peer_ids", multiple=True, help="Check only these peers.")
@json_option
def audit_cross_check(home: Path, peer_ids: tuple[str, ...], as_json: bool) -> None:
    """Ask peers to prove their logs extend the signed heads we hold (RFC 9162)."""

    async def run(ctx: NodeContext) -> list[CrossCheck]:
        async with aiohttp.ClientSession() as session:
            return await cross_check(ctx, session, list(peer_ids) or None)

    with node_at(home) as ctx:
        results = asyncio.run(run(ctx))
    if as_json:
        print_json({"peers": [r.as_json() for r in results]})
    else:
        for r in results:
            sizes = f"held {r.held_size}, now {r.current_size}" if r.held_size else ""
            click.echo(f"{r.peer:24} {r.verdict:13} {sizes:26} {r.detail}".rstrip())
        if not results:
            click.echo("no peer heads held yet: they arrive with answers to bekendheid queries")
    bad = [r.peer for r in results if r.verdict in ("inconsistent", "truncated", "forked")]
    if bad:
        fail(f"log of {', '.join(bad)} does not extend the heads we hold")


@audit.command("report")
@home_option
@click.option("--from", "start", metavar="YYYY-MM-DD", help="First day (UTC), inclusive.")
@click.option("--to", "end", metavar="YYYY-MM-DD", help="Last day (UTC), inclusive.")
@click.option("--convenant", "convenant_id", help="Only entries under this convenant id.")
@click.option("--purpose", help="Only entries with this purpose.")
@click.option(
    "--party",
    help="Only requests by this party: a partner's node id, or this node's id for its own rounds.",
)
@click.option("--user", help="Only entries by this user (local user, or a partner's user).")
@click.option(
    "--subjects-per-day",
    type=click.IntRange(1),
    default=report.DEFAULT_SUBJECTS_PER_DAY,
    show_default=True,
    help="Flag a party asking about more subjects under one convenant in one day.",
)
@click.option(
    "--requests-per-minute",
    type=click.IntRange(1),
    default=report.DEFAULT_REQUESTS_PER_MINUTE,
    show_default=True,
    help="Flag a party sending more requests under one convenant within 60 s.",
)
@json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (columns: docs/audit.md).")
@out_option
def audit_report(
    *,
    home: Path,
    start: str | None,
    end: str | None,
    convenant_id: str | None,
    purpose: str | None,
    party: str | None,
    user: str | None,
    subjects_per_day: int,
    requests_per_minute: int,
    as_json: bool,
    as_csv: bool,
    output: Path | None,
) -> None:
    """Who asked what under which convenant and purpose; refusals; unusual patterns."""
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    filters = report.parse_filters(
        start=start, end=end, convenant=convenant_id, purpose=purpose, party=party, user=user
    )
    thresholds = report.parse_thresholds(subjects_per_day, requests_per_minute)
    with node_at(home) as ctx:
        rep = report.report_for(ctx.conn, ctx.node_id, ctx.clock.now(), filters, thresholds)
    if as_json:
        text = json.dumps(rep.as_json(), indent=2, ensure_ascii=False) + "\n"
    elif as_csv:
        text = render.csv_text(rep)
    else:
        text = render.render_text(rep)
    emit(text, output)


def _os_user() -> str:
    # The CLI has no API user: the log names the operating-system account instead.
    try:
        return "cli:" + getpass.getuser()
    except (OSError, KeyError):
        return "cli"


@audit.command("inzage", cls=SubjectCommand)
@home_option
@click.option("--bsn", "bsns", multiple=True, help="BSN (9 digits).")
@click.option("--person", "persons", multiple=True, help=f"'{PERSON_FORMAT}'.")
@click.option("--address", "addresses", multiple=True, help=f"'{ADDRESS_FORMAT}'.")
@click.option("--ref", "request_ref", help="Reference of the access request (logged).")
@json_option
@out_option
def audit_inzage(
    *,
    home: Path,
    bsns: tuple[str, ...],
    persons: tuple[str, ...],
    addresses: tuple[str, ...],
    request_ref: str | None,
    as_json: bool,
    output: Path | None,
) -> None:
    """Answer a data subject's access request: every logged processing about them."""
    subjects = parse_subjects(subjects_from_options(bsns, persons, addresses))
    with node_at(home) as ctx:
        rep = inzage.answer_here(ctx, subjects, _os_user(), request_ref)
    if as_json:
        text = json.dumps(rep.as_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = inzage.render_text(rep)
    emit(text, output)
