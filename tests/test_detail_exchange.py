"""The whole detail exchange through both nodes' local APIs (docs/protocol.md §14), watched
from the network: what crosses the wire, what each side logs and reports, and that both
logs stay verifiable and an access request finds the exchange at both ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from node.flows.audit import report
from node.flows.detail_asking import purge_due
from node.store import log
from tests.detail_fixtures import (
    ANTECEDENTS,
    CONTACT,
    JAN_ANTECEDENTS,
    JAN_BSN,
    JAN_CONTACT,
    SUPERVISION,
    detail_federation,
    hit_round,
)
from tests.federation import PURPOSE, Federation, Interposer, interpose

VH, POLITIE = "vh-test", "politie-test"


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[Federation, Interposer, list[bytes]]]:
    """The detail federation with politie-test behind an observer that keeps every byte
    of every request and answer."""
    fed = await detail_federation(tmp_path)
    proxy = await interpose(fed, POLITIE)
    answers: list[bytes] = []

    def keep(path: str, body: bytes) -> bytes:
        answers.append(body)
        return body

    proxy.rewrite = keep
    try:
        yield fed, proxy, answers
    finally:
        await fed.close()


def _by_category(ask: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["category"]: c for c in ask["categories"]}


async def _until(check: Any, what: str, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_request_approve_deliver_with_nothing_readable_on_the_wire(
    watched: tuple[Federation, Interposer, list[bytes]],
) -> None:
    fed, proxy, answers = watched
    round_ = await hit_round(fed)
    status, ask = await fed.api(
        VH,
        "POST",
        "/api/v1/details",
        json={
            "round_trace_id": round_["trace_id"],
            "partner": POLITIE,
            "categories": [CONTACT, ANTECEDENTS, SUPERVISION],
            "purpose": PURPOSE,
        },
    )
    assert status == 200, ask
    cats = _by_category(ask)
    assert cats[CONTACT]["status"] == "delivered"
    assert cats[ANTECEDENTS]["status"] == "pending"
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{ask['trace_id']}")
    assert _by_category(view)[CONTACT]["entries"] == [JAN_CONTACT]
    assert _by_category(view)[ANTECEDENTS]["entries"] is None
    assert (cats[SUPERVISION]["status"], cats[SUPERVISION]["reason"]) == (
        "denied",
        "no_detail_rule",
    )
    trace = ask["trace_id"]

    # The politie liaison sees the request (and the round's hit notice) and approves.
    _, inbox = await fed.api(POLITIE, "GET", "/api/v1/liaison/inbox", role="liaison")
    assert [r["trace_id"] for r in inbox["requests"]] == [trace]
    assert [n["round_trace_id"] for n in inbox["hit_notices"]] == [round_["trace_id"]]
    status, _ = await fed.api(
        POLITIE, "POST", f"/api/v1/liaison/requests/{VH}/{trace}/approve", role="liaison"
    )
    assert status == 200

    def delivered() -> bool:
        row = (
            fed.nodes[VH]
            .ctx.conn.execute(
                "SELECT status FROM asked_categories WHERE trace_id = ? AND category = ?",
                (trace, ANTECEDENTS),
            )
            .fetchone()
        )
        return row is not None and row[0] == "delivered"

    await _until(delivered, "the requester's poll after the decision notice")
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{trace}")
    assert _by_category(view)[ANTECEDENTS]["entries"] == [JAN_ANTECEDENTS]

    # On the wire, both ways: no identifier, no detail text, no subject key.
    wire = b"".join(body for _, body in proxy.requests) + b"".join(answers)
    assert any(p == "/peer/v1/detail" for p, _ in proxy.requests)
    assert any(p == "/peer/v1/detail/poll" for p, _ in proxy.requests)
    for secret in (JAN_CONTACT, JAN_ANTECEDENTS, JAN_BSN["bsn"], "bsn:"):
        assert secret.encode() not in wire, secret

    # Both logs verify and the reports count the exchange on each side.
    for node_id in (VH, POLITIE):
        node = fed.nodes[node_id]
        assert log.verify(node.ctx.conn, node_id, node.ctx.keys.signing_public).ok
    provider = _details(fed, POLITIE)
    assert provider["requests_answered"] == 1
    assert provider["disclosures"] == 3  # contact, then both again in the poll's answer
    assert (provider["pending"], provider["approvals"], provider["denials"]) == (1, 1, 1)
    assert provider["hit_notices_received"] == 1
    requester = _details(fed, VH)
    assert (requester["asked"], requester["received"], requester["hit_notices_sent"]) == (1, 2, 1)
    assert requester["viewed"] >= 1


async def _ask_contact(fed: Federation) -> dict[str, Any]:
    """A round, then the coordinator asks politie-test for the contact person."""
    round_ = await hit_round(fed)
    status, ask = await fed.api(
        VH,
        "POST",
        "/api/v1/details",
        json={
            "round_trace_id": round_["trace_id"],
            "partner": POLITIE,
            "categories": [CONTACT],
            "purpose": PURPOSE,
        },
    )
    assert status == 200, ask
    return dict(ask)


def _details(fed: Federation, node_id: str) -> dict[str, int]:
    node = fed.nodes[node_id]
    rep = report.report_for(node.ctx.conn, node_id, node.ctx.clock.now())
    return dict(rep.details)


async def test_an_access_request_finds_the_exchange_at_both_ends(
    watched: tuple[Federation, Interposer, list[bytes]],
) -> None:
    fed, _, _ = watched
    await _ask_contact(fed)
    for node_id, kinds in (
        (POLITIE, {"detail.requested", "detail.disclosed", "hit_notice.received"}),
        (VH, {"detail.asked", "detail.received", "hit_notice.sent"}),
    ):
        status, found = await fed.api(
            node_id,
            "POST",
            "/api/v1/audit/inzage",
            role="privacy_officer",
            json={"subjects": [JAN_BSN]},
        )
        assert status == 200, found
        text = json.dumps(found)
        assert kinds <= {e["kind"] for e in found["entries"]}, (node_id, text[:500])
        assert JAN_CONTACT not in text


async def test_purged_detail_leaves_no_ciphertext_in_the_files(
    watched: tuple[Federation, Interposer, list[bytes]],
) -> None:
    fed, _, _ = watched
    await _ask_contact(fed)
    vh = fed.nodes[VH]
    (ciphertext,) = vh.ctx.conn.execute("SELECT ciphertext FROM received_details").fetchone()
    assert bytes(ciphertext) in _files(vh.ctx.home)
    vh.clock.set(fed.started_at + timedelta(days=31))  # past the rule's 30 days
    assert purge_due(vh.ctx) == 1
    assert bytes(ciphertext)[:32] not in _files(vh.ctx.home)
    assert log.verify(vh.ctx.conn, VH, vh.ctx.keys.signing_public).ok


def _files(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("node.db*")))
