"""``vhnode liaison``: the provider's liaison decides pending detail requests (§14.7).

Every command goes through the running node's local API (``--token`` of a user with the
role ``liaison``, env ``VHNODE_TOKEN``): the node records the liaison's user name with
each decision and sends the requester its decision notice, which only the running node
can do.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import click

from node.cli.api_client import api_call, api_options
from node.cli.common import fail, json_option, main, print_json, print_table

LIAISON_PATH = "/api/v1/liaison"


def _request_path(requester: str, trace_id: str, action: str) -> str:
    # Quoted whole: a typed '/' or '..' must not reach another route.
    return (
        f"{LIAISON_PATH}/requests/{quote(requester, safe='')}/{quote(trace_id, safe='')}/{action}"
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _pending(request: dict[str, Any]) -> list[str]:
    return [str(c["category"]) for c in request["categories"] if c["status"] == "pending"]


def print_inbox(inbox: dict[str, Any], state: str = "open") -> None:
    requests: Sequence[dict[str, Any]] = inbox["requests"]
    notices: Sequence[dict[str, Any]] = inbox["hit_notices"]
    click.echo(f"{len(requests)} detail request(s) waiting for a decision")
    if requests:
        print_table(
            ["requester", "trace id", "case", "purpose", "asked by", "pending", "refs"],
            [
                [
                    _text(r["requester"]),
                    _text(r["trace_id"]),
                    _text(r["case_ref"]),
                    _text(r["purpose"]),
                    f"{r['requesting_user']} ({r['requesting_role']})",
                    ", ".join(_pending(r)),
                    ", ".join(str(x) for x in r["refs"]),
                ]
                for r in requests
            ],
        )
    total = inbox.get("hit_notices_total", len(notices))
    which = "" if state == "all" else f"{state} "
    click.echo(f"\n{total} {which}hit notice(s)" + (f", {len(notices)} shown" if notices else ""))
    if notices:
        print_table(
            ["id", "received", "requester", "case", "purpose", "asked by", "refs"],
            [
                [
                    _text(n["id"])
                    + (" (ack)" if state != "open" and n.get("acknowledged_at") else ""),
                    _text(n["received_at"]),
                    _text(n["requester"]),
                    _text(n["case_ref"]),
                    _text(n["purpose"]),
                    _text(n["requesting_user"]),
                    ", ".join(str(x) for x in n["refs"]),
                ]
                for n in notices
            ],
        )
    if inbox.get("next_before") is not None:
        click.echo(f"more: --before {inbox['next_before']}")
    if notices and state == "open":
        click.echo(f"mark them read: vhnode liaison acknowledge --through {notices[0]['id']}")


def _status(c: dict[str, Any]) -> str:
    """A category's state as the liaison should read it: "delivered" only once the text
    went out (issue 9 item 11)."""
    if c["status"] == "delivered" and not c.get("disclosed_at"):
        return "approved, not sent yet"
    return _text(c["status"])


def print_request(r: dict[str, Any]) -> None:
    organisation = f" ({r['organisation']})" if r.get("organisation") else ""
    click.echo(
        f"detail request {r['trace_id']} from {r['requester']}{organisation}, "
        f"case {r['case_ref']}, purpose {r['purpose']}"
    )
    click.echo(
        f"asked by {r['requesting_user']} ({r['requesting_role']}) at {r['received_at']}, "
        f"round {r['round_trace_id']}; refs: {', '.join(str(x) for x in r['refs'])}"
    )
    print_table(
        ["category", "status", "rule", "reason", "decided by", "retain until"],
        [
            [
                _text(c["category"]),
                _status(c),
                _text(c["rule"]),
                ": ".join(str(x) for x in (c.get("reason"), c.get("reason_detail")) if x),
                _text(c.get("decided_by")),
                _text(c.get("retain_until")),
            ]
            for c in r["categories"]
        ],
    )


@main.group()
def liaison() -> None:
    """Decide the detail requests that wait for a liaison; read hit notices (§14.7)."""


@liaison.command("inbox")
@api_options
@click.option(
    "--notices",
    "state",
    type=click.Choice(["open", "acknowledged", "all"]),
    default="open",
    show_default=True,
    help="Which hit notices: not yet acknowledged, acknowledged, or both.",
)
@click.option("--requester", help="Only this asking node.")
@click.option("--convenant", help="Only under this convenant id.")
@click.option("--case", "case_ref", help="Only this case reference.")
@click.option("--round", "round_trace_id", help="Only hit notices of this round (trace id).")
@click.option("--since", help="Only hit notices received since (YYYY-MM-DD or RFC 3339).")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="Notices per page."
)
@click.option("--before", type=int, help="The next page: notices older than this id.")
@json_option
def liaison_inbox(
    *,
    home: Path,
    url: str | None,
    token: str,
    state: str,
    requester: str | None,
    convenant: str | None,
    case_ref: str | None,
    round_trace_id: str | None,
    since: str | None,
    limit: int,
    before: int | None,
    as_json: bool,
) -> None:
    """Detail requests with a pending category, and a page of hit notices, newest first.

    The filters apply to both (--round and --since to notices only). Acknowledged notices
    (vhnode liaison acknowledge) are left out unless --notices says otherwise.
    """
    params = {
        "notices": state,
        "requester": requester,
        "convenant": convenant,
        "case_ref": case_ref,
        "round": round_trace_id,
        "since": since,
        "limit": limit,
        "before": before,
    }
    query = urlencode({k: v for k, v in params.items() if v is not None})
    inbox = api_call(home, url, token, "GET", f"{LIAISON_PATH}/inbox?{query}")
    if as_json:
        print_json(inbox)
    else:
        print_inbox(inbox, state)


@liaison.command("acknowledge")
@api_options
@click.argument("ids", nargs=-1, type=click.IntRange(min=1))
@click.option(
    "--through",
    type=click.IntRange(min=1),
    help="Every open notice up to this id (the newest one you have read).",
)
@json_option
def liaison_acknowledge(
    *,
    home: Path,
    url: str | None,
    token: str,
    ids: tuple[int, ...],
    through: int | None,
    as_json: bool,
) -> None:
    """Mark hit notices read: the IDS given, or every open one --through an id.

    Acknowledged notices leave the default inbox (--notices acknowledged shows them).
    """
    if bool(ids) == (through is not None):
        fail("give notice ids or --through ID (one of the two)")
    body: dict[str, Any] = {"ids": list(ids)} if ids else {"through": through}
    answer = api_call(home, url, token, "POST", f"{LIAISON_PATH}/notices/acknowledge", body)
    if as_json:
        print_json(answer)
        return
    click.echo(f"acknowledged {len(answer['acknowledged'])} hit notice(s)")
    if answer["already_acknowledged"]:
        already = ", ".join(str(i) for i in answer["already_acknowledged"])
        click.echo(f"acknowledged before: {already}")


@liaison.command("show")
@api_options
@click.argument("requester")
@click.argument("trace_id")
@json_option
def liaison_show(
    *, home: Path, url: str | None, token: str, requester: str, trace_id: str, as_json: bool
) -> None:
    """REQUESTER's detail request TRACE_ID, decided or not: per category what it became
    and whether its text went out ("delivered") or not ("approved, not sent yet",
    "unavailable": no text on record)."""
    answer = api_call(home, url, token, "GET", _request_path(requester, trace_id, "")[:-1])
    if as_json:
        print_json(answer)
    else:
        print_request(answer)


@liaison.command("approve")
@api_options
@click.argument("requester")
@click.argument("trace_id")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Approve only this pending category (repeatable; default: every pending one).",
)
@json_option
def liaison_approve(
    *,
    home: Path,
    url: str | None,
    token: str,
    requester: str,
    trace_id: str,
    categories: tuple[str, ...],
    as_json: bool,
) -> None:
    """Approve pending categories of REQUESTER's detail request TRACE_ID.

    The node decides each category again first: one the convenant no longer allows is
    denied by that rule instead. The requester is told to poll.
    """
    body = {"categories": list(categories)} if categories else {}
    answer = api_call(home, url, token, "POST", _request_path(requester, trace_id, "approve"), body)
    if as_json:
        print_json(answer)
    else:
        print_request(answer)


@liaison.command("deny")
@api_options
@click.argument("requester")
@click.argument("trace_id")
@click.option("--reason", required=True, help="Why (1-500 characters; the requester sees it).")
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Deny only this pending category (repeatable; default: every pending one).",
)
@json_option
def liaison_deny(
    *,
    home: Path,
    url: str | None,
    token: str,
    requester: str,
    trace_id: str,
    reason: str,
    categories: tuple[str, ...],
    as_json: bool,
) -> None:
    """Deny pending categories of REQUESTER's detail request TRACE_ID, with a reason."""
    body: dict[str, Any] = {"reason": reason}
    if categories:
        body["categories"] = list(categories)
    answer = api_call(home, url, token, "POST", _request_path(requester, trace_id, "deny"), body)
    if as_json:
        print_json(answer)
    else:
        print_request(answer)
