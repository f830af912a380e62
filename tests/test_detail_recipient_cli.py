"""``vhnode details``: request, list, show and poll through a running node's API; purge on
the node home (docs/cli.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.cli import main
from node.store import received
from tests.detail_fixtures import (
    ANTECEDENTS,
    CONTACT,
    JAN_CONTACT,
    detail_federation,
    hit_round,
)
from tests.federation import PURPOSE, Federation, log_entries

VH = "vh-test"
POLITIE = "politie-test"
RUNNER = CliRunner()


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await detail_federation(tmp_path)
    try:
        yield federation
    finally:
        await federation.close()


async def cli(*args: str) -> Result:
    # In a thread: the command runs its own event loop, while this one serves the nodes.
    return await asyncio.to_thread(RUNNER.invoke, main, list(args))


def api_args(fed: Federation, role: str = "coordinator") -> list[str]:
    node = fed.nodes[VH]
    return ["--home", str(node.home), "--token", node.tokens[role]]


async def test_request_list_show_poll_through_the_running_node(fed: Federation) -> None:
    trace = (await hit_round(fed))["trace_id"]
    result = await cli(
        "details", "request", *api_args(fed), "--round", trace, "--partner", POLITIE,
        "--category", CONTACT, "--category", ANTECEDENTS, "--purpose", PURPOSE,
        "--case-ref", "CASUS-CLI", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ask = json.loads(result.stdout)
    assert ask["outcome"] == "answered"
    assert ask["case_ref"] == "CASUS-CLI"
    assert [c["status"] for c in ask["categories"]] == ["delivered", "pending"]
    t = ask["trace_id"]

    listing = await cli("details", "list", *api_args(fed))
    assert listing.exit_code == 0, listing.output
    assert t in listing.stdout
    assert f"{CONTACT}:delivered" in listing.stdout
    assert JAN_CONTACT not in listing.stdout

    shown = await cli("details", "show", *api_args(fed), t)
    assert shown.exit_code == 0, shown.output
    assert JAN_CONTACT in shown.stdout
    assert len(log_entries(fed.nodes[VH], "detail.viewed")) == 1
    as_liaison = await cli("details", "show", *api_args(fed, "liaison"), t, "--json")
    assert json.loads(as_liaison.stdout)["categories"][1]["entries"] is None

    polled = await cli("details", "poll", *api_args(fed), t, "--json")
    assert polled.exit_code == 0, polled.output
    assert json.loads(polled.stdout)["outcome"] == "answered"
    assert len(log_entries(fed.nodes[VH], "detail.polled")) == 1


async def test_refusals_are_one_error_line(fed: Federation) -> None:
    trace = (await hit_round(fed))["trace_id"]
    base = ["details", "request", *api_args(fed), "--round", trace, "--partner", POLITIE,
            "--purpose", PURPOSE]  # fmt: skip
    for extra, words in (
        (["--category", "strafblad"], "HTTP 403"),
        (["--category", CONTACT, "--subject", "3"], "no hit"),
    ):
        result = await cli(*base, *extra)
        assert result.exit_code == 1
        # stderr only: the node serving in this process logs to stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: ")
        assert words in lines[0]
    result = await cli("details", "show", *api_args(fed), "f" * 32)
    assert result.exit_code == 1
    assert "404" in result.stderr
    result = await cli("details", "list", "--home", str(fed.nodes[VH].home), "--token", "vhn_x")
    assert result.exit_code == 1
    assert "401" in result.stderr
    assert received.all_asks(fed.nodes[VH].ctx.conn) == []


async def test_a_trace_id_that_is_not_one_never_reaches_another_route(
    fed: Federation,
) -> None:
    # "../details" would otherwise be GET /api/v1/details: another route's answer.
    for command in ("show", "poll"):
        for bad in ("../details", "F" * 32, "a" * 31):
            result = await cli("details", command, *api_args(fed), bad)
            assert result.exit_code == 1, result.output
            lines = result.stderr.strip().splitlines()
            assert lines == ["error: a trace id is 32 lowercase hex digits"], lines


async def test_purge_on_the_node_home(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    result = await cli(
        "details", "request", *api_args(fed), "--round", trace, "--partner", POLITIE,
        "--category", CONTACT, "--purpose", PURPOSE, "--json",
    )  # fmt: skip
    t = json.loads(result.stdout)["trace_id"]
    home = ["--home", str(vh.home)]
    result = await cli("details", "purge", *home, "--json")
    assert (result.exit_code, json.loads(result.stdout)) == (
        0,
        {"purged": 0, "detail_requests": 0, "hit_notices": 0},
    )
    # The CLI runs on the system clock: make the deadline pass instead.
    vh.ctx.conn.execute(
        "UPDATE asked_categories SET retain_until = '2020-01-01T00:00:00Z' WHERE trace_id = ?",
        (t,),
    )
    result = await cli("details", "purge", *home)
    assert result.exit_code == 0, result.output
    assert "purged 1 " in result.stdout
    assert received.received(vh.ctx.conn, t, CONTACT) is None
    assert [e["data"] for e in log_entries(vh, "detail.purged")] == [{"category": CONTACT}]
    verify = await cli("audit", "verify", *home)
    assert verify.exit_code == 0, verify.output
    assert "OK: " in verify.output
