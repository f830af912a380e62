"""A peer that rewrites, truncates or forks its log is caught by a cross-check (§9.4).

The requester holds the partner's signed tree heads from earlier answers; the partner
must prove its current log extends them (RFC 9162 consistency proof).
"""

from __future__ import annotations

import asyncio
import json

from click.testing import CliRunner

from node.cli import main
from node.flows import admin
from node.flows.cross_check import cross_check
from tests.federation import Federation, restore, snapshot

JAN = {"kind": "bsn", "bsn": "123456782"}


async def _verdicts(fed: Federation, peers: list[str] | None = None) -> dict[str, str]:
    assert fed.session is not None
    results = await cross_check(fed.nodes["vh-test"].ctx, fed.session, peers)
    return {r.peer: r.verdict for r in results}


async def test_honest_peers_are_consistent_after_more_work(federation: Federation) -> None:
    await federation.query("vh-test", [JAN], case_ref="CASUS-1")
    # The partners log more (another requester's question) before we check.
    await federation.query("politie-test", [JAN], case_ref="CASUS-2")
    verdicts = await _verdicts(federation)
    assert verdicts["om-test"] == "consistent"
    assert verdicts["politie-test"] == "consistent"
    assert verdicts["ggz-test"] == "consistent"


async def test_truncated_log_is_reported(federation: Federation) -> None:
    old = snapshot(federation, "om-test")
    await federation.query("vh-test", [JAN], case_ref="CASUS-1")
    await federation.query("vh-test", [JAN], case_ref="CASUS-2")
    await restore(federation, "om-test", old)  # om-test drops what it answered
    # Its answer to the cross-check is one entry more than the snapshot: still shorter
    # than the head it signed for us after the second question.
    verdicts = await _verdicts(federation, ["om-test"])
    assert verdicts == {"om-test": "truncated"}


async def test_cut_and_regrown_to_the_same_size_is_a_fork(federation: Federation) -> None:
    await federation.query("vh-test", [JAN], case_ref="CASUS-0")  # tag set already synced
    old = snapshot(federation, "om-test")
    await federation.query("vh-test", [JAN], case_ref="CASUS-1")  # one entry at om-test
    await restore(federation, "om-test", old)
    # Serving the cross-check makes the log as long as the head we hold, with another root.
    verdicts = await _verdicts(federation, ["om-test"])
    assert verdicts == {"om-test": "forked"}


async def test_rewritten_history_is_inconsistent(federation: Federation) -> None:
    old = snapshot(federation, "om-test")
    await federation.query("vh-test", [JAN], case_ref="CASUS-A")
    await restore(federation, "om-test", old)
    # om-test writes another history past the size we hold (other questions, other
    # answers), without ever showing us a head of the same size.
    for i in range(4):
        await federation.query("politie-test", [JAN], case_ref=f"CASUS-X{i}")
    verdicts = await _verdicts(federation, ["om-test"])
    assert verdicts == {"om-test": "inconsistent"}


async def test_unknown_requester_gets_a_signed_refusal(federation: Federation) -> None:
    await federation.query("vh-test", [JAN])
    admin.revoke_peer(federation.nodes["om-test"].ctx, "vh-test")
    verdicts = await _verdicts(federation, ["om-test"])
    assert verdicts == {"om-test": "refused"}


async def test_cross_check_is_logged(federation: Federation) -> None:
    await federation.query("vh-test", [JAN])
    await _verdicts(federation)
    conn = federation.nodes["vh-test"].ctx.conn
    rows = conn.execute(
        "SELECT counterparty, json_extract(body, '$.outcome') FROM log_entries"
        " WHERE kind = 'log.cross_checked'"
    ).fetchall()
    assert ("om-test", "consistent") in rows


async def test_cli_cross_check_exits_non_zero_on_a_rewritten_log(federation: Federation) -> None:
    await federation.query("vh-test", [JAN], case_ref="CASUS-0")
    old = snapshot(federation, "om-test")
    await federation.query("vh-test", [JAN], case_ref="CASUS-1")
    home = str(federation.nodes["vh-test"].home)
    ok = await asyncio.to_thread(
        CliRunner().invoke, main, ["audit", "cross-check", "--home", home, "--json"]
    )
    assert ok.exit_code == 0, ok.output
    assert {p["verdict"] for p in json.loads(ok.stdout)["peers"]} == {"consistent"}

    await restore(federation, "om-test", old)
    bad = await asyncio.to_thread(
        CliRunner().invoke, main, ["audit", "cross-check", "--home", home, "--peer", "om-test"]
    )
    assert bad.exit_code == 1
    assert "truncated" in bad.stdout  # the first cross-check made om-test sign a longer log
    assert bad.stderr.startswith("error: log of om-test does not extend")
    assert "Traceback" not in bad.output
