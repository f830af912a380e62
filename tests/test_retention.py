"""Retention: registrations leave on their retain_until day; the log stays verifiable and
an access request still shows what was processed (issue 4, item 6)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from node.cli import main
from node.errors import InputError
from node.flows import admin
from node.flows.audit import inzage
from node.protocol.identifiers import parse_identifier
from node.protocol.registration import parse_registration
from node.store import log, registry
from tests.federation import Federation, log_entries, statuses

JAN = {"kind": "bsn", "bsn": "123456782"}
PIET = {"kind": "bsn", "bsn": "111222333"}


def _reg(ref: str, subject: dict[str, object], retain_until: str | None) -> dict[str, object]:
    out: dict[str, object] = {"ref": ref, "themes": ["veelplegers"], "identifiers": [subject]}
    if retain_until is not None:
        out["retain_until"] = retain_until
    return out


async def test_registration_is_purged_after_its_day_and_no_longer_a_hit(
    federation: Federation,
) -> None:
    node = federation.nodes["politie-test"]
    today = node.clock.now().date()
    federation.register("politie-test", _reg("BPS-1", JAN, today.isoformat()))
    federation.register("politie-test", _reg("BPS-2", PIET, None))
    assert admin.purge_all_expired(node.ctx) == []  # the day itself is still kept
    assert statuses(await federation.query("vh-test", [JAN]))["politie-test"] == "hit"

    node.clock.set(federation.started_at + timedelta(days=1))
    assert admin.purge_all_expired(node.ctx) == ["BPS-1"]
    assert registry.get(node.ctx.conn, "BPS-1") is None
    assert registry.get(node.ctx.conn, "BPS-2") is not None  # no retain_until: kept

    node.clock.set(federation.started_at)
    result = await federation.query("vh-test", [JAN, PIET])
    politie = next(p for p in result["partners"] if p["partner"] == "politie-test")
    assert politie["subjects"] == ["no_hit", "hit"]

    report = log.verify(node.ctx.conn, node.node_id, node.ctx.keys.signing_public)
    assert report.ok, report.problems
    row = node.ctx.conn.execute(
        "SELECT body FROM log_entries WHERE kind = 'registry.changed' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    body = json.loads(row[0])
    assert body["reason"] == "retention"
    assert body["actor"] == "retention"
    assert body["data"]["removed"] == 1
    assert "123456782" not in row[0]


async def test_access_request_still_finds_a_purged_registration(federation: Federation) -> None:
    node = federation.nodes["politie-test"]
    federation.register("politie-test", _reg("BPS-9", JAN, node.clock.now().date().isoformat()))
    node.clock.set(federation.started_at + timedelta(days=2))
    admin.purge_all_expired(node.ctx)
    found = await inzage.answer(node.ctx, [parse_identifier(JAN)], actor="fg-test")
    kinds = [e["kind"] for e in found.as_json()["entries"]]
    assert kinds.count("registry.changed") == 2  # registered, then purged
    assert found.as_json()["registrations"] == []


async def test_running_node_purges_in_the_background(federation: Federation) -> None:
    node = federation.nodes["om-test"]
    async with asyncio.timeout(60):  # only a guard against a hang; the clock decides
        # The retention task ran its pass at start and now waits on the node's clock.
        await node.clock.until_sleeping()
        federation.register("om-test", _reg("COMPAS-1", JAN, "2020-01-01"))
        assert registry.get(node.ctx.conn, "COMPAS-1") is not None
        # One purge interval on, the clock wakes the task: it purges and waits again.
        node.clock.advance(node.ctx.cfg.retention.purge_interval_seconds)
        await node.clock.until_sleeping()
    assert registry.get(node.ctx.conn, "COMPAS-1") is None


async def test_cli_registry_purge(federation: Federation) -> None:
    # The running node's own first retention pass is over: the CLI's purge is the one.
    await federation.nodes["ggz-test"].clock.until_sleeping()
    federation.register("ggz-test", _reg("GGZ-1", JAN, "2020-01-01"))
    home = str(federation.nodes["ggz-test"].home)
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["registry", "purge", "--home", home, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"purged": 1, "refs": ["GGZ-1"]}


def test_retain_until_must_be_a_date() -> None:
    with pytest.raises(InputError, match="retain_until"):
        parse_registration(_reg("X-1", JAN, "31-01-2027x"))


async def test_a_large_purge_runs_in_small_transactions(federation: Federation) -> None:
    # A purge of many registrations must not hold the write lock for long while a server
    # answers on the same home (issue 8 item 7): one transaction, and one registry.changed
    # entry, per PURGE_BATCH registrations.
    node = federation.nodes["politie-test"]
    rows = [
        _reg(
            f"OLD-{i}",
            {"kind": "address", "postcode": "1234AB", "house_number": i + 1},
            "2020-01-01",
        )
        for i in range(admin.PURGE_BATCH * 2 + 5)
    ]
    federation.register("politie-test", *rows)
    purged = admin.purge_all_expired(node.ctx)
    assert len(purged) == len(rows)
    batches = [e for e in log_entries(node, "registry.changed") if e["reason"] == "retention"]
    assert [b["data"]["removed"] for b in batches] == [admin.PURGE_BATCH, admin.PURGE_BATCH, 5]
    assert registry.count(node.ctx.conn) == 0
    assert statuses(await federation.query("vh-test", [JAN]))["politie-test"] == "no_hit"
