"""Signed tree heads (docs/protocol.md §9.3): the document and its strict verifier.

A tree head commits a node to the first ``tree_size`` entries of its log. Ours are
checked by ``verify``; a peer's are checked and kept with every answer it sends.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from node.errors import BadSignature, MalformedMessage
from node.protocol import jws
from node.protocol.fields import B64U_PATTERN
from node.protocol.jws import SignedDocument
from node.protocol.models import WireModel

TREE_HEAD_TYP = "vhnode-tree-head/v1"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_time(text: str) -> datetime:
    """A head's ``signed_at`` (RFC 3339, whole seconds, Z) as an aware datetime."""
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    signed_at: datetime
    jws: str
    """The signed head as JSON text (JWS General JSON Serialization)."""

    def document(self) -> SignedDocument:
        """The parsed JWS, e.g. to send to a peer. Not verified here."""
        return jws.parse(json.loads(self.jws), TREE_HEAD_TYP)


# A head's payload is four short members; its protected header three. Bounded generously,
# checked exactly by ``check_head``.
_HeadPart = Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=1024)]


class HeadSignature(WireModel):
    protected: _HeadPart
    signature: Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=128)]


class SignedTreeHead(WireModel):
    """A signed tree head as it travels in every answer (§9.3): the JWS General JSON
    object. Its shape is checked on parsing; its signature and payload by ``check_head``."""

    payload: _HeadPart
    signatures: tuple[HeadSignature, ...] = Field(min_length=1, max_length=1)


def signed_head(head: TreeHead) -> SignedTreeHead:
    """One of our own heads as it travels in a message (§9.3, §9.5)."""
    return SignedTreeHead.model_validate(json.loads(head.jws))


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def check_head(obj: Any, node_id: str, verify_key: bytes | Mapping[str, bytes]) -> TreeHead:
    """Parse and verify a signed tree head of ``node_id`` (ours in ``verify``, a peer's
    when heads are gossiped). Raises BadSignature or MalformedMessage.

    ``verify_key`` is one key, or every key the node has had by fingerprint (its own log
    across a key rotation, §4.1.1): a head then verifies under the key its ``kid`` names.
    """
    if isinstance(obj, SignedTreeHead):
        obj = obj.wire()
    doc = jws.parse(obj, TREE_HEAD_TYP)
    if isinstance(verify_key, bytes):
        doc.verify(jws.fingerprint(verify_key), verify_key)
    else:
        kids = [k for k in doc.kids() if k in verify_key]
        if not kids:
            raise BadSignature("tree head is not signed by any key this node has had")
        doc.verify(kids[0], verify_key[kids[0]])
    p = doc.payload
    if set(p) != {"node", "tree_size", "root_hash", "signed_at"}:
        raise MalformedMessage(
            "tree head payload must be exactly node, tree_size, root_hash, signed_at"
        )
    if p["node"] != node_id:
        raise MalformedMessage(f"tree head is for node {p['node']!r}, expected {node_id!r}")
    if type(p["tree_size"]) is not int or p["tree_size"] < 0:
        raise MalformedMessage("tree head tree_size must be a non-negative integer")
    root = jws.b64u_decode(p["root_hash"])
    if len(root) != 32:
        raise MalformedMessage("tree head root_hash must be 32 bytes")
    try:
        signed_at = parse_time(p["signed_at"])
    except (TypeError, ValueError) as e:
        raise MalformedMessage("tree head signed_at must be RFC 3339 UTC (…Z)") from e
    return TreeHead(p["tree_size"], root, signed_at, jws.canonical(doc.to_json()).decode("ascii"))
