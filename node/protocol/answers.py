"""The strict verifier of a partner's signed answer (docs/protocol.md §6.8 step 3, §9.3,
§9.4, §14): bytes in, the verified answer and the partner's verified tree head out, or a
``ProtocolError`` whose code names the check that failed. No I/O, no clock, no store:
the flows decide what a failure means (``flows/peer_client.py``) and what to keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import TypeAdapter

from node.errors import BadBinding, BadTreeHead, ProtocolError
from node.protocol import jws
from node.protocol.bekendheid import PartnerAnswer
from node.protocol.models import parse_union
from node.protocol.tree_head import TreeHead, check_head

A = TypeVar("A", bound=PartnerAnswer)


@dataclass(frozen=True)
class VerifiedAnswer(Generic[A]):
    answer: A
    """The answer or the signed refusal, as its model (a discriminated union)."""
    tree_head: TreeHead | None
    """The partner's signed tree head the answer carries, verified under its key; None in
    a refusal of a request the partner could not authenticate (§9.3)."""


@dataclass(frozen=True)
class Expected:
    """What the asking node knows before the answer arrives."""

    typ: str
    partner: str
    partner_fingerprint: str
    partner_key: bytes
    requester: str
    request_digest: bytes


def verify_answer(body: bytes, model: TypeAdapter[A], expected: Expected) -> VerifiedAnswer[A]:
    """Check, in this order: a JWS of ``expected.typ`` (its parse errors), signed by the
    partner's key (``bad_signature``), a payload of ``model`` (``malformed_message``),
    answering this request — its hash, this partner, this requester (``bad_binding``) —,
    and a tree head that verifies as the partner's (``bad_tree_head``)."""
    doc = jws.parse_bytes(body, expected.typ)
    doc.verify(expected.partner_fingerprint, expected.partner_key)
    answer = parse_union(model, expected.typ, doc.payload)
    if (
        answer.request_hash != expected.request_digest
        or answer.partner != expected.partner
        or answer.requester != expected.requester
    ):
        raise BadBinding("response does not answer our request")
    if answer.tree_head is None:  # the model allows it only in such a refusal
        return VerifiedAnswer(answer, None)
    try:
        head = check_head(answer.tree_head, expected.partner, expected.partner_key)
    except ProtocolError as e:
        raise BadTreeHead(e.detail) from e
    return VerifiedAnswer(answer, head)
