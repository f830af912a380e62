"""Anyone who reaches the port must not learn how busy a node is (docs/protocol.md §9.3).

A signed tree head's ``tree_size`` counts every decision the node logged: watched over
time it shows how many rounds, detail requests and peer changes a partner has. A refusal
of a request the node could not authenticate (§6.6 steps 3–6: unknown key, bad signature,
not addressed to it, stale, replayed) therefore carries no head, on every peer endpoint
that answers with a signed document. Authenticated peers still get one with every answer,
refusals included. (The requester takes such a refusal as ``refused``:
tests/test_refusals.py, a revoked requester's round.)
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from pydantic import ValidationError

from node.flows.cross_check import CONSISTENCY_PATH
from node.protocol import jws
from node.protocol.bekendheid import (
    EVALUATE_REQUEST_TYP,
    EVALUATE_RESPONSE,
    EVALUATE_RESPONSE_TYP,
    TAG_SET_REQUEST_TYP,
    TAG_SET_RESPONSE_TYP,
)
from node.protocol.consistency import CONSISTENCY_REQUEST_TYP, CONSISTENCY_RESPONSE_TYP
from node.protocol.detail import (
    DETAIL_PATH,
    DETAIL_POLL_PATH,
    DETAIL_POLL_TYP,
    DETAIL_REQUEST_TYP,
    DETAIL_RESPONSE_TYP,
    HIT_NOTICE_PATH,
    HIT_NOTICE_RESPONSE_TYP,
    HIT_NOTICE_TYP,
)
from node.protocol.models import rfc3339
from tests.detail_fixtures import CONTACT, detail_federation, hit_round
from tests.federation import (
    CONVENANT_ID,
    EVALUATE_PATH,
    PURPOSE,
    TAG_SET_PATH,
    Federation,
    evaluate_request,
    open_signed,
    post_peer,
)

REQUESTER = "vh-test"
PARTNER = "politie-test"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    f = await detail_federation(tmp_path)
    yield f
    await f.close()


def _nonce() -> str:
    return jws.b64u_encode(secrets.token_bytes(16))


def _messages(fed: Federation, round_trace_id: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(path, request typ, response typ, payload) of every signed peer request, each in
    the real requester's name and addressed to the partner."""
    now = rfc3339(fed.nodes[REQUESTER].clock.now())
    base = {"requester": REQUESTER, "partner": PARTNER, "nonce": _nonce(), "issued_at": now}
    evaluate = evaluate_request(fed, REQUESTER, PARTNER).payload
    detail = {
        **base,
        "convenant_id": CONVENANT_ID,
        "convenant_version": 1,
        "purpose": PURPOSE,
        "case_ref": "CASUS-1",
        "requesting_user": "coordinator",
        "requesting_role": "coordinator",
        "trace_id": secrets.token_hex(16),
        "round_trace_id": round_trace_id,
        "hit_proof": jws.b64u_encode(secrets.token_bytes(64)),
        "categories": [CONTACT],
    }
    return [
        (EVALUATE_PATH, EVALUATE_REQUEST_TYP, EVALUATE_RESPONSE_TYP, evaluate),
        (
            TAG_SET_PATH,
            TAG_SET_REQUEST_TYP,
            TAG_SET_RESPONSE_TYP,
            {**base, "convenant_id": CONVENANT_ID, "convenant_version": 1, "since_version": 0},
        ),
        (
            CONSISTENCY_PATH,
            CONSISTENCY_REQUEST_TYP,
            CONSISTENCY_RESPONSE_TYP,
            {**base, "from_size": 1},
        ),
        (DETAIL_PATH, DETAIL_REQUEST_TYP, DETAIL_RESPONSE_TYP, detail),
        (
            DETAIL_POLL_PATH,
            DETAIL_POLL_TYP,
            DETAIL_RESPONSE_TYP,
            {**base, "trace_id": secrets.token_hex(16)},
        ),
        (
            HIT_NOTICE_PATH,
            HIT_NOTICE_TYP,
            HIT_NOTICE_RESPONSE_TYP,
            {
                **{
                    k: v
                    for k, v in detail.items()
                    if k not in ("trace_id", "categories", "hit_proof", "requesting_role")
                },
                "hit_proofs": [detail["hit_proof"]],
            },
        ),
    ]


def _heads_in(payload: dict[str, Any]) -> list[Any]:
    text = json.dumps(payload)
    return [payload.get("tree_head")] + (["tree_size"] if "tree_size" in text else [])


async def test_a_refusal_to_an_unauthenticated_request_carries_no_tree_head(
    fed: Federation,
) -> None:
    round_ = await hit_round(fed, REQUESTER)
    stranger = nacl.signing.SigningKey.generate()
    real = fed.nodes[REQUESTER].ctx.keys.signing
    for path, typ, answer_typ, payload in _messages(fed, round_["trace_id"]):
        # Unknown key, in the real requester's name: unknown_requester.
        forged = jws.sign(typ, payload, stranger)
        reply = await post_peer(fed, PARTNER, path, forged)
        answer = open_signed(fed, PARTNER, reply.body, answer_typ)
        assert (reply.status, answer["outcome"], answer["reason"]) == (
            403,
            "refused",
            "unknown_requester",
        ), path
        assert _heads_in(answer) == [None], path
        # The real key, then the same request again: the replay is refused headless too.
        genuine = jws.sign(typ, {**payload, "nonce": _nonce()}, real)
        first = open_signed(
            fed, PARTNER, (await post_peer(fed, PARTNER, path, genuine)).body, answer_typ
        )
        assert first["tree_head"] is not None, path  # an authenticated peer gets its head
        again = await post_peer(fed, PARTNER, path, genuine)
        replayed = open_signed(fed, PARTNER, again.body, answer_typ)
        assert (replayed["outcome"], replayed["reason"]) == ("refused", "replayed_request"), path
        assert _heads_in(replayed) == [None], path


def test_only_a_refusal_of_an_unauthenticated_request_may_lack_its_head() -> None:
    common = {
        "partner": PARTNER,
        "requester": REQUESTER,
        "request_hash": jws.b64u_encode(bytes(32)),
        "issued_at": "2026-12-03T10:00:00Z",
        "tree_head": None,
    }
    refused = {**common, "outcome": "refused", "reason_detail": "x"}
    assert EVALUATE_RESPONSE.validate_python({**refused, "reason": "bad_signature"})
    for reason in ("no_query_right", "rate_limited"):
        with pytest.raises(ValidationError, match="tree_head may be null only"):
            EVALUATE_RESPONSE.validate_python({**refused, "reason": reason})
