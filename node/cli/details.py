"""``vhnode details``: the detail exchange (docs/protocol.md §14); commands added with it.

``request``, ``list``, ``show`` and ``poll`` go through the running node's local API
(``--token``, env ``VHNODE_TOKEN``), so the asking user's name and role are the node's
own record of them; ``purge`` opens the node home directly, as ``registry purge`` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from node.cli.api_client import api_call, api_options
from node.cli.common import home_option, json_option, main, node_at, print_json, print_table
from node.errors import VhnodeError

DETAILS_PATH = "/api/v1/details"


def _trace_path(trace_id: str) -> str:
    from node.protocol.fields import TRACE_ID_PATTERN  # noqa: PLC0415 - pydantic: only here

    # Checked here, not left to the node: "../details" would be another route's URL.
    if re.fullmatch(TRACE_ID_PATTERN, trace_id) is None:
        raise VhnodeError("a trace id is 32 lowercase hex digits")
    return f"{DETAILS_PATH}/{trace_id}"


def _print_ask(ask: dict[str, Any], texts: bool = False) -> None:
    why = ": ".join(str(x) for x in (ask.get("reason"), ask.get("detail")) if x)
    click.echo(
        f"detail request {ask['trace_id']} to {ask['partner']} ({ask.get('organisation')}), "
        f"round {ask['round_trace_id']} subject {ask['subject'] + 1}, case {ask['case_ref']}"
    )
    click.echo(
        f"asked by {ask['asked_by']} ({ask['asked_role']}) at {ask['asked_at']}; "
        f"last answer: {ask['outcome']}{' (' + why + ')' if why else ''}"
        f"{'; open' if ask['open'] else ''}"
    )
    rows = [
        [
            str(c["category"]),
            str(c["status"] or "no answer"),
            str(c["reason"] or ""),
            str(c["retain_until"] or ""),
            "purged" if c["purged_at"] else ("stored" if c["received_at"] else ""),
        ]
        for c in ask["categories"]
    ]
    print_table(["category", "status", "reason", "retain until", "held"], rows)
    if texts:
        for c in ask["categories"]:
            if c["visible"]:
                click.echo(f"\n{c['category']}:")
                for text in c["entries"]:
                    click.echo(f"  - {text}")


@main.group()
def details() -> None:
    """Ask partners for detail after a hit, and read what they released (§14)."""


@details.command("request")
@api_options
@click.option("--round", "round_trace_id", required=True, help="Trace id of the round.")
@click.option("--partner", required=True, help="The partner that had the hit.")
@click.option(
    "--subject",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The subject's number in the round, as `vhnode query` shows it (1 = the first typed).",
)
@click.option("--category", "categories", multiple=True, required=True, help="Category id.")
@click.option("--purpose", required=True, help="Purpose id: the purpose the round was asked under.")
@click.option("--case-ref", help="Case reference (default: the round's).")
@json_option
def details_request(
    *,
    home: Path,
    url: str | None,
    token: str,
    round_trace_id: str,
    partner: str,
    subject: int,
    categories: tuple[str, ...],
    purpose: str,
    case_ref: str | None,
    as_json: bool,
) -> None:
    """Ask a partner for detail of a subject it had a hit on."""
    body: dict[str, Any] = {
        "round_trace_id": round_trace_id,
        "partner": partner,
        "subject": subject - 1,  # the API counts from 0 (docs/api.md)
        "categories": list(categories),
        "purpose": purpose,
    }
    if case_ref is not None:
        body["case_ref"] = case_ref
    ask = api_call(home, url, token, "POST", DETAILS_PATH, body)
    if as_json:
        print_json(ask)
    else:
        _print_ask(ask)


@details.command("list")
@api_options
@json_option
def details_list(*, home: Path, url: str | None, token: str, as_json: bool) -> None:
    """Every detail request this node sent (no texts)."""
    asks = api_call(home, url, token, "GET", DETAILS_PATH)["details"]
    if as_json:
        print_json(asks)
        return
    rows = [
        [
            str(a["trace_id"]),
            str(a["partner"]),
            str(a["case_ref"]),
            str(a["outcome"]),
            "yes" if a["open"] else "no",
            ", ".join(f"{c['category']}:{c['status'] or '-'}" for c in a["categories"]),
        ]
        for a in asks
    ]
    if rows:
        print_table(["trace id", "partner", "case", "outcome", "open", "categories"], rows)
    else:
        click.echo("no detail requests")


@details.command("show")
@api_options
@click.argument("trace_id")
@json_option
def details_show(*, home: Path, url: str | None, token: str, trace_id: str, as_json: bool) -> None:
    """One detail request, with the texts your role may see (the read is logged)."""
    ask = api_call(home, url, token, "GET", _trace_path(trace_id))
    if as_json:
        print_json(ask)
    else:
        _print_ask(ask, texts=True)


@details.command("poll")
@api_options
@click.argument("trace_id")
@json_option
def details_poll(*, home: Path, url: str | None, token: str, trace_id: str, as_json: bool) -> None:
    """Ask the partner for the current state of a detail request now."""
    ask = api_call(home, url, token, "POST", _trace_path(trace_id) + "/poll")
    if as_json:
        print_json(ask)
    else:
        _print_ask(ask)


@details.command("purge")
@home_option
@json_option
def details_purge(home: Path, as_json: bool) -> None:
    """Delete received detail past its retain_until, and old partner records, now.

    Received detail goes at its retain_until; as a partner, detail requests answered and
    hit notices older than [details] record_days go too (the log keeps its entries). A
    running node does this by itself every [retention] purge_interval_seconds.
    """
    from node.flows import detail_answering as provider  # noqa: PLC0415 - the whole store
    from node.flows import detail_asking as requester  # noqa: PLC0415

    with node_at(home) as ctx:
        purged = requester.purge_due(ctx)
        requests, notices = provider.purge_records(ctx)
    if as_json:
        print_json({"purged": purged, "detail_requests": requests, "hit_notices": notices})
    else:
        click.echo(
            f"purged {purged} received detail categor{'y' if purged == 1 else 'ies'}, "
            f"{requests} answered detail request(s) and {notices} hit notice(s)"
        )
