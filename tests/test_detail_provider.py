"""The partner's side of the detail exchange (docs/protocol.md §14.3, §14.5, §14.7, §14.9)
with real nodes: what leaves the provider, what never does, and what stops the flow.

Requests are signed here with the requester's real key; the hit proof is the OPRF
output of the subject under the partner's key — exactly what the requester's client
derives in a round (the OPRF tests show blind evaluation gives the same output).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.public
import pytest
from aiohttp import web

from node.config import DetailsConfig
from node.flows import admin
from node.flows.admin import issue_card
from node.flows.detail_answering import purge_records
from node.flows.publishing import apply_changes
from node.policy.rate_limit import RateLimiter
from node.protocol import jws, oprf
from node.protocol.detail import (
    DETAIL_PATH,
    DETAIL_POLL_PATH,
    DETAIL_POLL_TYP,
    DETAIL_REQUEST_TYP,
    DETAIL_RESPONSE,
    DETAIL_RESPONSE_TYP,
    HIT_NOTICE_PATH,
    HIT_NOTICE_RESPONSE_TYP,
    HIT_NOTICE_TYP,
    DetailAnswered,
    DetailPoll,
    DetailRequest,
    DetailResponse,
    HitNotice,
    open_sealed,
)
from node.protocol.identifiers import parse_identifier, subject_key
from node.store import log
from tests.detail_fixtures import (
    ANTECEDENTS,
    CARE,
    CONTACT,
    JAN_ANTECEDENTS,
    JAN_BSN,
    JAN_CONTACT,
    JAN_TRAJECT,
    NOBODY_BSN,
    PIET_BSN,
    SUPERVISION,
    TRAJECT,
    detail_convenant_toml,
    detail_federation,
    hit_round,
)
from tests.federation import (
    CONVENANT_ID,
    OTHER_PURPOSE,
    PURPOSE,
    Federation,
    PeerReply,
    bound_socket,
    open_signed,
    post_peer,
    state_counts,
    toml_time,
    withdraw,
)

LIAISON = "/api/v1/liaison"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    f = await detail_federation(tmp_path)
    yield f
    await f.close()


def proof_for(fed: Federation, partner: str, identifier: dict[str, Any]) -> str:
    sk, _ = fed.nodes[partner].ctx.oprf_key(CONVENANT_ID)
    key = subject_key(parse_identifier(identifier)).encode()
    return jws.b64u_encode(oprf.evaluate(sk, [key])[0])


def detail_request(
    fed: Federation,
    requester: str,
    partner: str,
    round_trace_id: str,
    categories: tuple[str, ...],
    *,
    proof: str | None = None,
    identifier: dict[str, Any] = JAN_BSN,
    **fields: Any,
) -> jws.SignedDocument:
    values: dict[str, Any] = {
        "requester": requester,
        "partner": partner,
        "convenant_id": CONVENANT_ID,
        "convenant_version": 1,
        "purpose": PURPOSE,
        "case_ref": "CASUS-DETAIL-1",
        "requesting_user": "coordinator",
        "requesting_role": "coordinator",
        "trace_id": secrets.token_hex(16),
        "round_trace_id": round_trace_id,
        "hit_proof": proof or proof_for(fed, partner, identifier),
        "categories": categories,
        "nonce": jws.b64u_encode(secrets.token_bytes(16)),
        "issued_at": fed.nodes[requester].clock.now(),
    }
    values.update(fields)
    return jws.sign(DETAIL_REQUEST_TYP, DetailRequest(**values).wire(), _key(fed, requester))


def _key(fed: Federation, node_id: str) -> Any:
    return fed.nodes[node_id].ctx.keys.signing


def poll_request(fed: Federation, requester: str, partner: str, trace_id: str) -> Any:
    poll = DetailPoll(
        requester=requester,
        partner=partner,
        trace_id=trace_id,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=fed.nodes[requester].clock.now(),
    )
    return jws.sign(DETAIL_POLL_TYP, poll.wire(), _key(fed, requester))


def response(fed: Federation, partner: str, reply: PeerReply) -> DetailResponse:
    return DETAIL_RESPONSE.validate_python(
        open_signed(fed, partner, reply.body, DETAIL_RESPONSE_TYP)
    )


def statuses(resp: DetailResponse) -> dict[str, tuple[str, str | None]]:
    return {c.category: (c.status, c.reason) for c in resp.categories or ()}


def opened(fed: Federation, requester: str, resp: DetailResponse) -> dict[str, list[str]]:
    assert isinstance(resp, DetailAnswered)
    assert resp.sealed is not None
    payload = open_sealed(resp.sealed, fed.nodes[requester].ctx.keys.encryption, resp)
    return {d.category: list(d.entries) for d in payload.details}


def stored_bytes(fed: Federation, node_id: str) -> bytes:
    """Every byte of a node's database files (main file and WAL)."""
    fed.nodes[node_id].ctx.conn.execute("PRAGMA wal_checkpoint(FULL)")
    home = fed.nodes[node_id].ctx.home
    return b"".join(p.read_bytes() for p in home.glob("node.db*"))


async def ask(
    fed: Federation, requester: str, partner: str, categories: tuple[str, ...], **kw: Any
) -> tuple[PeerReply, DetailResponse]:
    round_ = await hit_round(fed, requester)
    doc = detail_request(fed, requester, partner, round_["trace_id"], categories, **kw)
    reply = await post_peer(fed, partner, DETAIL_PATH, doc)
    return reply, response(fed, partner, reply)


# --- what leaves, to whom --------------------------------------------------------------


async def test_allowed_category_is_delivered_sealed_to_the_requester_only(
    fed: Federation,
) -> None:
    reply, resp = await ask(fed, "vh-test", "politie-test", (CONTACT,))
    assert reply.status == 200
    assert resp.outcome == "answered"
    assert statuses(resp) == {CONTACT: ("delivered", None)}
    assert opened(fed, "vh-test", resp) == {CONTACT: [JAN_CONTACT]}
    # In transit the text is nowhere in the clear; another node's key cannot open it.
    assert JAN_CONTACT.encode() not in reply.body
    assert isinstance(resp, DetailAnswered)
    assert resp.sealed is not None
    with pytest.raises(Exception, match="does not open"):
        open_sealed(resp.sealed, fed.nodes["om-test"].ctx.keys.encryption, resp)
    # The provider's log and store hold no copy of what it sent (its registry does).
    entries = json.dumps(
        [
            json.loads(r[0])
            for r in fed.nodes["politie-test"].ctx.conn.execute("SELECT body FROM log_entries")
        ]
    )
    assert JAN_CONTACT not in entries
    assert jws.b64u_encode(resp.sealed)[:40] not in entries
    conn = fed.nodes["politie-test"].ctx.conn
    dumped = "\n".join(
        str(row)
        for table in ("detail_requests", "detail_categories", "log_entries", "tree_heads")
        for row in conn.execute(f"SELECT * FROM {table}")
    )
    assert JAN_CONTACT not in dumped
    disclosed = [e for e in _log(fed, "politie-test") if e["kind"] == "detail.disclosed"]
    assert [(e["counterparty"], e["data"]["category"]) for e in disclosed] == [("vh-test", CONTACT)]


def _log(fed: Federation, node_id: str) -> list[dict[str, Any]]:
    rows = fed.nodes[node_id].ctx.conn.execute("SELECT body FROM log_entries ORDER BY seq")
    return [json.loads(r[0]) for r in rows]


async def test_each_category_is_decided_on_its_own_and_denied_ones_never_leave(
    fed: Federation,
) -> None:
    _reply, resp = await ask(
        fed, "vh-test", "politie-test", (CONTACT, ANTECEDENTS, SUPERVISION, "bestaat_niet")
    )
    assert statuses(resp) == {
        CONTACT: ("delivered", None),
        ANTECEDENTS: ("pending", None),
        SUPERVISION: ("denied", "no_detail_rule"),
        "bestaat_niet": ("denied", "unknown_category"),
    }
    assert opened(fed, "vh-test", resp) == {CONTACT: [JAN_CONTACT]}
    rules = {c.category: c.rule for c in resp.categories or ()}
    assert rules[SUPERVISION] == "detail-rule-exists"
    assert rules["bestaat_niet"] == "category-in-catalogue"


async def test_role_and_purpose_are_checked_per_category(fed: Federation) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (ANTECEDENTS,), requesting_role="liaison")
    assert statuses(resp) == {ANTECEDENTS: ("denied", "role_not_allowed")}
    assert resp.sealed is None
    _, resp = await ask(fed, "vh-test", "ggz-test", (CARE,))
    assert statuses(resp) == {CARE: ("denied", "purpose_not_allowed")}
    assert resp.sealed is None


async def test_a_party_not_allowed_a_category_never_receives_it(fed: Federation) -> None:
    # politie-test may receive om-test's traject, but not ggz-test's care contact.
    _, resp = await ask(fed, "politie-test", "om-test", (TRAJECT,))
    assert opened(fed, "politie-test", resp) == {TRAJECT: [JAN_TRAJECT]}
    _, resp = await ask(fed, "politie-test", "ggz-test", (CARE,))
    assert statuses(resp) == {CARE: ("denied", "recipient_not_allowed")}
    assert resp.sealed is None


async def test_another_partys_round_and_case_ref_do_not_open_the_door(fed: Federation) -> None:
    # politie-test asks om-test with vh-test's round (and case reference).
    theirs = await hit_round(fed, "vh-test")
    doc = detail_request(
        fed,
        "politie-test",
        "om-test",
        theirs["trace_id"],
        (TRAJECT,),
        case_ref=theirs["case_ref"],
    )
    reply = await post_peer(fed, "om-test", DETAIL_PATH, doc)
    resp = response(fed, "om-test", reply)
    assert reply.status == 403
    assert resp.outcome == "refused"
    assert resp.reason == "unknown_round"
    assert resp.sealed is None
    assert JAN_TRAJECT.encode() not in reply.body


@pytest.fixture
async def fed_two_purposes(tmp_path: Path) -> AsyncIterator[Federation]:
    """vh-test may ask bekendheid under PURPOSE and OTHER_PURPOSE; ggz-test shares its
    care contact with vh-test under OTHER_PURPOSE only."""
    f = await detail_federation(tmp_path, both_purposes=True)
    yield f
    await f.close()


async def test_detail_is_only_for_the_purpose_of_the_round_it_proves(
    fed_two_purposes: Federation,
) -> None:
    fed = fed_two_purposes
    # A round under PURPOSE, then detail under OTHER_PURPOSE — the only purpose the care
    # contact's rule covers: purpose limitation refuses it, nothing is sealed.
    round_a = await hit_round(fed, "vh-test", purpose=PURPOSE)
    doc = detail_request(
        fed, "vh-test", "ggz-test", round_a["trace_id"], (CARE,), purpose=OTHER_PURPOSE
    )
    reply = await post_peer(fed, "ggz-test", DETAIL_PATH, doc)
    resp = response(fed, "ggz-test", reply)
    assert (reply.status, resp.outcome, resp.reason) == (403, "refused", "round_purpose_mismatch")
    assert resp.categories is None
    assert resp.sealed is None
    assert PURPOSE in (resp.reason_detail or "")
    refused = [e for e in _log(fed, "ggz-test") if e["kind"] == "detail.requested"]
    assert [(e["reason"], e["data"]["rule"], e["purpose"]) for e in refused] == [
        ("round_purpose_mismatch", "round-binding", OTHER_PURPOSE)
    ]
    assert not [e for e in _log(fed, "ggz-test") if e["kind"] == "detail.disclosed"]
    assert state_counts(fed)["ggz-test"].get("detail_requests", 0) == 0

    # The same request after a round under OTHER_PURPOSE is answered and delivered.
    round_b = await hit_round(fed, "vh-test", purpose=OTHER_PURPOSE)
    doc = detail_request(
        fed, "vh-test", "ggz-test", round_b["trace_id"], (CARE,), purpose=OTHER_PURPOSE
    )
    reply = await post_peer(fed, "ggz-test", DETAIL_PATH, doc)
    resp = response(fed, "ggz-test", reply)
    assert statuses(resp) == {CARE: ("delivered", None)}
    assert opened(fed, "vh-test", resp) == {CARE: ["ja"]}


async def test_the_requester_asks_detail_only_under_the_rounds_purpose(
    fed_two_purposes: Federation,
) -> None:
    fed = fed_two_purposes
    round_a = await hit_round(fed, "vh-test", purpose=PURPOSE)
    before = len(_log(fed, "ggz-test"))
    status, problem = await fed.api(
        "vh-test",
        "POST",
        "/api/v1/details",
        role="coordinator",
        json={
            "round_trace_id": round_a["trace_id"],
            "partner": "ggz-test",
            "subject": 0,
            "categories": [CARE],
            "purpose": OTHER_PURPOSE,
        },
    )
    assert status == 403
    assert problem["type"] == "https://vhnode.nl/problems/round_purpose_mismatch"
    assert PURPOSE in problem["detail"]
    assert len(_log(fed, "ggz-test")) == before  # nothing was sent


async def test_a_hit_notice_under_another_purpose_than_its_round_is_refused(
    fed: Federation,
) -> None:
    round_ = await hit_round(fed, "vh-test")
    proof = proof_for(fed, "politie-test", JAN_BSN)
    doc = hit_notice(
        fed, "vh-test", "politie-test", round_["trace_id"], (proof,), purpose=OTHER_PURPOSE
    )
    reply = await post_peer(fed, "politie-test", HIT_NOTICE_PATH, doc)
    answer = open_signed(fed, "politie-test", reply.body, HIT_NOTICE_RESPONSE_TYP)
    assert (answer["outcome"], answer["reason"]) == ("refused", "round_purpose_mismatch")


# --- bad input: clear refusals, nothing changes ------------------------------------------


async def test_unknown_tag_forged_proof_and_missing_round_are_refused(fed: Federation) -> None:
    round_ = await hit_round(fed)
    trace = round_["trace_id"]
    before = state_counts(fed)["politie-test"]
    nobody = detail_request(
        fed, "vh-test", "politie-test", trace, (CONTACT,), identifier=NOBODY_BSN
    )
    # A real member tag with made-up remaining bytes: what a requester holding the
    # published tag set could invent without ever having asked about the person.
    real = jws.b64u_decode(proof_for(fed, "politie-test", JAN_BSN))
    forged = jws.b64u_encode(real[:16] + secrets.token_bytes(48))
    forged_doc = detail_request(fed, "vh-test", "politie-test", trace, (CONTACT,), proof=forged)
    no_round = detail_request(fed, "vh-test", "politie-test", secrets.token_hex(16), (CONTACT,))
    for doc, reason in (
        (nobody, "unknown_subject"),
        (forged_doc, "bad_hit_proof"),
        (no_round, "unknown_round"),
    ):
        reply = await post_peer(fed, "politie-test", DETAIL_PATH, doc)
        resp = response(fed, "politie-test", reply)
        assert (reply.status, resp.outcome, resp.reason) == (403, "refused", reason)
        assert JAN_CONTACT.encode() not in reply.body
    after = state_counts(fed)["politie-test"]
    assert after.get("detail_requests", 0) == before.get("detail_requests", 0) == 0
    refused = [e for e in _log(fed, "politie-test") if e["kind"] == "detail.requested"]
    assert [e["reason"] for e in refused] == ["unknown_subject", "bad_hit_proof", "unknown_round"]


async def test_a_trace_id_is_answered_once(fed: Federation) -> None:
    round_ = await hit_round(fed)
    trace = secrets.token_hex(16)
    first = detail_request(
        fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,), trace_id=trace
    )
    again = detail_request(
        fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,), trace_id=trace
    )
    assert (
        response(
            fed, "politie-test", await post_peer(fed, "politie-test", DETAIL_PATH, first)
        ).outcome
        == "answered"
    )
    reply = await post_peer(fed, "politie-test", DETAIL_PATH, again)
    assert response(fed, "politie-test", reply).reason == "duplicate_request"


async def test_malformed_requests_get_problem_json(fed: Federation) -> None:
    round_ = await hit_round(fed)
    good = detail_request(fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,))
    payload = dict(good.payload, categories=[CONTACT, CONTACT])
    doubled = jws.sign(DETAIL_REQUEST_TYP, payload, _key(fed, "vh-test"))
    for body in (b"{", json.dumps(doubled.to_json()).encode()):
        reply = await post_peer(fed, "politie-test", DETAIL_PATH, body)
        assert reply.status == 400
        assert reply.content_type == "application/problem+json"
        assert reply.json()["type"].endswith("/malformed_message")


# --- approval by the liaison ----------------------------------------------------------------


async def test_pending_category_waits_for_the_liaison_then_is_delivered_on_poll(
    fed: Federation,
) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT, ANTECEDENTS))
    trace = resp.trace_id
    status, inbox = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    assert status == 200
    (item,) = inbox["requests"]
    assert (item["requester"], item["trace_id"], item["refs"]) == ("vh-test", trace, ["BVH-1"])
    assert JAN_ANTECEDENTS not in json.dumps(inbox)
    # Before approval the poll delivers the contact again, not the antecedents.
    reply = await post_peer(
        fed, "politie-test", DETAIL_POLL_PATH, poll_request(fed, "vh-test", "politie-test", trace)
    )
    polled = response(fed, "politie-test", reply)
    assert statuses(polled)[ANTECEDENTS] == ("pending", None)
    assert opened(fed, "vh-test", polled) == {CONTACT: [JAN_CONTACT]}
    status, decided = await fed.api(
        "politie-test",
        "POST",
        f"{LIAISON}/requests/vh-test/{trace}/approve",
        role="liaison",
        json={"categories": [ANTECEDENTS]},
    )
    assert status == 200, decided
    cats = {c["category"]: c for c in decided["categories"]}
    assert cats[ANTECEDENTS]["status"] == "delivered"
    assert cats[ANTECEDENTS]["rule"] == "liaison-approved"
    assert cats[ANTECEDENTS]["decided_by"] == "liaison-politie-test"
    reply = await post_peer(
        fed, "politie-test", DETAIL_POLL_PATH, poll_request(fed, "vh-test", "politie-test", trace)
    )
    polled = response(fed, "politie-test", reply)
    assert opened(fed, "vh-test", polled) == {
        CONTACT: [JAN_CONTACT],
        ANTECEDENTS: [JAN_ANTECEDENTS],
    }
    approved = [e for e in _log(fed, "politie-test") if e["kind"] == "detail.approved"]
    assert [(e["actor"], e["data"]["category"]) for e in approved] == [
        ("liaison-politie-test", ANTECEDENTS)
    ]
    _, inbox = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    assert inbox["requests"] == []


async def test_approving_twice_or_unknown_requests_are_clear_errors_and_change_nothing(
    fed: Federation,
) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (ANTECEDENTS,))
    path = f"{LIAISON}/requests/vh-test/{resp.trace_id}"
    status, _ = await fed.api("politie-test", "POST", path + "/approve", role="liaison")
    assert status == 200
    before = state_counts(fed)["politie-test"]
    log_size = len(_log(fed, "politie-test"))
    for method_path, body, code, problem in (
        (path + "/approve", None, 409, "already_decided"),
        (path + "/deny", {"reason": "toch niet"}, 409, "already_decided"),
        (f"{LIAISON}/requests/vh-test/{'0' * 32}/approve", None, 404, "unknown_request"),
        (path + "/deny", {}, 400, "invalid_input"),
        (path + "/approve", {"categories": ["x" * 200]}, 400, "invalid_input"),
    ):
        status, problem_body = await fed.api(
            "politie-test", "POST", method_path, role="liaison", json=body
        )
        assert (status, problem_body["type"].rsplit("/", 1)[1]) == (code, problem)
    assert state_counts(fed)["politie-test"] == before
    assert len(_log(fed, "politie-test")) == log_size
    # Other roles may not decide.
    status, _ = await fed.api("politie-test", "POST", path + "/approve", role="coordinator")
    assert status == 403


async def test_liaison_denial_is_final_and_names_the_reason(fed: Federation) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (ANTECEDENTS,))
    status, _decided = await fed.api(
        "politie-test",
        "POST",
        f"{LIAISON}/requests/vh-test/{resp.trace_id}/deny",
        role="liaison",
        json={"reason": "Lopend onderzoek"},
    )
    assert status == 200
    reply = await post_peer(
        fed,
        "politie-test",
        DETAIL_POLL_PATH,
        poll_request(fed, "vh-test", "politie-test", resp.trace_id),
    )
    polled = response(fed, "politie-test", reply)
    (cat,) = polled.categories or ()
    assert (cat.status, cat.rule, cat.reason, cat.reason_detail) == (
        "denied",
        "liaison-denied",
        "denied_by_liaison",
        "Lopend onderzoek",
    )
    assert polled.sealed is None
    assert JAN_ANTECEDENTS.encode() not in reply.body


# --- the convenant ends: the flow stops at once ---------------------------------------------


async def _poll(fed: Federation, partner: str, trace_id: str) -> tuple[PeerReply, DetailResponse]:
    reply = await post_peer(
        fed, partner, DETAIL_POLL_PATH, poll_request(fed, "vh-test", partner, trace_id)
    )
    return reply, response(fed, partner, reply)


async def _all_denied_and_nothing_sent(fed: Federation, trace_id: str, reason: str) -> None:
    reply, polled = await _poll(fed, "politie-test", trace_id)
    assert statuses(polled) == {CONTACT: ("denied", reason), ANTECEDENTS: ("denied", reason)}
    assert polled.sealed is None
    assert JAN_CONTACT.encode() not in reply.body
    # The liaison can no longer approve what the convenant stopped.
    status, body = await fed.api(
        "politie-test",
        "POST",
        f"{LIAISON}/requests/vh-test/{trace_id}/approve",
        role="liaison",
    )
    assert (status, body["type"].rsplit("/", 1)[1]) == (409, "already_decided")


async def test_expiry_stops_delivery_and_approval_to_the_second(tmp_path: Path) -> None:
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    fed = await detail_federation(tmp_path, valid_until=toml_time(ends))
    try:
        _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT, ANTECEDENTS))
        # The clocks stand still while the poll runs: a second before the end stays one,
        # however long the machine takes.
        for node in fed.nodes.values():
            node.clock.set(ends - timedelta(seconds=1))
        _, polled = await _poll(fed, "politie-test", resp.trace_id)
        assert statuses(polled)[CONTACT] == ("delivered", None)  # a second before the end
        for node in fed.nodes.values():
            node.clock.set(ends)  # valid_until itself is past the end
        await _all_denied_and_nothing_sent(fed, resp.trace_id, "convenant_not_in_force")
    finally:
        await fed.close()


async def test_a_superseding_version_stops_the_flow_under_the_old_one(fed: Federation) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT, ANTECEDENTS))
    fed.sign_and_install(detail_convenant_toml(version=2))
    await _all_denied_and_nothing_sent(fed, resp.trace_id, "convenant_not_in_force")


async def test_a_withdrawal_stops_the_flow(fed: Federation) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT, ANTECEDENTS))
    withdraw(fed, "vh-test")
    await _all_denied_and_nothing_sent(fed, resp.trace_id, "party_withdrawn")


async def test_new_requests_under_a_superseded_version_are_refused(fed: Federation) -> None:
    round_ = await hit_round(fed)
    fed.sign_and_install(detail_convenant_toml(version=2))
    doc = detail_request(fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,))
    reply = await post_peer(fed, "politie-test", DETAIL_PATH, doc)
    resp = response(fed, "politie-test", reply)
    assert (resp.outcome, resp.reason) == ("refused", "convenant_not_in_force")
    assert "superseded" in (resp.reason_detail or "")


# --- hit notices ----------------------------------------------------------------------------


def hit_notice(
    fed: Federation,
    requester: str,
    partner: str,
    round_trace_id: str,
    proofs: tuple[str, ...],
    purpose: str = PURPOSE,
) -> jws.SignedDocument:
    notice = HitNotice(
        requester=requester,
        partner=partner,
        convenant_id=CONVENANT_ID,
        convenant_version=1,
        purpose=purpose,
        case_ref="CASUS-NOTICE",
        requesting_user="coordinator",
        round_trace_id=round_trace_id,
        hit_proofs=proofs,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=fed.nodes[requester].clock.now(),
    )
    return jws.sign(HIT_NOTICE_TYP, notice.wire(), _key(fed, requester))


async def test_hit_notice_reaches_the_liaison_inbox_only_where_a_rule_asks(
    fed: Federation,
) -> None:
    round_ = await hit_round(fed, subjects=[JAN_BSN, PIET_BSN])
    # The requester's client sent its own notice for this round already: one notice per
    # registration per round, so this second one is accepted but adds none.
    proofs = (proof_for(fed, "politie-test", JAN_BSN), proof_for(fed, "politie-test", PIET_BSN))
    reply = await post_peer(
        fed,
        "politie-test",
        HIT_NOTICE_PATH,
        hit_notice(fed, "vh-test", "politie-test", round_["trace_id"], proofs),
    )
    ack = open_signed(fed, "politie-test", reply.body, HIT_NOTICE_RESPONSE_TYP)
    assert (ack["outcome"], ack["noticed"]) == ("accepted", 2)
    path = f"{LIAISON}/inbox?round={round_['trace_id']}"
    _, inbox = await fed.api("politie-test", "GET", path, role="liaison")
    assert sorted(tuple(n["refs"]) for n in inbox["hit_notices"]) == [("BVH-1",), ("BVH-2",)]
    assert {n["case_ref"] for n in inbox["hit_notices"]} == {"CASUS-2026-001"}
    # om-test's only rule does not ask for notices.
    om_proof = (proof_for(fed, "om-test", JAN_BSN),)
    reply = await post_peer(
        fed,
        "om-test",
        HIT_NOTICE_PATH,
        hit_notice(fed, "vh-test", "om-test", round_["trace_id"], om_proof),
    )
    ack = open_signed(fed, "om-test", reply.body, HIT_NOTICE_RESPONSE_TYP)
    assert (ack["outcome"], ack["reason"]) == ("refused", "no_notice_rule")
    received = [
        e
        for e in _log(fed, "politie-test")
        if e["kind"] == "hit_notice.received" and e["data"]["case_ref"] == "CASUS-NOTICE"
    ]
    pseudonym_key = fed.nodes["politie-test"].ctx.keys.pseudonym_key()
    jan = log.pseudonym(pseudonym_key, subject_key(parse_identifier(JAN_BSN)))
    assert jan in received[0]["subjects"]


# --- detail from the source system at request time (§14.10) --------------------------------


async def test_detail_missing_from_the_registry_comes_from_the_source_system(
    fed: Federation,
) -> None:
    calls: list[Any] = []
    answer: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        calls.append(await request.json())
        return web.json_response(answer["body"])

    app = web.Application()
    app.router.add_post("/detail", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = bound_socket()
    await web.SockSite(runner, sock).start()
    try:
        node = fed.nodes["politie-test"]
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/detail"
        node.ctx.cfg = node.ctx.cfg.model_copy(
            update={"details": DetailsConfig(source_url=url, source_max_bytes=4096)}
        )
        piet_contact = "Wijkagent P. Jansen, 06-87654321"
        answer["body"] = {"details": [{"ref": "BVH-2", "category": CONTACT, "body": piet_contact}]}
        _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT,), identifier=PIET_BSN)
        assert opened(fed, "vh-test", resp) == {CONTACT: [piet_contact]}
        assert calls[-1]["refs"] == ["BVH-2"]
        assert calls[-1]["categories"] == [CONTACT]
        assert piet_contact.encode() not in stored_bytes(fed, "politie-test")
        # Jan's text is in the registry: the source is not asked.
        asked = len(calls)
        _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT,))
        assert opened(fed, "vh-test", resp) == {CONTACT: [JAN_CONTACT]}
        assert len(calls) == asked
        # An oversized answer: nothing is sent, the category is unavailable with a reason.
        answer["body"] = {
            "details": [{"ref": "BVH-2", "category": CONTACT, "body": "x" * 3000}] * 3
        }
        reply, resp = await ask(fed, "vh-test", "politie-test", (CONTACT,), identifier=PIET_BSN)
        assert statuses(resp) == {CONTACT: ("unavailable", "source_too_large")}
        assert resp.sealed is None
        assert b"xxxxxxxxxx" not in reply.body
        assert b"xxxxxxxxxx" not in stored_bytes(fed, "politie-test")
    finally:
        await runner.cleanup()


# --- the tag → subject index follows the registry (§14.3 step 5) ---------------------------


async def test_the_subject_index_follows_changes_removals_and_scope(fed: Federation) -> None:
    round_ = await hit_round(fed, subjects=[JAN_BSN, PIET_BSN])
    trace = round_["trace_id"]

    async def reason_for(identifier: dict[str, Any]) -> str | None:
        doc = detail_request(
            fed, "vh-test", "politie-test", trace, (CONTACT,), identifier=identifier
        )
        return response(
            fed, "politie-test", await post_peer(fed, "politie-test", DETAIL_PATH, doc)
        ).reason

    assert await reason_for(PIET_BSN) is None
    # Piet's registration moves to a theme outside the convenant's scope for politie.
    fed.register("politie-test", {"ref": "BVH-2", "themes": ["verkeer"], "identifiers": [PIET_BSN]})
    assert await reason_for(PIET_BSN) == "unknown_subject"
    # Back in scope under another ref, then removed altogether.
    fed.register(
        "politie-test", {"ref": "BVH-3", "themes": ["veelplegers"], "identifiers": [PIET_BSN]}
    )
    assert await reason_for(PIET_BSN) is None
    apply_changes(fed.nodes["politie-test"].ctx, [], ["BVH-2", "BVH-3"])
    assert await reason_for(PIET_BSN) == "unknown_subject"
    # A database from before the index: the first request that misses completes it.
    fed.nodes["politie-test"].ctx.conn.execute("DELETE FROM tag_keys")
    assert await reason_for(JAN_BSN) is None
    (n,) = fed.nodes["politie-test"].ctx.conn.execute("SELECT COUNT(*) FROM tag_keys").fetchone()
    (members,) = (
        fed.nodes["politie-test"]
        .ctx.conn.execute("SELECT COUNT(*) FROM tag_set_members")
        .fetchone()
    )
    assert n == members > 0


async def test_a_text_gone_at_poll_time_is_unavailable_for_that_answer_only(
    fed: Federation,
) -> None:
    _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT,))
    assert statuses(resp) == {CONTACT: ("delivered", None)}
    apply_changes(fed.nodes["politie-test"].ctx, [], ["BVH-1"])
    _, polled = await _poll(fed, "politie-test", resp.trace_id)
    assert statuses(polled) == {CONTACT: ("unavailable", "no_detail_on_record")}
    assert polled.sealed is None
    (stored,) = (
        fed.nodes["politie-test"]
        .ctx.conn.execute(
            "SELECT status FROM detail_categories WHERE trace_id = ?", (resp.trace_id,)
        )
        .fetchone()
    )
    assert stored == "delivered"


async def test_a_refused_hit_notice_logs_no_subject_even_when_some_proofs_resolved(
    fed: Federation,
) -> None:
    round_ = await hit_round(fed, subjects=[JAN_BSN, PIET_BSN])
    _, before = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    # Jan's proof resolves; Piet's member tag with invented remaining bytes does not.
    real = jws.b64u_decode(proof_for(fed, "politie-test", PIET_BSN))
    forged = jws.b64u_encode(real[:16] + secrets.token_bytes(48))
    proofs = (proof_for(fed, "politie-test", JAN_BSN), forged)
    reply = await post_peer(
        fed,
        "politie-test",
        HIT_NOTICE_PATH,
        hit_notice(fed, "vh-test", "politie-test", round_["trace_id"], proofs),
    )
    ack = open_signed(fed, "politie-test", reply.body, HIT_NOTICE_RESPONSE_TYP)
    assert (ack["outcome"], ack["reason"], ack["noticed"]) == ("refused", "bad_hit_proof", None)
    _, after = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    assert after["hit_notices"] == before["hit_notices"]
    [entry] = [
        e
        for e in _log(fed, "politie-test")
        if e["kind"] == "hit_notice.received" and e["outcome"] == "refused"
    ]
    assert entry["reason"] == "bad_hit_proof"
    assert entry["subjects"] == []
    assert entry["data"] == {"case_ref": "CASUS-NOTICE", "noticed": 0, "rule": "hit-proof"}


async def test_a_hit_notice_from_a_party_no_notifying_rule_serves_is_refused(
    fed: Federation,
) -> None:
    # politie-test's own round (it asks itself too), then a notice to itself: its
    # notify_hit rule lists vh-test as the only recipient.
    round_ = await hit_round(fed, "politie-test")
    _, before = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    reply = await post_peer(
        fed,
        "politie-test",
        HIT_NOTICE_PATH,
        hit_notice(
            fed,
            "politie-test",
            "politie-test",
            round_["trace_id"],
            (proof_for(fed, "politie-test", JAN_BSN),),
        ),
    )
    ack = open_signed(fed, "politie-test", reply.body, HIT_NOTICE_RESPONSE_TYP)
    assert (reply.status, ack["outcome"], ack["reason"]) == (403, "refused", "no_notice_rule")
    _, after = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    assert after["hit_notices"] == before["hit_notices"]


async def test_a_requester_card_with_another_encryption_key_gets_nothing_sealed(
    fed: Federation,
) -> None:
    # vh-test's card at politie now carries an encryption key the convenant does not name
    # (say, an attacker's): politie cannot know whom it would be writing to.
    round_ = await hit_round(fed)
    _, first = await ask(fed, "vh-test", "politie-test", (CONTACT,))
    vh = fed.nodes["vh-test"].ctx
    other = dataclasses.replace(vh.keys, encryption=nacl.public.PrivateKey.generate())
    card = issue_card(vh.cfg, other, vh.clock.now())
    _, outcome = admin.add_peer(fed.nodes["politie-test"].ctx, card.to_json())
    assert outcome == "updated"
    doc = detail_request(fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,))
    reply = await post_peer(fed, "politie-test", DETAIL_PATH, doc)
    resp = response(fed, "politie-test", reply)
    assert (reply.status, resp.outcome, resp.reason) == (403, "refused", "unknown_requester")
    assert resp.sealed is None
    assert JAN_CONTACT.encode() not in reply.body
    refused = [e for e in _log(fed, "politie-test") if e["kind"] == "detail.requested"][-1]
    assert (refused["reason"], refused["data"]["rule"]) == ("unknown_requester", "recipient-key")
    # A poll of the earlier request is refused the same way: nothing is sealed again.
    poll = poll_request(fed, "vh-test", "politie-test", first.trace_id)
    reply = await post_peer(fed, "politie-test", DETAIL_POLL_PATH, poll)
    polled = response(fed, "politie-test", reply)
    assert (reply.status, polled.outcome, polled.reason) == (403, "refused", "unknown_requester")
    assert polled.sealed is None


async def test_a_hit_notice_for_a_purpose_the_rule_does_not_serve_is_refused(
    fed_two_purposes: Federation,
) -> None:
    fed = fed_two_purposes
    round_ = await hit_round(fed, purpose=OTHER_PURPOSE)
    proofs = (proof_for(fed, "politie-test", JAN_BSN),)
    doc = hit_notice(fed, "vh-test", "politie-test", round_["trace_id"], proofs, OTHER_PURPOSE)
    reply = await post_peer(fed, "politie-test", HIT_NOTICE_PATH, doc)
    ack = open_signed(fed, "politie-test", reply.body, HIT_NOTICE_RESPONSE_TYP)
    assert (ack["outcome"], ack["reason"]) == ("refused", "no_notice_rule")


async def test_old_records_go_after_record_days_unless_delivered_detail_still_needs_them(
    fed: Federation,
) -> None:
    node = fed.nodes["politie-test"]
    node.ctx.cfg = node.ctx.cfg.model_copy(
        update={"details": node.ctx.cfg.details.model_copy(update={"record_days": 10})}
    )
    _, resp = await ask(fed, "vh-test", "politie-test", (CONTACT, ANTECEDENTS))
    conn = node.ctx.conn
    assert conn.execute("SELECT COUNT(*) FROM hit_notices").fetchone()[0] == 1
    assert purge_records(node.ctx) == (0, 0)
    # Past record_days: the notice goes; the request stays while its contact (30 days)
    # may still be held by the requester.
    node.clock.set(fed.started_at + timedelta(days=20))
    assert purge_records(node.ctx) == (0, 1)
    assert conn.execute("SELECT COUNT(*) FROM detail_requests").fetchone()[0] == 1
    node.clock.set(fed.started_at + timedelta(days=31))
    assert purge_records(node.ctx) == (1, 0)
    for table in ("detail_requests", "detail_categories", "hit_notices"):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
    _, inbox = await fed.api("politie-test", "GET", f"{LIAISON}/inbox", role="liaison")
    assert inbox == {"requests": [], "hit_notices": [], "hit_notices_total": 0, "next_before": None}
    purged = [e for e in _log(fed, "politie-test") if e["kind"] == "detail.records_purged"]
    assert [e["data"] for e in purged] == [
        {"requests": 0, "hit_notices": 1},
        {"requests": 1, "hit_notices": 0},
    ]
    assert log.verify(conn, "politie-test", node.ctx.keys.signing_public).ok
    # The log still knows the exchange happened.
    assert [e["trace_id"] for e in _log(fed, "politie-test") if e["kind"] == "detail.requested"]
    assert resp.trace_id in {e["trace_id"] for e in _log(fed, "politie-test")}


async def test_detail_messages_are_rate_limited_per_requester(fed: Federation) -> None:
    node = fed.nodes["politie-test"]
    round_ = await hit_round(fed)  # its hit notice counts too: start the bucket after it
    node.ctx.detail_limiter = RateLimiter(per_minute=1, burst=2)
    replies = []
    for _ in range(3):
        doc = detail_request(fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,))
        replies.append(await post_peer(fed, "politie-test", DETAIL_PATH, doc))
    assert [r.status for r in replies] == [200, 200, 429]
    last = response(fed, "politie-test", replies[-1])
    assert (last.outcome, last.reason, last.sealed) == ("refused", "rate_limited", None)
    # A poll counts too; the evaluation bucket is untouched (another round still works).
    first = response(fed, "politie-test", replies[0])
    reply, polled = await _poll(fed, "politie-test", first.trace_id)
    assert (reply.status, polled.reason) == (429, "rate_limited")
    again = await hit_round(fed)
    assert {p["partner"]: p["status"] for p in again["partners"]}["politie-test"] == "hit"
