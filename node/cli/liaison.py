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
from urllib.parse import quote

import click

from node.cli.api_client import api_call, api_options
from node.cli.common import json_option, main, print_json, print_table

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


def print_inbox(inbox: dict[str, Any]) -> None:
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
    click.echo(f"\n{len(notices)} hit notice(s)")
    if notices:
        print_table(
            ["received", "requester", "case", "purpose", "asked by", "refs"],
            [
                [
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
                _text(c["status"]),
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
@json_option
def liaison_inbox(*, home: Path, url: str | None, token: str, as_json: bool) -> None:
    """Detail requests with a pending category, and hit notices."""
    inbox = api_call(home, url, token, "GET", f"{LIAISON_PATH}/inbox")
    if as_json:
        print_json(inbox)
    else:
        print_inbox(inbox)


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
