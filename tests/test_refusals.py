"""Fail closed: every reason a partner refuses, as a signed, logged refusal.

Each refusal is checked the same way (``_assert_signed_refusal``): the HTTP answer is a
JWS signed by the partner's key, its payload says ``outcome: refused`` with the expected
reason and names the request it answers, and the partner's log holds a
``bekendheid.refused`` (or ``tag_set.refused``) entry with that reason — or, for a
request that failed §6.6 steps 3–6 (``UNAUTHENTICATED_CODES``), no entry of its own but a
count in the next ``peer.unauthenticated`` entry. Requests are
crafted and signed here, then POSTed to real nodes; the tables hold one small case per
refusal, like python-tuf's key-rotation tables.

The last part tests the pure pieces the partner decides with: the convenant policy
(``decide_evaluation`` / ``decide_tag_set``) and the evaluation rate limit.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from node.errors import REFUSAL_CODES, UNAUTHENTICATED_CODES
from node.flows import admin, unauthenticated
from node.keys import NodeKeys
from node.policy.convenant import ConvenantState, Decision, decide_evaluation, decide_tag_set
from node.policy.rate_limit import RateLimiter, TokenBucket
from node.protocol import jws, oprf
from node.protocol.bekendheid import (
    EVALUATE_RESPONSE,
    EVALUATE_RESPONSE_TYP,
    TAG_SET_RESPONSE,
    TAG_SET_RESPONSE_TYP,
    EvaluateRefused,
    TagSetRefused,
)
from node.protocol.convenant import draft_from_toml, parse_convenant
from node.protocol.withdrawal import Withdrawal
from tests.federation import (
    BSN_KEY,
    CONVENANT_ID,
    DEFAULT_PARTIES,
    EVALUATE_PATH,
    JOSE,
    OTHER_PURPOSE,
    PURPOSE,
    TAG_SET_PATH,
    Federation,
    PeerReply,
    convenant_toml,
    evaluate_request,
    flip_signature_byte,
    jws_bytes,
    log_entries,
    open_signed,
    outsider,
    partner_result,
    post_peer,
    resign,
    standard_federation,
    statuses,
    tag_set_request,
    toml_time,
    withdraw,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
OUTSIDER = "gemeente-test"
SHORT = "vh-test-kort"  # a convenant that ends tomorrow
FUTURE = "vh-test-toekomst"  # a convenant that starts next year


# --- checking one refusal ----------------------------------------------------------------


def _assert_signed_refusal(
    fed: Federation,
    partner: str,
    request: jws.SignedDocument,
    reply: PeerReply,
    reason: str,
    *,
    http_status: int = 403,
    tag_set: bool = False,
) -> dict[str, Any]:
    """The reply is a refusal with ``reason`` signed by ``partner``, bound to ``request``,
    and logged at ``partner``. Returns the partner's log entry for it."""
    assert reply.status == http_status, reply.body[:300]
    assert reply.content_type == JOSE
    typ = TAG_SET_RESPONSE_TYP if tag_set else EVALUATE_RESPONSE_TYP
    payload = open_signed(fed, partner, reply.body, typ)  # raises unless partner signed it
    adapter = TAG_SET_RESPONSE if tag_set else EVALUATE_RESPONSE
    resp = adapter.validate_python(payload)
    assert isinstance(resp, TagSetRefused | EvaluateRefused)  # the refusal model, by outcome
    assert resp.outcome == "refused"
    assert resp.reason == reason
    assert resp.reason_detail
    assert resp.partner == partner
    assert resp.request_hash == request.digest()
    if isinstance(resp, EvaluateRefused):
        assert resp.evaluated_elements is None
        assert resp.proof is None
        assert resp.tag_set is None
    else:
        assert resp.head is None
        assert resp.added is None
    # A head only for an authenticated requester (§9.3): its size tells the node's activity.
    assert (resp.tree_head is None) == (reason in UNAUTHENTICATED_CODES)
    if reason in UNAUTHENTICATED_CODES:
        return _assert_counted_not_logged(fed, partner, request, reason)
    kind = "tag_set.refused" if tag_set else "bekendheid.refused"
    last = log_entries(fed.nodes[partner])[-1]
    assert last["kind"] == kind
    assert last["outcome"] == "refused"
    assert last["reason"] == reason
    assert last["counterparty"] == request.payload["requester"]
    return last


def _assert_counted_not_logged(
    fed: Federation, partner: str, request: jws.SignedDocument, reason: str
) -> dict[str, Any]:
    """§6.6 steps 3–6 failed: nothing of the request was logged; once the window is
    flushed, one aggregate entry counts it under the claimed requester (or, for a name no
    peer has, under none) and holds none of the request's text."""
    node = fed.nodes[partner]
    before = log_entries(node)
    assert all(e["kind"] not in ("bekendheid.refused", "tag_set.refused") for e in before)
    assert node.ctx.unauthenticated.pending() == 1
    assert unauthenticated.flush(node.ctx, everything=True) == 1
    after = log_entries(node)
    assert len(after) == len(before) + 1
    entry = after[-1]
    assert entry["kind"] == "peer.unauthenticated"
    assert entry["counterparty"] is None
    assert entry["actor"] is None
    assert entry["data"]["reasons"] == {reason: 1}
    claimed = request.payload["requester"]
    known = claimed == partner or claimed in node.ctx.trust().peers_by_id
    assert entry["data"]["claimed"] == (claimed if known else None)
    text = jsonlib.dumps(after[len(before) :])
    assert request.payload.get("case_ref", "<none>") not in text
    assert request.payload["nonce"] not in text
    return entry


# --- stages: the state a refusal needs ------------------------------------------------------


Stage = Callable[[Federation], None]


def _unknown_outsider(fed: Federation) -> None:
    outsider(fed, OUTSIDER)  # politie-test never adds its card


def _known_outsider(fed: Federation) -> None:
    outsider(fed, OUTSIDER, known_by=["politie-test"])


def _revoke_requester(fed: Federation) -> None:
    admin.revoke_peer(fed.nodes["politie-test"].ctx, "vh-test")


def _install_v2(fed: Federation) -> None:
    fed.sign_and_install(convenant_toml(DEFAULT_PARTIES, version=2))


def _expired_convenant(fed: Federation) -> None:
    tomorrow = fed.started_at + timedelta(days=1)
    fed.sign_and_install(
        convenant_toml(DEFAULT_PARTIES, convenant_id=SHORT, valid_until=toml_time(tomorrow))
    )
    for node_id in ("vh-test", "politie-test"):  # both clocks two days on: both agree
        fed.nodes[node_id].clock.set(fed.started_at + timedelta(days=2))


def _future_convenant(fed: Federation) -> None:
    next_year = fed.started_at + timedelta(days=365)
    fed.sign_and_install(
        convenant_toml(DEFAULT_PARTIES, convenant_id=FUTURE, valid_from=toml_time(next_year))
    )


def _requester_clock_ahead(fed: Federation) -> None:
    fed.nodes["vh-test"].clock.set(fed.started_at + timedelta(minutes=10))


def _requester_clock_behind(fed: Federation) -> None:
    fed.nodes["vh-test"].clock.set(fed.started_at - timedelta(minutes=10))


def _cards_expired(fed: Federation) -> None:
    # The convenant runs to 2099, but peer cards are valid for 730 days: three years on,
    # the partner no longer accepts the requester's card, whatever the convenant says.
    for node_id in ("vh-test", "politie-test"):
        fed.nodes[node_id].clock.set(fed.started_at + timedelta(days=3 * 365))


def _partner_clock_slow(fed: Federation) -> None:
    # The requester's card was issued at started_at; ten minutes before that, by the
    # partner's clock, it is not valid yet (§4.1 card skew: 5 minutes).
    fed.nodes["politie-test"].clock.set(fed.started_at - timedelta(minutes=10))


def _requester_withdrew(fed: Federation) -> None:
    withdraw(fed, "vh-test")


def _blind(n: int) -> Callable[[], list[bytes]]:
    return lambda: oprf.blind([BSN_KEY] * n)[1]


PARTNER = "politie-test"


@dataclass(frozen=True)
class Case:
    """One refusal: stage the state, craft a request from ``requester`` to politie-test."""

    id: str
    reason: str
    rule: str | None  # the rule the partner logs; None where no policy rule decided
    requester: str = "vh-test"
    stage: Stage | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    elements: Callable[[], list[bytes]] | None = None
    signer: str | None = None  # sign with this node's key instead of the requester's
    addressed_to: str = PARTNER  # the partner the message names; it is sent to PARTNER
    tamper: Callable[[bytes], bytes] | None = None


EVALUATE_CASES = [
    Case(
        "unknown-requester",
        "unknown_requester",
        "authentication",
        requester=OUTSIDER,
        stage=_unknown_outsider,
    ),
    Case("key-of-another-node", "unknown_requester", "authentication", signer="om-test"),
    Case("revoked-requester", "revoked_requester", "authentication", stage=_revoke_requester),
    Case("requester-card-expired", "revoked_requester", "authentication", stage=_cards_expired),
    Case(
        "requester-card-not-yet-valid",
        "card_not_yet_valid",
        "authentication",
        stage=_partner_clock_slow,
    ),
    Case(
        "unknown-convenant",
        "unknown_convenant",
        "convenant-installed",
        fields={"convenant_id": "vh-test-onbekend"},
    ),
    Case(
        "unknown-convenant-version",
        "unknown_convenant",
        "convenant-installed",
        fields={"convenant_version": 3},
    ),
    Case(
        "expired-convenant",
        "convenant_not_in_force",
        "convenant-in-force",
        stage=_expired_convenant,
        fields={"convenant_id": SHORT},
    ),
    Case(
        "convenant-not-yet-in-force",
        "convenant_not_in_force",
        "convenant-in-force",
        stage=_future_convenant,
        fields={"convenant_id": FUTURE},
    ),
    Case(
        "superseded-convenant-version",
        "convenant_not_in_force",
        "convenant-current-version",
        stage=_install_v2,
        fields={"convenant_version": 1},
    ),
    Case(
        "requester-withdrawn",
        "party_withdrawn",
        "requester-not-withdrawn",
        stage=_requester_withdrew,
    ),
    Case(
        "not-a-party",
        "not_a_party",
        "requester-is-party",
        requester=OUTSIDER,
        stage=_known_outsider,
    ),
    Case(
        "purpose-not-granted",
        "no_query_right",
        "purpose-granted",
        fields={"purpose": OTHER_PURPOSE},
    ),
    Case(
        "purpose-not-in-convenant",
        "no_query_right",
        "purpose-granted",
        fields={"purpose": "nieuwsgierigheid"},
    ),
    Case("party-without-query-right", "no_query_right", "purpose-granted", requester="om-test"),
    Case("requester-clock-ahead", "stale_request", "freshness", stage=_requester_clock_ahead),
    Case("requester-clock-behind", "stale_request", "freshness", stage=_requester_clock_behind),
    Case("misaddressed", "misaddressed", "authentication", addressed_to="om-test"),
    Case("bad-signature", "bad_signature", "authentication", tamper=flip_signature_byte),
    Case("too-many-subjects", "too_many_subjects", None, elements=_blind(65)),
    Case(
        "not-a-ristretto255-encoding",
        "invalid_group_element",
        None,
        elements=lambda: [b"\xff" * 32],
    ),
    Case("identity-element", "invalid_group_element", None, elements=lambda: [bytes(32)]),
    Case(
        "one-bad-element-among-good",
        "invalid_group_element",
        None,
        elements=lambda: [*oprf.blind([BSN_KEY])[1], bytes(32)],
    ),
]


def _craft(fed: Federation, case: Case) -> tuple[jws.SignedDocument, bytes]:
    if case.stage is not None:
        case.stage(fed)
    signer = fed.nodes[case.signer].ctx.keys.signing if case.signer else None
    doc = evaluate_request(
        fed,
        case.requester,
        case.addressed_to,
        elements=case.elements() if case.elements else None,
        signer=signer,
        **case.fields,
    )
    body = jws.canonical(doc.to_json())
    return doc, case.tamper(body) if case.tamper else body


@pytest.mark.parametrize("case", EVALUATE_CASES, ids=lambda c: c.id)
async def test_evaluation_is_refused_signed_and_logged(federation: Federation, case: Case) -> None:
    doc, body = _craft(federation, case)
    reply = await post_peer(federation, PARTNER, EVALUATE_PATH, body)
    entry = _assert_signed_refusal(federation, PARTNER, doc, reply, case.reason)
    if case.rule is not None and case.reason not in UNAUTHENTICATED_CODES:
        assert entry["data"]["rule"] == case.rule


def test_every_refusal_code_is_covered_by_a_case() -> None:
    # replayed_request, rate_limited and not_a_provider have their own tests below;
    # tls_mismatch needs TLS nodes (tests/test_tls.py);
    # bad_tree_head and forked_log (the requester's head, §9.5) in test_witness.py.
    own_tests = {
        "replayed_request",
        "rate_limited",
        "not_a_provider",
        "bad_tree_head",
        "forked_log",
        "tls_mismatch",
    }
    assert {c.reason for c in EVALUATE_CASES} | own_tests == set(REFUSAL_CODES)


@pytest.mark.parametrize(
    "case",
    [c for c in EVALUATE_CASES if c.id in ("too-many-subjects", "identity-element")],
    ids=lambda c: c.id,
)
async def test_refusal_after_policy_names_its_own_rule_in_the_log(
    federation: Federation, case: Case
) -> None:
    doc, body = _craft(federation, case)
    reply = await post_peer(federation, PARTNER, EVALUATE_PATH, body)
    entry = _assert_signed_refusal(federation, PARTNER, doc, reply, case.reason)
    assert entry["data"]["rule"] != "allow"


TAG_SET_CASES = [
    Case(
        "unknown-requester", "unknown_requester", None, requester=OUTSIDER, stage=_unknown_outsider
    ),
    Case("revoked-requester", "revoked_requester", None, stage=_revoke_requester),
    Case(
        "unknown-convenant", "unknown_convenant", None, fields={"convenant_id": "vh-test-onbekend"}
    ),
    Case("superseded-convenant-version", "convenant_not_in_force", None, stage=_install_v2),
    Case(
        "expired-convenant",
        "convenant_not_in_force",
        None,
        stage=_expired_convenant,
        fields={"convenant_id": SHORT},
    ),
    Case("requester-withdrawn", "party_withdrawn", None, stage=_requester_withdrew),
    Case("not-a-party", "not_a_party", None, requester=OUTSIDER, stage=_known_outsider),
    Case("party-without-query-right", "no_query_right", None, requester="om-test"),
    Case("requester-clock-ahead", "stale_request", None, stage=_requester_clock_ahead),
    Case("misaddressed", "misaddressed", None, addressed_to="om-test"),
    Case("bad-signature", "bad_signature", None, tamper=flip_signature_byte),
]


@pytest.mark.parametrize("case", TAG_SET_CASES, ids=lambda c: c.id)
async def test_tag_set_request_is_refused_signed_and_logged(
    federation: Federation, case: Case
) -> None:
    if case.stage is not None:
        case.stage(federation)
    signer = federation.nodes[case.signer].ctx.keys.signing if case.signer else None
    doc = tag_set_request(
        federation, case.requester, case.addressed_to, signer=signer, **case.fields
    )
    body = jws.canonical(doc.to_json())
    if case.tamper:
        body = case.tamper(body)
    reply = await post_peer(federation, PARTNER, TAG_SET_PATH, body)
    _assert_signed_refusal(federation, PARTNER, doc, reply, case.reason, tag_set=True)


# --- refusals that need more than one request ---------------------------------------------


@pytest.mark.parametrize("path", [EVALUATE_PATH, TAG_SET_PATH])
async def test_second_use_of_a_nonce_is_refused_as_replayed(
    federation: Federation, path: str
) -> None:
    make = evaluate_request if path == EVALUATE_PATH else tag_set_request
    doc = make(federation, "vh-test", PARTNER)
    first = await post_peer(federation, PARTNER, path, doc)
    assert first.status == 200
    again = await post_peer(federation, PARTNER, path, doc)
    _assert_signed_refusal(
        federation, PARTNER, doc, again, "replayed_request", tag_set=path == TAG_SET_PATH
    )


async def test_same_nonce_in_a_new_request_is_refused_as_replayed(
    federation: Federation,
) -> None:
    """The nonce, not the whole message, is what may be used once."""
    first = evaluate_request(federation, "vh-test", PARTNER)
    assert (await post_peer(federation, PARTNER, EVALUATE_PATH, first)).status == 200
    second = evaluate_request(
        federation, "vh-test", PARTNER, nonce=first.payload["nonce"], case_ref="ANDERE-CASUS"
    )
    reply = await post_peer(federation, PARTNER, EVALUATE_PATH, second)
    _assert_signed_refusal(federation, PARTNER, second, reply, "replayed_request")


async def test_rate_limit_refuses_the_fourth_element_with_a_signed_429(
    federation: Federation,
) -> None:
    om = federation.nodes["om-test"]
    om.ctx.limiter = RateLimiter(per_minute=0.01, burst=3)
    for _ in range(3):
        reply = await post_peer(
            federation, "om-test", EVALUATE_PATH, evaluate_request(federation, "vh-test", "om-test")
        )
        assert reply.status == 200
        assert (
            open_signed(federation, "om-test", reply.body, EVALUATE_RESPONSE_TYP)["outcome"]
            == "evaluated"
        )
    doc = evaluate_request(federation, "vh-test", "om-test")
    reply = await post_peer(federation, "om-test", EVALUATE_PATH, doc)
    _assert_signed_refusal(federation, "om-test", doc, reply, "rate_limited", http_status=429)
    # Another requester has its own bucket.
    other_doc = evaluate_request(federation, "politie-test", "om-test")
    other = await post_peer(federation, "om-test", EVALUATE_PATH, other_doc)
    assert other.status == 200
    assert (
        open_signed(federation, "om-test", other.body, EVALUATE_RESPONSE_TYP)["outcome"]
        == "evaluated"
    )


async def test_a_request_refused_for_its_elements_takes_no_tokens(
    federation: Federation,
) -> None:
    # §7.3: only an evaluation takes tokens. Three requests of three invalid elements
    # would have emptied a bucket of three (they took tokens before they were checked).
    om = federation.nodes["om-test"]
    om.ctx.limiter = RateLimiter(per_minute=0.01, burst=3)
    for _ in range(3):
        doc = evaluate_request(federation, "vh-test", "om-test", elements=[b"\xff" * 32] * 3)
        reply = await post_peer(federation, "om-test", EVALUATE_PATH, doc)
        entry = _assert_signed_refusal(federation, "om-test", doc, reply, "invalid_group_element")
        assert entry["data"]["rule"] == "valid-elements"
    doc = evaluate_request(federation, "vh-test", "om-test", elements=_blind(3)())
    reply = await post_peer(federation, "om-test", EVALUATE_PATH, doc)
    assert reply.status == 200
    assert open_signed(federation, "om-test", reply.body, EVALUATE_RESPONSE_TYP)["outcome"] == (
        "evaluated"
    )


@pytest.mark.parametrize(
    "element",
    [
        "A" * 42,  # too short
        "!" * 43,  # outside the alphabet
        "A" * 42 + "B",  # non-zero unused bits: not the canonical text of any 32 bytes
    ],
    ids=["42-characters", "not-base64url", "non-canonical"],
)
async def test_an_element_that_is_not_strict_base64url_of_32_bytes_is_malformed(
    federation: Federation, element: str
) -> None:
    # §2.4 "syntax first, meaning after": one rule for every element that is not strict
    # B64U of 32 bytes, whatever its length: 400, unsigned, nothing logged, no token.
    partner = federation.nodes[PARTNER]
    before = len(log_entries(partner))
    valid = jws_bytes(evaluate_request(federation, "vh-test", PARTNER))
    key = federation.nodes["vh-test"].ctx.keys.signing
    body = resign(valid, key, lambda p: p.update(blinded_elements=[element]))
    reply = await post_peer(federation, PARTNER, EVALUATE_PATH, body)
    assert reply.status == 400
    assert reply.content_type == "application/problem+json"
    assert reply.json()["type"].endswith("/malformed_message")
    assert len(log_entries(partner)) == before


async def test_rate_limit_counts_elements_not_requests(federation: Federation) -> None:
    federation.nodes["om-test"].ctx.limiter = RateLimiter(per_minute=0.01, burst=3)
    doc = evaluate_request(federation, "vh-test", "om-test", elements=_blind(4)())
    reply = await post_peer(federation, "om-test", EVALUATE_PATH, doc)
    _assert_signed_refusal(federation, "om-test", doc, reply, "rate_limited", http_status=429)


async def test_node_that_provides_nothing_refuses_as_not_a_provider(tmp_path: Path) -> None:
    parties = (*DEFAULT_PARTIES, (OUTSIDER, "gemeente", (), True))
    fed = await standard_federation(tmp_path, parties=parties)
    try:
        doc = evaluate_request(fed, "vh-test", OUTSIDER)
        reply = await post_peer(fed, OUTSIDER, EVALUATE_PATH, doc)
        entry = _assert_signed_refusal(fed, OUTSIDER, doc, reply, "not_a_provider")
        assert entry["data"]["rule"] == "provider-has-scope"
        tag_doc = tag_set_request(fed, "vh-test", OUTSIDER)
        reply = await post_peer(fed, OUTSIDER, TAG_SET_PATH, tag_doc)
        _assert_signed_refusal(fed, OUTSIDER, tag_doc, reply, "not_a_provider", tag_set=True)
        # The fan-out asks providers only, and the party without scope may itself ask.
        result = await fed.query(OUTSIDER, [JAN_BSN])
        assert set(statuses(result)) == {"vh-test", "politie-test", "om-test", "ggz-test"}
        assert set(statuses(result).values()) == {"no_hit"}
    finally:
        await fed.close()


async def test_naming_a_partner_that_provides_nothing_is_refused_as_not_a_provider(
    tmp_path: Path,
) -> None:
    parties = (*DEFAULT_PARTIES, (OUTSIDER, "gemeente", (), True))
    fed = await standard_federation(tmp_path, parties=parties)
    try:
        status, body = await fed.api(
            "vh-test",
            "POST",
            "/api/v1/bekendheid",
            json={
                "convenant_id": CONVENANT_ID,
                "purpose": PURPOSE,
                "case_ref": "C-1",
                "subjects": [JAN_BSN],
                "partners": [OUTSIDER],
            },
        )
        assert status == 403
        assert body["type"].endswith("/not_a_provider")
    finally:
        await fed.close()


# --- the same refusals through the real fan-out -------------------------------------------


async def test_purpose_without_query_right_is_refused_by_every_partner(
    federation: Federation,
) -> None:
    result = await federation.query("vh-test", [JAN_BSN], purpose=OTHER_PURPOSE)
    assert set(statuses(result).values()) == {"refused"}
    for p in result["partners"]:
        assert p["reason"] == "no_query_right"
        assert p["subjects"] == ["refused"]
        last = log_entries(federation.nodes[p["partner"]], "bekendheid.refused")[-1]
        assert last["reason"] == "no_query_right"
        assert last["purpose"] == OTHER_PURPOSE
        assert last["counterparty"] == "vh-test"
        assert last["trace_id"] == result["trace_id"]


async def test_party_without_query_right_is_refused_by_every_partner(
    federation: Federation,
) -> None:
    result = await federation.query("om-test", [JAN_BSN])
    assert set(statuses(result).values()) == {"refused"}
    assert {p["reason"] for p in result["partners"]} == {"no_query_right"}


async def test_revoked_requester_is_refused_by_the_revoking_partner_only(
    federation: Federation,
) -> None:
    _revoke_requester(federation)
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result) == {
        "vh-test": "no_hit",
        "politie-test": "refused",
        "om-test": "no_hit",
        "ggz-test": "no_hit",
    }
    assert partner_result(result, "politie-test")["reason"] == "revoked_requester"


async def test_requester_clock_ahead_is_refused_as_stale_by_partners(
    federation: Federation,
) -> None:
    _requester_clock_ahead(federation)
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result)["vh-test"] == "no_hit"  # its own registry shares its clock
    for partner in ("politie-test", "om-test", "ggz-test"):
        p = partner_result(result, partner)
        assert (p["status"], p["reason"]) == ("refused", "stale_request")


async def test_requester_on_a_superseded_version_is_refused(federation: Federation) -> None:
    # politie-test installs v2 (signed by everyone); vh-test still acts under v1.
    doc = federation.sign_and_install(
        convenant_toml(DEFAULT_PARTIES, version=2), signers=list(federation.nodes)
    )
    admin.install_convenant(federation.nodes["politie-test"].ctx, doc)
    result = await federation.query("vh-test", [JAN_BSN])
    assert result["convenant_version"] == 1
    p = partner_result(result, "politie-test")
    assert (p["status"], p["reason"]) == ("refused", "convenant_not_in_force")
    assert statuses(result)["om-test"] == "no_hit"


async def test_signed_successor_not_yet_in_force_does_not_cut_off_current_version(
    federation: Federation,
) -> None:
    next_month = federation.started_at + timedelta(days=30)
    doc = federation.sign_and_install(
        convenant_toml(DEFAULT_PARTIES, version=2, valid_from=toml_time(next_month)),
        signers=list(federation.nodes),
    )
    admin.install_convenant(federation.nodes["politie-test"].ctx, doc)
    request = evaluate_request(federation, "vh-test", PARTNER, convenant_version=1)
    reply = await post_peer(federation, PARTNER, EVALUATE_PATH, request)
    assert reply.status == 200
    payload = open_signed(federation, PARTNER, reply.body, EVALUATE_RESPONSE_TYP)
    assert payload["outcome"] == "evaluated"


async def test_requester_fails_closed_itself_under_an_expired_convenant(
    federation: Federation,
) -> None:
    _expired_convenant(federation)
    status, body = await federation.api(
        "vh-test",
        "POST",
        "/api/v1/bekendheid",
        json={
            "convenant_id": SHORT,
            "purpose": PURPOSE,
            "case_ref": "C-1",
            "subjects": [JAN_BSN],
        },
    )
    assert status == 403
    assert body["type"].endswith("/convenant_not_in_force")


# --- pure policy: decide_evaluation and decide_tag_set ------------------------------------

POLICY_PARTIES: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("vh-test", "veiligheidshuis", ("casus",), True),
    ("politie-test", "politie", ("veelplegers",), True),
    ("om-test", "om", ("veelplegers",), False),
    ("gemeente-test", "gemeente", (), True),
)
KEYS = {p[0]: NodeKeys.generate() for p in POLICY_PARTIES}
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _party_keys(*without: str) -> dict[str, bytes]:
    return {k.signing_fingerprint: k.signing_public for n, k in KEYS.items() if n not in without}


def _state(
    *,
    version: int = 1,
    newest: int | None = None,
    signers: Sequence[str] | None = None,
    tamper_signature_of: str | None = None,
    withdrawn: Sequence[tuple[str, datetime, int]] = (),
) -> ConvenantState:
    cards = {
        node_id: {
            "organisation": f"{org} testregio",
            "org_type": org,
            "signing_fingerprint": KEYS[node_id].signing_fingerprint,
            "encryption_fingerprint": KEYS[node_id].encryption_fingerprint,
        }
        for node_id, org, _, _ in POLICY_PARTIES
    }
    toml = convenant_toml(
        POLICY_PARTIES, version=version, valid_from=toml_time(START), valid_until=toml_time(END)
    )
    doc = draft_from_toml(toml, cards)
    for node_id in signers if signers is not None else KEYS:
        doc = doc.with_signature(KEYS[node_id].signing)
    obj = doc.to_json()
    if tamper_signature_of is not None:
        kid = KEYS[tamper_signature_of].signing_fingerprint
        index = doc.kids().index(kid)
        sig = bytearray(jws.b64u_decode(obj["signatures"][index]["signature"]))
        sig[5] ^= 1
        obj["signatures"][index]["signature"] = jws.b64u_encode(bytes(sig))
    conv, parsed = parse_convenant(obj)
    withdrawals = tuple(
        Withdrawal(
            convenant_id=CONVENANT_ID,
            convenant_version=v,
            party=party,
            withdrawn_at=at,
            reason="Uittreding",
        )
        for party, at, v in withdrawn
    )
    return ConvenantState(conv, parsed, newest if newest is not None else version, withdrawals)


@dataclass(frozen=True)
class PolicyCase:
    id: str
    rule: str
    reason: str | None
    state: Callable[[], ConvenantState] = _state
    requester: str = "vh-test"
    provider: str = "politie-test"
    purpose: str = PURPOSE
    now: datetime = NOW
    version: int = 1
    party_keys: Callable[[], dict[str, bytes]] = _party_keys


POLICY_CASES = [
    PolicyCase("allowed", "allow", None),
    PolicyCase("allowed-at-valid-from", "allow", None, now=START),
    PolicyCase("allowed-asking-oneself", "allow", None, provider="vh-test"),
    PolicyCase(
        "nothing-installed",
        "convenant-installed",
        "unknown_convenant",
        state=lambda: ConvenantState(None, None, None),
    ),
    PolicyCase(
        "newer-version-installed",
        "convenant-current-version",
        "convenant_not_in_force",
        state=lambda: _state(newest=2),
    ),
    PolicyCase(
        "before-valid-from",
        "convenant-in-force",
        "convenant_not_in_force",
        now=START - timedelta(seconds=1),
    ),
    PolicyCase("at-valid-until", "convenant-in-force", "convenant_not_in_force", now=END),
    PolicyCase(
        "long-expired",
        "convenant-in-force",
        "convenant_not_in_force",
        now=END + timedelta(days=400),
    ),
    PolicyCase(
        "one-party-did-not-sign",
        "convenant-in-force",
        "convenant_not_in_force",
        state=lambda: _state(signers=["vh-test", "politie-test", "gemeente-test"]),
    ),
    PolicyCase(
        "no-signatures",
        "convenant-in-force",
        "convenant_not_in_force",
        state=lambda: _state(signers=[]),
    ),
    PolicyCase(
        "a-signature-does-not-verify",
        "convenant-in-force",
        "convenant_not_in_force",
        state=lambda: _state(tamper_signature_of="om-test"),
    ),
    PolicyCase(
        "a-signers-key-is-unknown",
        "convenant-in-force",
        "convenant_not_in_force",
        party_keys=lambda: _party_keys("om-test"),
    ),
    PolicyCase(
        "requester-withdrawn",
        "requester-not-withdrawn",
        "party_withdrawn",
        state=lambda: _state(withdrawn=[("vh-test", NOW, 1)]),
    ),
    PolicyCase(
        "provider-withdrawn",
        "provider-not-withdrawn",
        "party_withdrawn",
        state=lambda: _state(withdrawn=[("politie-test", NOW - timedelta(days=9), 1)]),
    ),
    PolicyCase(
        "allowed-a-second-before-withdrawal",
        "allow",
        None,
        state=lambda: _state(withdrawn=[("vh-test", NOW + timedelta(seconds=1), 1)]),
    ),
    PolicyCase(
        "withdrawal-from-an-earlier-version-only",
        "allow",
        None,
        version=2,
        state=lambda: _state(version=2, withdrawn=[("vh-test", NOW, 1)]),
    ),
    PolicyCase(
        "withdrawal-covers-earlier-versions",
        "requester-not-withdrawn",
        "party_withdrawn",
        state=lambda: _state(withdrawn=[("vh-test", NOW, 2)]),
    ),
    PolicyCase(
        "bystander-withdrawn", "allow", None, state=lambda: _state(withdrawn=[("om-test", NOW, 1)])
    ),
    PolicyCase(
        "expired-and-withdrawn",
        "convenant-in-force",
        "convenant_not_in_force",
        now=END,
        state=lambda: _state(withdrawn=[("vh-test", NOW, 1)]),
    ),
    PolicyCase(
        "requester-not-a-party", "requester-is-party", "not_a_party", requester="buurman-test"
    ),
    PolicyCase(
        "provider-not-a-party", "provider-has-scope", "not_a_provider", provider="buurman-test"
    ),
    PolicyCase(
        "provider-without-scope", "provider-has-scope", "not_a_provider", provider="gemeente-test"
    ),
    PolicyCase(
        "requester-without-query-right", "purpose-granted", "no_query_right", requester="om-test"
    ),
    PolicyCase("purpose-not-granted", "purpose-granted", "no_query_right", purpose=OTHER_PURPOSE),
    PolicyCase("empty-purpose", "purpose-granted", "no_query_right", purpose=""),
    # Rules run in order and the first failing one is named.
    PolicyCase(
        "expired-and-not-a-party",
        "convenant-in-force",
        "convenant_not_in_force",
        requester="buurman-test",
        now=END,
    ),
    PolicyCase(
        "superseded-and-expired",
        "convenant-current-version",
        "convenant_not_in_force",
        state=lambda: _state(newest=2),
        now=END,
    ),
]


def _decide(case: PolicyCase) -> Decision:
    return decide_evaluation(
        case.state(),
        CONVENANT_ID,
        case.version,
        case.requester,
        case.provider,
        case.purpose,
        case.party_keys(),
        case.now,
    )


@pytest.mark.parametrize("case", POLICY_CASES, ids=lambda c: c.id)
def test_decide_evaluation_names_the_rule_that_decided(case: PolicyCase) -> None:
    decision = _decide(case)
    assert decision.rule == case.rule
    assert decision.reason == case.reason
    assert decision.allowed is (case.reason is None)
    assert (decision.refusal is None) is decision.allowed
    if decision.refusal is not None:
        assert decision.refusal.detail


def test_policy_cases_cover_every_rule() -> None:
    rules = {_decide(c).rule for c in POLICY_CASES}
    assert rules == {
        "allow",
        "convenant-installed",
        "convenant-current-version",
        "convenant-in-force",
        "requester-not-withdrawn",
        "provider-not-withdrawn",
        "requester-is-party",
        "provider-has-scope",
        "purpose-granted",
    }


@pytest.mark.parametrize(
    ("requester", "state", "rule", "reason"),
    [
        ("vh-test", _state, "allow", None),
        ("gemeente-test", _state, "allow", None),
        ("om-test", _state, "requester-may-query", "no_query_right"),
        ("buurman-test", _state, "requester-is-party", "not_a_party"),
        (
            "vh-test",
            lambda: ConvenantState(None, None, None),
            "convenant-installed",
            "unknown_convenant",
        ),
        (
            "vh-test",
            lambda: _state(newest=2),
            "convenant-current-version",
            "convenant_not_in_force",
        ),
        (
            "vh-test",
            lambda: _state(withdrawn=[("vh-test", NOW, 1)]),
            "requester-not-withdrawn",
            "party_withdrawn",
        ),
        (
            "vh-test",
            lambda: _state(withdrawn=[("politie-test", NOW, 1)]),
            "provider-not-withdrawn",
            "party_withdrawn",
        ),
    ],
    ids=[
        "party-with-query-right",
        "requester-only-party",
        "party-without-query-right",
        "not-a-party",
        "nothing-installed",
        "superseded",
        "requester-withdrawn",
        "provider-withdrawn",
    ],
)
def test_decide_tag_set_only_for_parties_that_may_query(
    requester: str, state: Callable[[], ConvenantState], rule: str, reason: str | None
) -> None:
    d = decide_tag_set(state(), CONVENANT_ID, 1, requester, "politie-test", _party_keys(), NOW)
    assert (d.rule, d.reason) == (rule, reason)


# --- pure rate limit ------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_refuses() -> None:
    b = TokenBucket(rate_per_second=1.0, burst=3)
    assert [b.take(1, 0.0) for _ in range(4)] == [True, True, True, False]


def test_token_bucket_refills_with_time() -> None:
    b = TokenBucket(rate_per_second=1.0, burst=3)
    assert b.take(3, 0.0)
    assert not b.take(1, 0.5)
    assert b.take(1, 1.0)
    assert not b.take(1, 1.0)
    assert b.take(2, 3.0)


def test_token_bucket_never_holds_more_than_its_burst() -> None:
    b = TokenBucket(rate_per_second=1.0, burst=3)
    assert b.take(1, 0.0)
    assert b.take(3, 1_000.0)
    assert not b.take(1, 1_000.0)


def test_token_bucket_refuses_more_than_its_burst_at_once() -> None:
    b = TokenBucket(rate_per_second=100.0, burst=3)
    assert not b.take(4, 0.0)
    assert not b.take(4, 1_000_000.0)
    assert b.take(3, 1_000_000.0)


def test_token_bucket_refusal_costs_nothing() -> None:
    b = TokenBucket(rate_per_second=1.0, burst=3)
    assert not b.take(5, 0.0)
    assert b.take(3, 0.0)


def test_token_bucket_retry_after() -> None:
    b = TokenBucket(rate_per_second=2.0, burst=4)
    assert b.take(4, 0.0)
    assert b.retry_after(1) == pytest.approx(0.5)
    assert b.retry_after(4) == pytest.approx(2.0)
    assert b.take(1, 0.5)


def test_rate_limiter_has_a_bucket_per_requester_and_convenant() -> None:
    limiter = RateLimiter(per_minute=60.0, burst=3)
    assert limiter.allow("vh-test", "c1", 3, 0.0)
    assert not limiter.allow("vh-test", "c1", 1, 0.0)
    assert limiter.allow("politie-test", "c1", 3, 0.0)
    assert limiter.allow("vh-test", "c2", 3, 0.0)
    assert limiter.allow("vh-test", "c1", 1, 1.0)  # 60 per minute is one per second


def test_rate_limiter_counts_elements() -> None:
    limiter = RateLimiter(per_minute=60.0, burst=10)
    assert limiter.allow("vh-test", "c1", 8, 0.0)
    assert not limiter.allow("vh-test", "c1", 3, 0.0)
    assert limiter.allow("vh-test", "c1", 2, 0.0)
