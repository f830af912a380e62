"""The requester side of the detail exchange (docs/protocol.md §14.1, §14.2, §14.5, §14.6,
§14.8, §14.9): hit proofs kept from a round, detail requests and polls, storage encrypted
at rest, the role filter, retention, decision notices and hit notices — with real nodes."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from node.errors import MalformedMessage
from node.flows import detail_asking as requester
from node.protocol import jws
from node.protocol.detail import (
    DETAIL_NOTICE_PATH,
    DETAIL_NOTICE_TYP,
    DETAIL_PATH,
    DetailEntries,
    DetailNotice,
    DetailPayload,
    seal,
)
from node.protocol.models import rfc3339
from node.protocol.tag_set import tag_from_output
from node.store import log, received, tag_sets
from tests.detail_fixtures import (
    ANTECEDENTS,
    CONTACT,
    JAN_ANTECEDENTS,
    JAN_BSN,
    JAN_CONTACT,
    NOBODY_BSN,
    SUPERVISION,
    TRAJECT,
    detail_federation,
    hit_round,
)
from tests.federation import (
    CONVENANT_ID,
    PURPOSE,
    Federation,
    SimNode,
    interpose,
    log_entries,
    only_on,
    post_peer,
    resign,
    state_counts,
    withdraw,
)

VH = "vh-test"
POLITIE = "politie-test"
REQUESTER_TABLES = ("round_hits", "detail_asks", "asked_categories", "received_details")
PROBLEM_BASE = "https://vhnode.nl/problems/"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await detail_federation(tmp_path)
    try:
        yield federation
    finally:
        await federation.close()


def counts(node: SimNode) -> dict[str, int]:
    conn = node.ctx.conn
    return {
        t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in REQUESTER_TABLES
    }


def hit_rows(node: SimNode) -> list[received.RoundHit]:
    rows = node.ctx.conn.execute("SELECT DISTINCT round_trace_id FROM round_hits").fetchall()
    return [h for (t,) in rows for h in received.round_hits_of(node.ctx.conn, t)]


def body(round_trace_id: str, *categories: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "round_trace_id": round_trace_id,
        "partner": POLITIE,
        "categories": list(categories),
        "purpose": PURPOSE,
    }
    out.update(extra)
    return out


async def ask(fed: Federation, data: Any, role: str = "coordinator") -> tuple[int, dict[str, Any]]:
    status, result = await fed.api(VH, "POST", "/api/v1/details", role=role, json=data)
    return status, dict(result)


def category(ask_json: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in ask_json["categories"] if c["category"] == name)


def raw_db(node: SimNode) -> bytes:
    """Every byte of the node's database files, WAL included."""
    return b"".join(p.read_bytes() for p in sorted(node.home.glob("node.db*")) if p.is_file())


async def wait_for(predicate: Any, what: str, deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# --- §14.1 hit proofs --------------------------------------------------------------------


async def test_round_keeps_hit_proofs_only_for_hits_never_shown_or_logged(
    fed: Federation,
) -> None:
    vh = fed.nodes[VH]
    result = await hit_round(fed, subjects=[JAN_BSN, NOBODY_BSN])
    trace = result["trace_id"]
    by_partner = {p["partner"]: p["subjects"] for p in result["partners"]}
    hits = received.round_hits_of(vh.ctx.conn, trace)
    expected = {(p, i) for p, subs in by_partner.items() for i, s in enumerate(subs) if s == "hit"}
    assert expected == {("politie-test", 0), ("om-test", 0), ("ggz-test", 0)}
    assert {(h.partner, h.subject) for h in hits} == expected
    for h in hits:
        assert len(h.hit_proof) == 64
        # The proof is the OPRF output whose first 16 bytes are the partner's tag.
        assert tag_sets.peer_has(vh.ctx.conn, h.partner, CONVENANT_ID, tag_from_output(h.hit_proof))
        assert h.case_ref == "CASUS-2026-001"
        assert h.convenant_id == CONVENANT_ID
        assert h.asked_by == "coordinator-vh-test"
        assert h.expires_at - h.asked_at == timedelta(hours=168)
        assert h.pseudonym in log_entries(vh, "bekendheid.asked")[0]["subjects"]
    # Never in the API output nor in any log entry, in any encoding.
    shown = json.dumps(result)
    every_log = "".join(json.dumps(e) for node in fed.nodes.values() for e in log_entries(node))
    for h in hits:
        for form in (jws.b64u_encode(h.hit_proof), h.hit_proof.hex()):
            assert form not in shown
            assert form not in every_log
            assert form[:22] not in every_log  # nor the tag part alone


async def test_hit_proofs_expire_and_are_purged(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    assert received.round_hits_of(vh.ctx.conn, trace)
    before = counts(vh)
    vh.clock.set(fed.started_at + timedelta(hours=168, seconds=1))
    status, problem = await ask(fed, body(trace, CONTACT))
    assert status == 403
    assert problem["type"] == PROBLEM_BASE + "unknown_round"
    assert "expired" in problem["detail"]
    assert counts(vh) == before  # nothing was sent or stored
    assert requester.purge_due(vh.ctx) == 0  # no detail held: nothing purged…
    assert received.round_hits_of(vh.ctx.conn, trace) == []  # …but the proofs are gone
    status, problem = await ask(fed, body(trace, CONTACT))
    assert problem["type"] == PROBLEM_BASE + "unknown_round"
    assert log.verify(vh.ctx.conn, VH, vh.ctx.keys.signing_public).ok


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "role", "status", "code", "words"),
    [
        (lambda t: body("0" * 32, CONTACT), "coordinator", 403, "unknown_round", "no round"),
        (lambda t: body(t, "strafblad"), "coordinator", 403, "unknown_category", "strafblad"),
        (lambda t: body(t, CONTACT, subject=1), "coordinator", 403, "unknown_round", "subject 1"),
        (
            lambda t: {**body(t, CONTACT), "partner": "ggz-test"} | {"subject": 5},
            "coordinator",
            403,
            "unknown_round",
            "no hit at ggz-test",
        ),
        (lambda t: body(t, CONTACT, CONTACT), "coordinator", 400, "invalid_input", "twice"),
        (body, "coordinator", 400, "invalid_input", "categories"),
        (lambda t: body(t, CONTACT, subject="0"), "coordinator", 400, "invalid_input", "subject"),
        (lambda t: body(t, CONTACT, subject=-1), "coordinator", 400, "invalid_input", "subject"),
        (lambda t: body(t, CONTACT, extra=1), "coordinator", 400, "invalid_input", "extra"),
        (lambda t: body(t[:31], CONTACT), "coordinator", 400, "invalid_input", "round_trace_id"),
        (lambda t: [body(t, CONTACT)], "coordinator", 400, "invalid_input", ""),
        (lambda t: body(t, CONTACT), "admin", 403, "forbidden", "admin"),
        (lambda t: body(t, CONTACT), "source", 403, "forbidden", "source"),
    ],
    ids=[
        "unknown-round",
        "not-in-catalogue",
        "subject-without-hit",
        "partner-without-that-hit",
        "category-twice",
        "no-category",
        "subject-as-text",
        "negative-subject",
        "unknown-member",
        "short-trace-id",
        "not-an-object",
        "admin",
        "source",
    ],
)
async def test_bad_detail_asks_are_refused_and_change_nothing(
    fed: Federation, make: Any, role: str, status: int, code: str, words: str
) -> None:
    trace = (await hit_round(fed))["trace_id"]
    before = (state_counts(fed), counts(fed.nodes[VH]))
    got, problem = await ask(fed, make(trace), role=role)
    assert got == status, problem
    assert problem["type"] == PROBLEM_BASE + code
    assert words in problem["detail"]
    assert (state_counts(fed), counts(fed.nodes[VH])) == before


async def test_a_partner_that_withdrew_is_sent_no_detail_request(fed: Federation) -> None:
    trace = (await hit_round(fed))["trace_id"]
    withdraw(fed, POLITIE)
    before = (state_counts(fed), counts(fed.nodes[VH]))
    status, problem = await ask(fed, body(trace, CONTACT))
    assert (status, problem["type"]) == (403, PROBLEM_BASE + "party_withdrawn")
    assert POLITIE in problem["detail"]
    # Nothing left this node: politie logged no detail request, refused or not.
    assert log_entries(fed.nodes[POLITIE], "detail.requested") == []
    assert (state_counts(fed), counts(fed.nodes[VH])) == before


async def test_malformed_json_and_unknown_trace_ids_are_problems(fed: Federation) -> None:
    status, problem = await fed.api(VH, "POST", "/api/v1/details", data=b"{not json")
    assert (status, problem["type"]) == (400, PROBLEM_BASE + "invalid_input")
    for method, path in (
        ("GET", "/api/v1/details/" + "a" * 32),
        ("POST", f"/api/v1/details/{'a' * 32}/poll"),
    ):
        status, problem = await fed.api(VH, method, path)
        assert (status, problem["type"]) == (404, PROBLEM_BASE + "unknown_request")
    status, problem = await fed.api(VH, "GET", "/api/v1/details/NOT-HEX")
    assert (status, problem["type"]) == (400, PROBLEM_BASE + "invalid_input")


# --- §14.8 at rest -----------------------------------------------------------------------


def test_at_rest_encryption_is_bound_to_exchange_and_category() -> None:
    key = secrets.token_bytes(32)
    t = secrets.token_hex(16)
    nonce, ct = requester.seal_at_rest(key, t, POLITIE, CONTACT, [JAN_CONTACT, "tweede"])
    assert JAN_CONTACT.encode() not in ct
    assert requester.open_at_rest(key, t, POLITIE, CONTACT, nonce, ct) == (JAN_CONTACT, "tweede")
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    for args in (
        (key, t, POLITIE, ANTECEDENTS, nonce, ct),  # moved to another category
        (key, secrets.token_hex(16), POLITIE, CONTACT, nonce, ct),  # to another exchange
        (key, t, "om-test", CONTACT, nonce, ct),  # to another partner
        (key, t, POLITIE, CONTACT, nonce, flipped),  # altered
        (secrets.token_bytes(32), t, POLITIE, CONTACT, nonce, ct),  # another node's key
    ):
        with pytest.raises(MalformedMessage):
            requester.open_at_rest(*args)


# --- §14.9 hit notices ---------------------------------------------------------------------


async def test_hit_notice_goes_to_the_partner_whose_rule_asks_for_it(fed: Federation) -> None:
    vh = fed.nodes[VH]
    result = await hit_round(fed)
    trace = result["trace_id"]
    sent = log_entries(vh, "hit_notice.sent")
    # politie-test's antecedents rule has notify_hit; om-test and ggz-test had hits too
    # but none of their rules asks for a notice.
    assert [e["counterparty"] for e in sent] == [POLITIE]
    entry = sent[0]
    (hit,) = [h for h in received.round_hits_of(vh.ctx.conn, trace) if h.partner == POLITIE]
    assert entry["trace_id"] == trace
    assert entry["subjects"] == [hit.pseudonym]
    assert entry["actor"] == "coordinator-vh-test"
    assert entry["data"]["case_ref"] == "CASUS-2026-001"
    assert entry["data"]["hits"] == 1
    assert (entry["outcome"], entry["reason"]) == ("accepted", None), entry
    assert entry["data"]["noticed"] == 1
    got = log_entries(fed.nodes[POLITIE], "hit_notice.received")
    assert [e["outcome"] for e in got] == ["accepted"]
    assert jws.b64u_encode(hit.hit_proof) not in json.dumps(log_entries(vh))


async def test_no_notice_for_a_round_of_a_party_the_notifying_rule_does_not_serve(
    fed: Federation,
) -> None:
    # politie-test asks too and has a hit on Jan at itself, but its notify_hit rule (the
    # antecedents) is for vh-test only: telling the liaison whom politie-test discusses
    # has no basis in the convenant.
    result = await hit_round(fed, POLITIE)
    assert received.round_hits_of(fed.nodes[POLITIE].ctx.conn, result["trace_id"]) != []
    assert log_entries(fed.nodes[POLITIE], "hit_notice.sent") == []
    assert log_entries(fed.nodes[POLITIE], "hit_notice.received") == []


async def test_a_round_without_a_hit_at_a_notifying_partner_sends_no_notice(
    fed: Federation,
) -> None:
    await hit_round(fed, subjects=[NOBODY_BSN])
    assert log_entries(fed.nodes[VH], "hit_notice.sent") == []
    assert counts(fed.nodes[VH])["round_hits"] == 0


async def test_an_unreachable_partner_does_not_fail_the_round_nor_its_notice(
    fed: Federation,
) -> None:
    vh = fed.nodes[VH]
    # politie answers the round, then goes away before the notice: the round still counts.
    trace = (await hit_round(fed))["trace_id"]
    await fed.stop(POLITIE)
    result = await hit_round(fed)
    assert {p["partner"]: p["status"] for p in result["partners"]}[POLITIE] == "unreachable"
    assert received.round_hits_of(vh.ctx.conn, result["trace_id"]) != []  # om, ggz
    assert [e["trace_id"] for e in log_entries(vh, "hit_notice.sent")] == [trace]


# --- detail requests end to end --------------------------------------------------------


async def test_unreachable_partner_is_kept_as_such_not_as_denied(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    await fed.stop(POLITIE)
    status, result = await ask(fed, body(trace, CONTACT, ANTECEDENTS))
    assert status == 200, result
    assert result["outcome"] == "unreachable"
    assert [c["status"] for c in result["categories"]] == [None, None]
    assert result["open"] is True  # it may still have been decided: a poll may tell
    (entry,) = log_entries(vh, "detail.asked")
    assert (entry["outcome"], entry["counterparty"]) == ("unreachable", POLITIE)
    assert entry["data"]["statuses"] == [None, None]
    assert entry["data"]["round_trace_id"] == trace
    assert counts(vh)["received_details"] == 0


async def test_request_delivers_contact_readable_by_roles_and_stored_encrypted(
    fed: Federation,
) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    (hit,) = [h for h in received.round_hits_of(vh.ctx.conn, trace) if h.partner == POLITIE]
    status, result = await ask(fed, body(trace, CONTACT, ANTECEDENTS, SUPERVISION))
    assert status == 200, result
    assert result["outcome"] == "answered"
    assert result["case_ref"] == "CASUS-2026-001"  # the round's, by default
    assert (result["asked_by"], result["asked_role"]) == ("coordinator-vh-test", "coordinator")
    contact = category(result, CONTACT)
    assert contact["status"] == "delivered"
    assert contact["recipient_roles"] == ["coordinator", "liaison"]
    assert contact["received_at"] is not None
    assert contact["entries"] is None  # the answer to the request shows no text
    assert category(result, ANTECEDENTS)["status"] == "pending"
    assert category(result, SUPERVISION)["status"] == "denied"
    assert category(result, SUPERVISION)["reason"] == "no_detail_rule"
    assert result["open"] is True
    t = result["trace_id"]

    # The log: one detail.asked, one detail.received; no text, no proof.
    (asked,) = log_entries(vh, "detail.asked")
    assert asked["trace_id"] == t
    assert asked["subjects"] == [hit.pseudonym]
    assert asked["data"]["categories"] == [CONTACT, ANTECEDENTS, SUPERVISION]
    assert asked["data"]["statuses"] == ["delivered", "pending", "denied"]
    (got,) = log_entries(vh, "detail.received")
    assert got["data"]["category"] == CONTACT
    assert got["data"]["retain_until"] == contact["retain_until"]
    every_log = json.dumps(log_entries(vh))
    assert JAN_CONTACT not in every_log
    assert jws.b64u_encode(hit.hit_proof) not in every_log

    # At rest: only ciphertext, bound to its row.
    vh.ctx.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert JAN_CONTACT.encode() not in raw_db(vh)
    assert received.received(vh.ctx.conn, t, CONTACT) is not None

    # Read by the coordinator (logged), by a liaison (contact only; antecedents are for
    # coordinators), and not by admin.
    status, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert status == 200
    assert category(view, CONTACT)["entries"] == [JAN_CONTACT]
    assert category(view, CONTACT)["visible"] is True
    (viewed,) = log_entries(vh, "detail.viewed")
    assert (viewed["actor"], viewed["data"]["categories"]) == ("coordinator-vh-test", [CONTACT])
    assert JAN_CONTACT not in json.dumps(viewed)
    status, view = await fed.api(VH, "GET", f"/api/v1/details/{t}", role="liaison")
    assert category(view, CONTACT)["entries"] == [JAN_CONTACT]
    status, view = await fed.api(VH, "GET", f"/api/v1/details/{t}", role="admin")
    assert status == 200
    assert all(c["entries"] is None and not c["visible"] for c in view["categories"])
    assert len(log_entries(vh, "detail.viewed")) == 2  # admin saw no text: nothing logged

    # The list shows the ask, never a text.
    status, listing = await fed.api(VH, "GET", "/api/v1/details", role="privacy_officer")
    assert [a["trace_id"] for a in listing["details"]] == [t]
    assert JAN_CONTACT not in json.dumps(listing)


async def test_tampered_row_is_not_shown(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    _, result = await ask(fed, body(trace, CONTACT))
    t = result["trace_id"]
    _, ct = received.received(vh.ctx.conn, t, CONTACT) or (b"", b"")
    vh.ctx.conn.execute(
        "UPDATE received_details SET ciphertext = ? WHERE trace_id = ?",
        (bytes([ct[0] ^ 1]) + ct[1:], t),
    )
    status, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert status == 200
    assert category(view, CONTACT)["entries"] is None
    assert log_entries(vh, "detail.viewed") == []


async def approve(fed: Federation, trace_id: str, categories: list[str] | None = None) -> Any:
    status, out = await fed.api(
        POLITIE,
        "POST",
        f"/api/v1/liaison/requests/{VH}/{trace_id}/approve",
        role="liaison",
        json={} if categories is None else {"categories": categories},
    )
    assert status == 200, out
    return out


def status_of(node: SimNode, trace_id: str, name: str) -> str | None:
    ask_ = received.get_ask(node.ctx.conn, trace_id)
    assert ask_ is not None
    return next(c.status for c in ask_.categories if c.category == name)


async def test_approval_notice_makes_the_requester_poll_by_itself(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    _, result = await ask(fed, body(trace, CONTACT, ANTECEDENTS))
    t = result["trace_id"]
    assert status_of(vh, t, ANTECEDENTS) == "pending"
    await approve(fed, t, [ANTECEDENTS])
    await wait_for(lambda: status_of(vh, t, ANTECEDENTS) == "delivered", "the notice's poll")
    polled = log_entries(vh, "detail.polled")
    assert [(e["actor"], e["outcome"]) for e in polled] == [("decision-notice", "answered")]
    assert polled[0]["data"]["statuses"] == ["delivered", "delivered"]
    # Antecedents go to coordinators only.
    status, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert category(view, ANTECEDENTS)["entries"] == [JAN_ANTECEDENTS]
    assert view["open"] is False
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{t}", role="liaison")
    assert category(view, ANTECEDENTS)["entries"] is None
    assert category(view, ANTECEDENTS)["visible"] is False
    assert category(view, CONTACT)["entries"] == [JAN_CONTACT]
    (viewed,) = [e for e in log_entries(vh, "detail.viewed") if e["actor"] == "liaison-vh-test"]
    assert viewed["data"]["categories"] == [CONTACT]

    # A manual poll re-delivers both; neither is stored a second time.
    before = counts(vh)
    status, again = await fed.api(VH, "POST", f"/api/v1/details/{t}/poll")
    assert status == 200, again
    assert again["outcome"] == "answered"
    assert counts(vh) == before
    assert len(log_entries(vh, "detail.received")) == 2


async def test_manual_poll_fetches_an_approval_when_no_notice_arrived(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    _, result = await ask(fed, body(trace, ANTECEDENTS))
    t = result["trace_id"]
    await fed.stop(VH)  # the notice finds nobody
    await approve(fed, t)
    assert [e["outcome"] for e in log_entries(fed.nodes[POLITIE], "detail.notice_sent")] == [
        "unreachable"
    ]
    await fed.start(VH)
    assert status_of(vh, t, ANTECEDENTS) == "pending"
    status, polled = await fed.api(VH, "POST", f"/api/v1/details/{t}/poll")
    assert status == 200, polled
    assert category(polled, ANTECEDENTS)["status"] == "delivered"
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert category(view, ANTECEDENTS)["entries"] == [JAN_ANTECEDENTS]


async def test_purge_at_retain_until_keeps_metadata_and_refuses_redelivery(
    fed: Federation,
) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed, subjects=[JAN_BSN]))["trace_id"]
    _, result = await ask(fed, body(trace, CONTACT))
    t = result["trace_id"]
    assert requester.purge_due(vh.ctx) == 0  # not yet due
    vh.clock.set(fed.started_at + timedelta(days=30, seconds=1))  # contactpersoon: 30 days
    assert requester.purge_due(vh.ctx) == 1
    assert requester.purge_due(vh.ctx) == 0  # once
    assert received.received(vh.ctx.conn, t, CONTACT) is None
    ask_ = received.get_ask(vh.ctx.conn, t)
    assert ask_ is not None
    (c,) = ask_.categories
    assert (c.status, c.retain_until, c.received_at) == (
        "delivered",
        category(result, CONTACT)["retain_until"],
        category(result, CONTACT)["received_at"],
    )
    assert c.purged_at is not None
    (purged,) = log_entries(vh, "detail.purged")
    assert (purged["trace_id"], purged["data"], purged["counterparty"]) == (
        t,
        {"category": CONTACT},
        POLITIE,
    )
    assert purged["subjects"] == log_entries(vh, "detail.asked")[0]["subjects"]
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert category(view, CONTACT)["entries"] is None
    assert category(view, CONTACT)["purged_at"] == c.purged_at
    assert log.verify(vh.ctx.conn, VH, vh.ctx.keys.signing_public).ok

    # politie's clock did not move: it still seals contactpersoon into a poll's answer.
    vh.clock.set(fed.started_at)
    status, polled = await fed.api(VH, "POST", f"/api/v1/details/{t}/poll")
    assert status == 200, polled
    assert polled["outcome"] == "answered"
    assert received.received(vh.ctx.conn, t, CONTACT) is None
    assert len(log_entries(vh, "detail.received")) == 1


async def test_a_text_past_retain_until_is_not_shown_before_the_purge_ran(
    fed: Federation,
) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed, subjects=[JAN_BSN]))["trace_id"]
    _, result = await ask(fed, body(trace, CONTACT))
    t = result["trace_id"]
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert category(view, CONTACT)["entries"] == [JAN_CONTACT]
    vh.clock.set(fed.started_at + timedelta(days=30, seconds=1))  # contactpersoon: 30 days
    # Still stored (no purge yet), but no longer readable.
    assert received.received(vh.ctx.conn, t, CONTACT) is not None
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{t}")
    assert (category(view, CONTACT)["visible"], category(view, CONTACT)["entries"]) == (
        False,
        None,
    )
    assert len(log_entries(vh, "detail.viewed")) == 1


# --- §14.6 decision notices ----------------------------------------------------------------


def notice(fed: Federation, signer: str, trace_id: str, partner: str = POLITIE) -> bytes:
    msg = DetailNotice(
        partner=partner,
        requester=VH,
        trace_id=trace_id,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=fed.nodes[signer].clock.now(),
    )
    doc = jws.sign(DETAIL_NOTICE_TYP, msg.wire(), fed.nodes[signer].ctx.keys.signing)
    return json.dumps(doc.to_json()).encode()


async def test_decision_notices_need_an_open_request_to_that_partner(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    await fed.stop(POLITIE)
    _, result = await ask(fed, body(trace, CONTACT))  # unanswered: still open
    t = result["trace_id"]
    before = len(log_entries(vh))

    reply = await post_peer(fed, VH, DETAIL_NOTICE_PATH, notice(fed, POLITIE, "b" * 32))
    assert (reply.status, reply.json()["type"]) == (404, PROBLEM_BASE + "unknown_request")
    # om-test signs a notice about politie's request, in its own name or in politie's.
    reply = await post_peer(fed, VH, DETAIL_NOTICE_PATH, notice(fed, "om-test", t, "om-test"))
    assert (reply.status, reply.json()["type"]) == (404, PROBLEM_BASE + "unknown_request")
    reply = await post_peer(fed, VH, DETAIL_NOTICE_PATH, notice(fed, "om-test", t))
    assert (reply.status, reply.json()["type"]) == (403, PROBLEM_BASE + "unknown_requester")
    reply = await post_peer(fed, VH, DETAIL_NOTICE_PATH, b"{}")
    assert reply.status == 400
    assert len(log_entries(vh)) == before  # no poll was started

    # A genuine one is accepted (202) and replaying it is refused.
    good = notice(fed, POLITIE, t)
    reply = await post_peer(fed, VH, DETAIL_NOTICE_PATH, good, content_type="application/jose+json")
    assert (reply.status, reply.json()) == (202, {"status": "accepted"})
    reply = await post_peer(fed, VH, DETAIL_NOTICE_PATH, good)
    assert (reply.status, reply.json()["type"]) == (403, PROBLEM_BASE + "replayed_request")
    await wait_for(lambda: log_entries(vh, "detail.polled") != [], "the notice's poll")
    (polled,) = log_entries(vh, "detail.polled")
    assert (polled["outcome"], polled["actor"]) == ("unreachable", "decision-notice")


# --- a partner that oversteps the convenant (it signs, but the convenant says otherwise) --


async def test_partner_cannot_widen_retention_or_readers(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    proxy = await interpose(fed, POLITIE)
    key = fed.nodes[POLITIE].ctx.keys.signing

    def widen(payload: dict[str, Any]) -> None:
        payload["categories"][0]["retain_until"] = "2099-01-01T00:00:00Z"
        payload["categories"][0]["recipient_roles"] = ["coordinator", "liaison", "privacy_officer"]

    proxy.rewrite = only_on(DETAIL_PATH, lambda _, b: resign(b, key, widen))
    _, result = await ask(fed, body(trace, CONTACT))
    assert result["outcome"] == "answered"
    contact = category(result, CONTACT)
    # The convenant's rule: 30 days, coordinator and liaison.
    assert contact["retain_until"] <= rfc3339(vh.clock.now() + timedelta(days=30))
    assert contact["recipient_roles"] == ["coordinator", "liaison"]
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{result['trace_id']}", "privacy_officer")
    assert category(view, CONTACT)["entries"] is None


async def test_partner_cannot_deliver_what_the_convenant_does_not_share(
    fed: Federation,
) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    proxy = await interpose(fed, POLITIE)
    key = fed.nodes[POLITIE].ctx.keys.signing

    def deliver_traject(payload: dict[str, Any]) -> None:
        # politie-test has no rule for lopend_traject; it denied it, then "changes its mind"
        sealed = DetailPayload(
            trace_id=payload["trace_id"],
            partner=POLITIE,
            requester=VH,
            details=(DetailEntries(category=TRAJECT, entries=("verzonnen",)),),
        )
        payload["categories"][0].update(
            status="delivered",
            rule="allow",
            reason=None,
            retain_until="2099-01-01T00:00:00Z",
            recipient_roles=["coordinator"],
        )
        payload["sealed"] = seal(sealed, vh.ctx.keys.encryption_public)

    proxy.rewrite = only_on(DETAIL_PATH, lambda _, b: resign(b, key, deliver_traject))
    _, result = await ask(fed, body(trace, TRAJECT))
    assert (result["outcome"], result["reason"]) == ("invalid", "malformed_message")
    assert category(result, TRAJECT)["status"] is None
    assert counts(vh)["received_details"] == 0
    assert log_entries(vh, "detail.received") == []


async def test_the_running_node_purges_on_its_own(fed: Federation) -> None:
    vh = fed.nodes[VH]
    trace = (await hit_round(fed))["trace_id"]
    _, result = await ask(fed, body(trace, CONTACT))
    t = result["trace_id"]
    async with asyncio.timeout(60):  # only a guard against a hang; the clock decides
        await vh.clock.until_sleeping()  # the retention task waits for its next pass
        vh.clock.advance(timedelta(days=31))  # wakes it: past the 30 days and the 168 h
        await vh.clock.until_sleeping()  # it purged and waits again
    assert log_entries(vh, "detail.purged") != []
    assert received.received(vh.ctx.conn, t, CONTACT) is None
    assert received.round_hits_of(vh.ctx.conn, trace) == []  # 168 h passed as well
