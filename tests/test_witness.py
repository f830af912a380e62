"""Witnesses for the asking node (docs/protocol.md §9.5).

A node that only asks — the Veiligheidshuis, whose log records who asked about whom —
used to get no outside witness: heads travelled only with answers (§9.3). Now every
request carries the requester's signed tree head; the partner verifies it as a head of
the requester, keeps it with the heads of answers and detects a second root for a size
it holds, and it can cross-check the requester (§9.4). Here vh-test only asks (no one
asks it), rewrites its history by restoring an old copy of its database, and is caught:
by the conflicting head in its next request, and by a cross-check from a partner.
"""

from __future__ import annotations

from typing import Any

from node.flows.cross_check import CONSISTENCY_PATH, cross_check
from node.protocol import jws
from node.protocol.bekendheid import (
    EVALUATE_REQUEST_TYP,
    EVALUATE_RESPONSE,
    EVALUATE_RESPONSE_TYP,
    TAG_SET_RESPONSE,
    TAG_SET_RESPONSE_TYP,
    Evaluated,
    EvaluateRefused,
    TagSetRefused,
)
from node.protocol.consistency import (
    CONSISTENCY_REQUEST_TYP,
    CONSISTENCY_RESPONSE,
    CONSISTENCY_RESPONSE_TYP,
    ConsistencyProof,
    ConsistencyRequest,
)
from node.protocol.tree_head import SignedTreeHead, signed_head
from node.store import log
from tests.federation import (
    EVALUATE_PATH,
    TAG_SET_PATH,
    Federation,
    SimNode,
    evaluate_request,
    flip_signature_byte,
    jws_bytes,
    log_entries,
    open_signed,
    partner_result,
    post_peer,
    restore,
    snapshot,
    tag_set_request,
)

JAN = {"kind": "bsn", "bsn": "123456782"}
VH = "vh-test"  # the asking node: a provider no one asks
PARTNERS = ("politie-test", "om-test", "ggz-test")


def _head(node: SimNode) -> SignedTreeHead:
    newest = log.latest_head(node.ctx.conn)
    assert newest is not None
    return signed_head(newest)


def _held(fed: Federation, holder: str, peer: str) -> dict[int, bytes]:
    rows = fed.nodes[holder].ctx.conn.execute(
        "SELECT tree_size, root_hash FROM peer_tree_heads WHERE peer = ?", (peer,)
    )
    return {int(size): bytes(root) for size, root in rows}


def _conflicts(fed: Federation, holder: str, peer: str) -> int:
    row = (
        fed.nodes[holder]
        .ctx.conn.execute("SELECT COUNT(*) FROM peer_head_conflicts WHERE peer = ?", (peer,))
        .fetchone()
    )
    return int(row[0])


async def _cross_check_vh(fed: Federation, checker: str) -> str:
    assert fed.session is not None
    results = await cross_check(fed.nodes[checker].ctx, fed.session, [VH])
    return results[0].verdict


# --- an honest requester ---------------------------------------------------------------


async def test_every_partner_asked_keeps_the_requesters_head_covering_the_round(
    federation: Federation,
) -> None:
    result = await federation.query(VH, [JAN], case_ref="CASUS-W1")
    round_entry = log_entries(federation.nodes[VH], "bekendheid.round")[-1]
    for partner in PARTNERS:
        held = _held(federation, partner, VH)
        assert held, f"{partner} holds no head of the requester"
        # The head is one vh-test signed for its own log, and it covers the round's intent.
        size = max(held)
        assert size > round_entry["seq"]
        ours = log.head_at(federation.nodes[VH].ctx.conn, size)
        assert ours is not None
        assert ours.root_hash == held[size]
    assert {p["status"] for p in result["partners"]} == {"no_hit"}


async def test_a_partner_cross_checks_the_requester_that_only_asks(
    federation: Federation,
) -> None:
    # Before §9.5 a partner held no head of a node that only asks: nothing to check.
    await federation.query(VH, [JAN], case_ref="CASUS-W1")
    await federation.query(VH, [JAN], case_ref="CASUS-W2")
    assert await _cross_check_vh(federation, "om-test") == "consistent"
    checked = log_entries(federation.nodes["om-test"], "log.cross_checked")[-1]
    assert checked["counterparty"] == VH
    assert checked["outcome"] == "consistent"
    # The requester answered the consistency request and logged it (§9.4).
    served = log_entries(federation.nodes[VH], "log.consistency_served")
    assert served
    assert served[-1]["counterparty"] == "om-test"


async def test_the_checker_s_head_travels_with_its_consistency_request(
    federation: Federation,
) -> None:
    await federation.query(VH, [JAN], case_ref="CASUS-W1")
    # om-test logs more (politie asks it), a head vh-test has not seen in any answer.
    await federation.query("politie-test", [JAN], case_ref="CASUS-P1", partners=["om-test"])
    om_newest = log.latest_head(federation.nodes["om-test"].ctx.conn)
    assert om_newest is not None
    assert om_newest.tree_size not in _held(federation, VH, "om-test")
    assert await _cross_check_vh(federation, "om-test") == "consistent"
    assert _held(federation, VH, "om-test")[om_newest.tree_size] == om_newest.root_hash


# --- a requester that rewrites its history -----------------------------------------------


async def test_a_requester_that_restores_an_old_log_is_refused_forked_by_the_partners_it_asked(
    federation: Federation,
) -> None:
    await federation.query(VH, [JAN], case_ref="CASUS-0")  # tag sets synced
    before = snapshot(federation, VH)
    await federation.query(VH, [JAN], case_ref="CASUS-A")  # witnessed by every partner
    await restore(federation, VH, before)  # vh-test forgets it asked about CASUS-A

    second = await federation.query(VH, [JAN], case_ref="CASUS-B")
    for partner in PARTNERS:
        res = partner_result(second, partner)
        # The round's head has the size CASUS-A's had, with another root: the partner
        # holds both signed heads and does not answer.
        assert res["status"] == "refused", res
        assert res["reason"] == "forked_log"
        assert _conflicts(federation, partner, VH) == 1
        forked = log_entries(federation.nodes[partner], "peer.log_forked")
        assert [e["counterparty"] for e in forked] == [VH]
        refused = log_entries(federation.nodes[partner], "bekendheid.refused")[-1]
        assert refused["reason"] == "forked_log"
        assert refused["data"]["rule"] == "witness"
        assert refused["data"]["case_ref"] == "CASUS-B"
    # Asking itself it has no witness: its own answer is unaffected.
    assert partner_result(second, VH)["status"] == "no_hit"
    # A cross-check by a partner that holds the two heads says so without asking.
    assert await _cross_check_vh(federation, "om-test") == "forked"


async def test_a_requester_cut_back_is_truncated_at_a_partner_s_cross_check(
    federation: Federation,
) -> None:
    await federation.query(VH, [JAN], case_ref="CASUS-0")
    before = snapshot(federation, VH)
    await federation.query(VH, [JAN], case_ref="CASUS-A")
    await federation.query(VH, [JAN], case_ref="CASUS-B")
    await restore(federation, VH, before)  # the two rounds are gone, heads and all
    assert await _cross_check_vh(federation, "om-test") == "truncated"
    checked = log_entries(federation.nodes["om-test"], "log.cross_checked")[-1]
    assert checked["outcome"] == "truncated"
    assert checked["data"]["held_size"] > checked["data"]["current_size"]


async def test_a_requester_that_redoes_different_work_is_inconsistent(
    federation: Federation,
) -> None:
    await federation.query(VH, [JAN], case_ref="CASUS-0")
    before = snapshot(federation, VH)
    await federation.query(VH, [JAN], case_ref="CASUS-A")  # om-test witnesses this
    await restore(federation, VH, before)
    # Other work since, past the size om-test holds, never showing om-test a head.
    for i in range(3):
        await federation.query(VH, [JAN], case_ref=f"CASUS-X{i}", partners=["politie-test"])
    assert await _cross_check_vh(federation, "om-test") == "inconsistent"


# --- what a partner does with the head in a request -----------------------------------------


def _evaluate_with_head(fed: Federation, head: Any, partner: str = "politie-test") -> Any:
    return evaluate_request(fed, VH, partner, tree_head=head)


async def test_a_head_that_is_not_the_requester_s_is_refused_and_kept_nowhere(
    federation: Federation,
) -> None:
    # Someone else's head (om-test's, signed by om-test) under vh-test's request.
    doc = _evaluate_with_head(federation, _head(federation.nodes["om-test"]))
    reply = await post_peer(federation, "politie-test", EVALUATE_PATH, doc)
    assert reply.status == 403
    payload = open_signed(federation, "politie-test", reply.body, EVALUATE_RESPONSE_TYP)
    resp = EVALUATE_RESPONSE.validate_python(payload)
    assert isinstance(resp, EvaluateRefused)
    assert resp.reason == "bad_tree_head"
    assert resp.request_hash == doc.digest()
    assert resp.tree_head is not None  # an authenticated requester gets the partner's head
    last = log_entries(federation.nodes["politie-test"])[-1]
    assert last["kind"] == "bekendheid.refused"
    assert (last["reason"], last["counterparty"]) == ("bad_tree_head", VH)
    assert last["data"]["rule"] == "witness"
    assert _held(federation, "politie-test", VH) == {}
    assert _held(federation, "politie-test", "om-test") == {}


async def test_a_tag_set_request_carries_the_head_too(federation: Federation) -> None:
    good = tag_set_request(federation, VH, "politie-test", tree_head=_head(federation.nodes[VH]))
    reply = await post_peer(federation, "politie-test", TAG_SET_PATH, good)
    assert reply.status == 200, reply.body[:300]
    assert len(_held(federation, "politie-test", VH)) == 1
    bad = tag_set_request(
        federation, VH, "politie-test", tree_head=_head(federation.nodes["om-test"])
    )
    reply = await post_peer(federation, "politie-test", TAG_SET_PATH, bad)
    assert reply.status == 403
    payload = open_signed(federation, "politie-test", reply.body, TAG_SET_RESPONSE_TYP)
    resp = TAG_SET_RESPONSE.validate_python(payload)
    assert isinstance(resp, TagSetRefused)
    assert resp.reason == "bad_tree_head"
    last = log_entries(federation.nodes["politie-test"])[-1]
    assert (last["kind"], last["reason"]) == ("tag_set.refused", "bad_tree_head")


async def test_an_unauthenticated_request_s_head_is_not_stored(federation: Federation) -> None:
    doc = _evaluate_with_head(federation, _head(federation.nodes[VH]))
    body = flip_signature_byte(jws.canonical(doc.to_json()))
    reply = await post_peer(federation, "politie-test", EVALUATE_PATH, body)
    assert reply.status == 403
    payload = open_signed(federation, "politie-test", reply.body, EVALUATE_RESPONSE_TYP)
    assert payload["reason"] == "bad_signature"
    assert _held(federation, "politie-test", VH) == {}
    # A replay of a request that was answered: its head was kept once, not again.
    good = _evaluate_with_head(federation, _head(federation.nodes[VH]))
    assert (await post_peer(federation, "politie-test", EVALUATE_PATH, good)).status == 200
    rows = federation.nodes["politie-test"].ctx.conn.execute(
        "SELECT COUNT(*) FROM peer_tree_heads WHERE peer = ?", (VH,)
    )
    assert rows.fetchone()[0] == 1
    replay = await post_peer(federation, "politie-test", EVALUATE_PATH, good)
    assert (
        open_signed(federation, "politie-test", replay.body, EVALUATE_RESPONSE_TYP)["reason"]
        == "replayed_request"
    )


async def test_a_request_without_a_head_is_answered_as_before(federation: Federation) -> None:
    # A requester of an earlier revision sends no head (absent, or null): it is answered,
    # and the partner keeps nothing for it.
    for absent in (True, False):
        doc = evaluate_request(federation, VH, "politie-test")
        payload = dict(doc.payload)
        assert payload["tree_head"] is None
        if absent:
            del payload["tree_head"]
        signed = jws.sign(EVALUATE_REQUEST_TYP, payload, federation.nodes[VH].ctx.keys.signing)
        reply = await post_peer(federation, "politie-test", EVALUATE_PATH, jws_bytes(signed))
        assert reply.status == 200, reply.body[:300]
        resp = EVALUATE_RESPONSE.validate_python(
            open_signed(federation, "politie-test", reply.body, EVALUATE_RESPONSE_TYP)
        )
        assert isinstance(resp, Evaluated)
    assert _held(federation, "politie-test", VH) == {}


async def test_a_consistency_request_with_a_conflicting_head_is_refused_forked(
    federation: Federation,
) -> None:
    await federation.query(VH, [JAN], case_ref="CASUS-A")
    held = _held(federation, "om-test", VH)
    size = max(held)
    # A head of that size with another root, signed by vh-test's key: a second log.
    vh = federation.nodes[VH]
    payload = {
        "node": VH,
        "tree_size": size,
        "root_hash": jws.b64u_encode(b"\x07" * 32),
        "signed_at": "2026-12-03T12:00:00Z",
    }
    second = jws.sign("vhnode-tree-head/v1", payload, vh.ctx.keys.signing)
    req = ConsistencyRequest(
        requester=VH,
        partner="om-test",
        from_size=1,
        nonce=jws.b64u_encode(b"\x01" * 16),
        issued_at=vh.clock.now(),
        tree_head=SignedTreeHead.model_validate(second.to_json()),
    )
    doc = jws.sign(CONSISTENCY_REQUEST_TYP, req.wire(), vh.ctx.keys.signing)
    reply = await post_peer(federation, "om-test", CONSISTENCY_PATH, doc)
    assert reply.status == 403
    resp = CONSISTENCY_RESPONSE.validate_python(
        open_signed(federation, "om-test", reply.body, CONSISTENCY_RESPONSE_TYP)
    )
    assert not isinstance(resp, ConsistencyProof)
    assert resp.reason == "forked_log"
    assert _conflicts(federation, "om-test", VH) == 1
    last = log_entries(federation.nodes["om-test"])[-1]
    assert (last["kind"], last["reason"]) == ("log.consistency_refused", "forked_log")
