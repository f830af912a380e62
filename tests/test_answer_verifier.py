"""The strict verifier of a partner's answer (node/protocol/answers.py), alone: bytes in,
the verified answer and tree head out, or the error that names the failed check. The
answer is a real one from a node on loopback; every case then edits its bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import nacl.signing
import pytest

from node.errors import BadBinding, BadSignature, BadTreeHead, MalformedMessage, ProtocolError
from node.protocol import jws
from node.protocol.answers import Expected, verify_answer
from node.protocol.bekendheid import EVALUATE_RESPONSE, EVALUATE_RESPONSE_TYP, Evaluated
from tests.federation import EVALUATE_PATH, Federation, evaluate_request, post_peer, resign

ASKER, PARTNER = "vh-test", "politie-test"


async def _answer(fed: Federation) -> tuple[bytes, Expected]:
    req = evaluate_request(fed, ASKER, PARTNER)
    reply = await post_peer(fed, PARTNER, EVALUATE_PATH, req)
    assert reply.status == 200
    keys = fed.nodes[PARTNER].ctx.keys
    expected = Expected(
        EVALUATE_RESPONSE_TYP,
        PARTNER,
        keys.signing_fingerprint,
        keys.signing_public,
        ASKER,
        req.digest(),
    )
    return reply.body, expected


def _other_head(fed: Federation) -> dict[str, Any]:
    """A valid tree head, but the asker's own, not the partner's."""
    head = (
        fed.nodes[ASKER]
        .ctx.conn.execute("SELECT jws FROM tree_heads ORDER BY tree_size DESC LIMIT 1")
        .fetchone()[0]
    )
    return dict(json.loads(head))


async def test_a_real_answer_verifies(federation: Federation) -> None:
    body, expected = await _answer(federation)
    verified = verify_answer(body, EVALUATE_RESPONSE, expected)
    assert isinstance(verified.answer, Evaluated)
    assert verified.tree_head.tree_size >= 1


Case = Callable[[Federation, bytes, Expected], tuple[bytes, Expected]]
STRANGER = nacl.signing.SigningKey.generate()


def _edit(edit: Callable[[dict[str, Any]], None]) -> Case:
    def case(fed: Federation, body: bytes, exp: Expected) -> tuple[bytes, Expected]:
        return resign(body, fed.nodes[PARTNER].ctx.keys.signing, edit), exp

    return case


CASES: list[tuple[str, Case, type[ProtocolError]]] = [
    ("not a JWS", lambda f, b, e: (b"{not json", e), MalformedMessage),
    (
        "another typ expected",
        lambda f, b, e: (b, replace(e, typ="vhnode-tag-set-response/v1")),
        MalformedMessage,
    ),
    ("signed by a stranger", lambda f, b, e: (resign(b, STRANGER), e), BadSignature),
    (
        "signed by the asker",
        lambda f, b, e: (resign(b, f.nodes[ASKER].ctx.keys.signing), e),
        BadSignature,
    ),
    ("a payload member missing", _edit(lambda p: p.pop("proof")), MalformedMessage),
    (
        "answers another request",
        lambda f, b, e: (b, replace(e, request_digest=b"\0" * 32)),
        BadBinding,
    ),
    ("names another partner", _edit(lambda p: p.update(partner="om-test")), BadBinding),
    ("names another requester", _edit(lambda p: p.update(requester="ggz-test")), BadBinding),
    (
        "carries the asker's head",
        lambda f, b, e: (
            resign(
                b, f.nodes[PARTNER].ctx.keys.signing, lambda p: p.update(tree_head=_other_head(f))
            ),
            e,
        ),
        BadTreeHead,
    ),
]


@pytest.mark.parametrize(("name", "case", "error"), CASES, ids=[c[0] for c in CASES])
async def test_each_check_names_its_failure(
    federation: Federation, name: str, case: Case, error: type[ProtocolError]
) -> None:
    body, expected = await _answer(federation)
    bad_body, bad_expected = case(federation, body, expected)
    with pytest.raises(error):
        verify_answer(bad_body, EVALUATE_RESPONSE, bad_expected)


def test_the_verifier_needs_no_node() -> None:
    # Pure: nothing but bytes and expectations (a forged answer fails, no I/O attempted).
    key = nacl.signing.SigningKey.generate()
    doc = jws.sign(EVALUATE_RESPONSE_TYP, {"partner": "x"}, key)
    public = bytes(key.verify_key)
    expected = Expected(
        EVALUATE_RESPONSE_TYP, "x", jws.fingerprint(public), public, "y", b"\0" * 32
    )
    with pytest.raises(MalformedMessage):
        verify_answer(json.dumps(doc.to_json()).encode(), EVALUATE_RESPONSE, expected)
