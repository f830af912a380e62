"""Tampered answers: what a network attacker or a misbehaving partner sends back.

politie-test knows the subject, so an honest round says ``hit``. An Interposer in front
of it rewrites its answers; whatever the rewrite, the requester must never report ``hit``
or ``no_hit`` for politie-test: a forged or broken answer is ``invalid``, a partner that
fails on HTTP is ``unreachable``. The other partners' answers are unaffected.

Rewrites come in two kinds: an attacker without politie-test's signing key (flip a
signature byte, re-sign with another key, send unsigned JSON), and politie-test itself
misbehaving, which does hold its key and re-signs (wrong elements, wrong proof, wrong
OPRF key, a tag set that does not match its head).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nacl.signing
import pytest

from node.protocol import jws, oprf
from tests.federation import (
    CONVENANT_ID,
    EVALUATE_PATH,
    PROBLEM,
    TAG_SET_PATH,
    Federation,
    Interposer,
    Rewrite,
    flip_signature_byte,
    interpose,
    log_entries,
    only_on,
    partner_result,
    replace_response,
    resign,
    statuses,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
TARGET = "politie-test"
STRANGER_KEY = nacl.signing.SigningKey.generate()
OTHER_OPRF_SK, OTHER_OPRF_PK = oprf.derive_key_pair(b"\x07" * 32, b"another oprf key")
B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _register(fed: Federation) -> None:
    for node_id, ref in ((TARGET, "BPS-1"), ("om-test", "COMPAS-1")):
        fed.register(node_id, {"ref": ref, "themes": ["veelplegers"], "identifiers": [JAN_BSN]})


async def _round(fed: Federation) -> dict[str, Any]:
    return await fed.query("vh-test", [JAN_BSN])


def _target_key(fed: Federation) -> nacl.signing.SigningKey:
    return fed.nodes[TARGET].ctx.keys.signing


def _last_blinded(proxy: Interposer) -> list[bytes]:
    path, body = proxy.requests[-1]
    assert path == EVALUATE_PATH
    return [jws.b64u_decode(e) for e in jws.parse_bytes(body).payload["blinded_elements"]]


# --- the rewrites ---------------------------------------------------------------------------

MakeRewrite = Callable[[Federation, Interposer], Rewrite]


def _flip_evaluate_signature(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(EVALUATE_PATH, lambda p, b: flip_signature_byte(b, 17))


def _resign_by_stranger(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(EVALUATE_PATH, lambda p, b: resign(b, STRANGER_KEY))


def _forged_refusal_by_another_partner(fed: Federation, proxy: Interposer) -> Rewrite:
    """om-test's real key signs a refusal in politie-test's name."""

    def edit(payload: dict[str, Any]) -> None:
        for k in ("evaluated_elements", "proof", "tag_set"):
            payload[k] = None
        payload.update(outcome="refused", reason="no_query_right", reason_detail="nee")

    om_key = fed.nodes["om-test"].ctx.keys.signing
    return only_on(EVALUATE_PATH, lambda p, b: resign(b, om_key, edit))


def _strip_signatures(fed: Federation, proxy: Interposer) -> Rewrite:
    def rewrite(path: str, body: bytes) -> bytes:
        obj = json.loads(body)
        obj["signatures"] = []
        return json.dumps(obj).encode()

    return only_on(EVALUATE_PATH, rewrite)


def _unsigned_payload(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(EVALUATE_PATH, lambda p, b: json.dumps(jws.parse_bytes(b).payload).encode())


def _unsigned_problem(fed: Federation, proxy: Interposer) -> Rewrite:
    problem = json.dumps(
        {
            "type": "https://vhnode.nl/problems/no_query_right",
            "title": "Refused",
            "status": 403,
            "detail": "geen bevraging toegestaan",
        }
    )
    return only_on(EVALUATE_PATH, replace_response(403, problem, PROBLEM))


def _not_json(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(EVALUATE_PATH, lambda p, b: b"<html>proxy error</html>")


def _empty_body(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(EVALUATE_PATH, lambda p, b: b"")


def _truncated(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(EVALUATE_PATH, lambda p, b: b[: len(b) // 2])


def _element_replaced(fed: Federation, proxy: Interposer) -> Rewrite:
    """politie-test returns a valid group element it did not compute, and re-signs."""

    def edit(payload: dict[str, Any]) -> None:
        payload["evaluated_elements"][0] = jws.b64u_encode(oprf.hash_to_group(b"iemand anders"))

    return only_on(EVALUATE_PATH, lambda p, b: resign(b, _target_key(fed), edit))


def _proof_swapped(fed: Federation, proxy: Interposer) -> Rewrite:
    """politie-test attaches a valid proof of another evaluation under its own key."""
    sk, pk = fed.nodes[TARGET].ctx.oprf_key(CONVENANT_ID)
    _, other_blinded = oprf.blind([b"bsn:111222333"])
    _, other_proof = oprf.blind_evaluate(sk, pk, other_blinded)

    def edit(payload: dict[str, Any]) -> None:
        payload["proof"] = jws.b64u_encode(other_proof)

    return only_on(EVALUATE_PATH, lambda p, b: resign(b, _target_key(fed), edit))


def _head_names_another_key(fed: Federation, proxy: Interposer) -> Rewrite:
    """The head names one OPRF key while elements and proof are for politie-test's own."""

    def edit(payload: dict[str, Any]) -> None:
        payload["tag_set"]["oprf_public_key"] = jws.b64u_encode(OTHER_OPRF_PK)

    return only_on(EVALUATE_PATH, lambda p, b: resign(b, _target_key(fed), edit))


def _evaluates_with_another_key(fed: Federation, proxy: Interposer) -> Rewrite:
    """politie-test evaluates with another OPRF key, proves it and names it in the head,
    but its tag set is under its real key: the evaluation and the set do not belong
    together."""

    def rewrite(path: str, body: bytes) -> bytes:
        evaluated, proof = oprf.blind_evaluate(OTHER_OPRF_SK, OTHER_OPRF_PK, _last_blinded(proxy))

        def edit(payload: dict[str, Any]) -> None:
            payload["evaluated_elements"] = [jws.b64u_encode(e) for e in evaluated]
            payload["proof"] = jws.b64u_encode(proof)
            payload["tag_set"]["oprf_public_key"] = jws.b64u_encode(OTHER_OPRF_PK)

        return resign(body, _target_key(fed), edit)

    return only_on(EVALUATE_PATH, rewrite)


def _flip_tag_set_signature(fed: Federation, proxy: Interposer) -> Rewrite:
    return only_on(TAG_SET_PATH, lambda p, b: flip_signature_byte(b, 3))


def _tag_removed(key: Callable[[Federation], nacl.signing.SigningKey]) -> MakeRewrite:
    """The tag set without its tags (a hit turned into a no-hit), re-signed by ``key``."""

    def make(fed: Federation, proxy: Interposer) -> Rewrite:
        def edit(payload: dict[str, Any]) -> None:
            payload["added"] = ""

        return only_on(TAG_SET_PATH, lambda p, b: resign(b, key(fed), edit))

    return make


def _tag_added(fed: Federation, proxy: Interposer) -> Rewrite:
    """An extra tag (a no-hit turned into a hit) in a set politie-test signs."""

    def edit(payload: dict[str, Any]) -> None:
        tags = jws.b64u_decode(payload["added"])
        payload["added"] = jws.b64u_encode(bytes(16) + tags)

    return only_on(TAG_SET_PATH, lambda p, b: resign(b, _target_key(fed), edit))


def _tag_set_problem(fed: Federation, proxy: Interposer) -> Rewrite:
    problem = json.dumps(
        {"type": "https://vhnode.nl/problems/x", "title": "x", "status": 403, "detail": "x"}
    )
    return only_on(TAG_SET_PATH, replace_response(403, problem, PROBLEM))


@dataclass(frozen=True)
class Tamper:
    id: str
    make: MakeRewrite
    status: str = "invalid"
    reason: str | None = None  # the requester's classification, where it is stable


TAMPERS = [
    # An attacker without politie-test's key.
    Tamper("evaluate-signature-byte-flipped", _flip_evaluate_signature, reason="bad_signature"),
    Tamper("evaluate-resigned-by-a-stranger", _resign_by_stranger, reason="bad_signature"),
    Tamper(
        "refusal-forged-with-another-partners-key",
        _forged_refusal_by_another_partner,
        reason="bad_signature",
    ),
    Tamper("evaluate-signatures-stripped", _strip_signatures),
    Tamper("evaluate-payload-without-jws", _unsigned_payload),
    Tamper("unsigned-problem-json", _unsigned_problem),
    Tamper("evaluate-not-json", _not_json),
    Tamper("evaluate-empty-body", _empty_body),
    Tamper("evaluate-truncated", _truncated),
    Tamper("tag-set-signature-byte-flipped", _flip_tag_set_signature, reason="bad_signature"),
    Tamper(
        "tag-set-emptied-and-resigned-by-a-stranger",
        _tag_removed(lambda fed: STRANGER_KEY),
        reason="bad_signature",
    ),
    Tamper("tag-set-unsigned-problem-json", _tag_set_problem),
    Tamper(
        "evaluate-http-500",
        lambda f, p: only_on(EVALUATE_PATH, replace_response(500, "kapot", "text/plain")),
        status="unreachable",
    ),
    Tamper(
        "evaluate-http-503",
        lambda f, p: only_on(EVALUATE_PATH, replace_response(503, "onderhoud", "text/html")),
        status="unreachable",
    ),
    Tamper(
        "tag-set-http-500",
        lambda f, p: only_on(TAG_SET_PATH, replace_response(500, "kapot", "text/plain")),
        status="unreachable",
    ),
    # politie-test itself, re-signing with its own key.
    Tamper("evaluated-element-replaced", _element_replaced, reason="invalid_proof"),
    Tamper("proof-of-another-evaluation", _proof_swapped, reason="invalid_proof"),
    Tamper("head-names-another-oprf-key", _head_names_another_key, reason="invalid_proof"),
    Tamper(
        "evaluated-with-another-oprf-key", _evaluates_with_another_key, reason="invalid_tag_set"
    ),
    Tamper("tag-set-emptied-by-the-partner", _tag_removed(_target_key), reason="invalid_tag_set"),
    Tamper("tag-set-with-an-extra-tag", _tag_added, reason="invalid_tag_set"),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.id)
async def test_tampered_answer_is_never_a_hit_or_no_hit(
    federation: Federation, tamper: Tamper
) -> None:
    _register(federation)
    proxy = await interpose(federation, TARGET)
    proxy.rewrite = tamper.make(federation, proxy)
    result = await _round(federation)
    politie = partner_result(result, TARGET)
    assert politie["status"] == tamper.status, politie
    assert politie["subjects"] == [tamper.status]
    if tamper.reason is not None:
        assert politie["reason"] == tamper.reason, politie
    assert statuses(result)["om-test"] == "hit"
    assert statuses(result)["ggz-test"] == "no_hit"
    # The requester logs what it concluded, under the round's trace id.
    asked = [
        e
        for e in log_entries(federation.nodes["vh-test"], "bekendheid.asked")
        if e["trace_id"] == result["trace_id"] and e["counterparty"] == TARGET
    ]
    assert [e["outcome"] for e in asked] == [tamper.status]


async def test_honest_round_through_the_interposer_is_a_hit(federation: Federation) -> None:
    """The control: the interposer itself changes nothing."""
    _register(federation)
    await interpose(federation, TARGET)
    assert statuses(await _round(federation))[TARGET] == "hit"


@pytest.mark.parametrize(
    "make",
    [_flip_tag_set_signature, _tag_removed(_target_key), _tag_added],
    ids=["signature-flipped", "emptied-by-partner", "extra-tag"],
)
async def test_rejected_tag_set_leaves_no_trace_in_the_requesters_copy(
    federation: Federation, make: MakeRewrite
) -> None:
    _register(federation)
    proxy = await interpose(federation, TARGET)
    proxy.rewrite = make(federation, proxy)
    assert statuses(await _round(federation))[TARGET] == "invalid"
    conn = federation.nodes["vh-test"].ctx.conn
    held = conn.execute("SELECT COUNT(*) FROM peer_tags WHERE partner = ?", (TARGET,)).fetchone()[0]
    heads = conn.execute(
        "SELECT COUNT(*) FROM peer_tag_sets WHERE partner = ?", (TARGET,)
    ).fetchone()[0]
    assert (held, heads) == (0, 0)
    proxy.rewrite = None
    assert statuses(await _round(federation))[TARGET] == "hit"


async def test_partner_signing_two_digests_for_one_version_is_invalid(
    federation: Federation,
) -> None:
    """After a first honest round, the partner's head claims another digest for the
    version the requester already holds: an equivocating partner."""
    _register(federation)
    proxy = await interpose(federation, TARGET)
    assert statuses(await _round(federation))[TARGET] == "hit"

    def edit(payload: dict[str, Any]) -> None:
        payload["tag_set"]["digest"] = jws.b64u_encode(bytes(32))

    proxy.rewrite = only_on(EVALUATE_PATH, lambda p, b: resign(b, _target_key(federation), edit))
    politie = partner_result(await _round(federation), TARGET)
    assert (politie["status"], politie["reason"]) == ("invalid", "invalid_tag_set")


# --- one broken answer must not spoil the round -----------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000, id="deeply-nested-json"),  # json.loads: RecursionError
        pytest.param(b"9" * 5000, id="huge-json-number"),  # over int_max_str_digits: ValueError
    ],
)
async def test_unparseable_answer_is_invalid_not_a_failed_round(
    federation: Federation, body: bytes
) -> None:
    """The decoder's own exceptions must not escape and fail the whole round."""
    _register(federation)
    proxy = await interpose(federation, TARGET)
    proxy.rewrite = only_on(EVALUATE_PATH, lambda p, b: body)
    result = await federation.query("vh-test", [JAN_BSN], case_ref="C-1")
    assert statuses(result)[TARGET] == "invalid"
    assert statuses(result)["om-test"] == "hit"


async def test_non_canonical_digest_in_a_known_version_is_invalid_not_a_failed_round(
    federation: Federation,
) -> None:
    """The partner re-signs a head whose digest text is not canonical base64url, for the
    version the requester already holds: an error outside the per-partner checks."""
    _register(federation)
    proxy = await interpose(federation, TARGET)
    assert statuses(await _round(federation))[TARGET] == "hit"

    def edit(payload: dict[str, Any]) -> None:
        # 32 bytes take 43 characters: the last one carries two unused bits. Setting one
        # keeps the pattern and the decoded bytes, but the text is no longer canonical.
        digest = payload["tag_set"]["digest"]
        payload["tag_set"]["digest"] = digest[:-1] + B64U[B64U.index(digest[-1]) ^ 1]

    proxy.rewrite = only_on(EVALUATE_PATH, lambda p, b: resign(b, _target_key(federation), edit))
    status, result = await federation.api(
        "vh-test",
        "POST",
        "/api/v1/bekendheid",
        json={
            "convenant_id": CONVENANT_ID,
            "purpose": "casusoverleg-veelplegers",
            "case_ref": "C-1",
            "subjects": [JAN_BSN],
        },
    )
    assert status == 200, result
    assert statuses(result)[TARGET] == "invalid"
    assert statuses(result)["om-test"] == "hit"
