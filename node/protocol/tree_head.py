"""Signed tree heads (docs/protocol.md §9.3): the document and its strict verifier.

A tree head commits a node to the first ``tree_size`` entries of its log. Ours are
checked by ``verify``; a peer's are checked and kept with every answer it sends.

A head of log epoch 0 (every head before a restore) has exactly four members; a head of a
later epoch (§9.7) adds ``epoch`` and the signed ``restore`` statement that opened it, so
whoever meets the epoch can check why it began. Sizes are compared within one epoch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from node.errors import MalformedMessage
from node.protocol import jws
from node.protocol.fields import B64U_PATTERN
from node.protocol.jws import SignedDocument
from node.protocol.models import WireModel
from node.protocol.restore import RestoreStatement, check_statement

TREE_HEAD_TYP = "vhnode-tree-head/v1"
_MEMBERS = {"node", "tree_size", "root_hash", "signed_at"}
_EPOCH_MEMBERS = _MEMBERS | {"epoch", "restore"}
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
    epoch: int = 0
    """The log epoch (§9.7): 0 until the node's first restore."""
    restore: RestoreStatement | None = None
    """The statement that opened ``epoch``; None in epoch 0."""

    def document(self) -> SignedDocument:
        """The parsed JWS, e.g. to send to a peer. Not verified here."""
        return jws.parse(json.loads(self.jws), TREE_HEAD_TYP)


# A head's payload is four short members, or six with an epoch's restore statement (about
# 1.2 KB encoded); its protected header three. Bounded generously, checked exactly by
# ``check_head``.
_HeadPart = Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=1024)]
_HeadPayload = Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=4096)]


class HeadSignature(WireModel):
    protected: _HeadPart
    signature: Annotated[str, StringConstraints(pattern=B64U_PATTERN, max_length=128)]


class SignedTreeHead(WireModel):
    """A signed tree head as it travels in every answer (§9.3): the JWS General JSON
    object. Its shape is checked on parsing; its signature and payload by ``check_head``."""

    payload: _HeadPayload
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
    doc.verify_by(verify_key, "tree head")
    p = doc.payload
    epoch, statement = 0, None
    if set(p) == _EPOCH_MEMBERS:
        if type(p["epoch"]) is not int or p["epoch"] < 1:
            raise MalformedMessage("tree head epoch must be an integer ≥ 1 (0 is left out)")
        epoch = p["epoch"]
        statement = check_statement(p["restore"], node_id, verify_key)
        if statement.epoch != epoch:
            raise MalformedMessage("tree head carries the restore statement of another epoch")
    elif set(p) != _MEMBERS:
        raise MalformedMessage(
            "tree head payload must be exactly node, tree_size, root_hash, signed_at"
            " (and epoch, restore after a restore)"
        )
    if p["node"] != node_id:
        raise MalformedMessage(f"tree head is for node {p['node']!r}, expected {node_id!r}")
    if type(p["tree_size"]) is not int or p["tree_size"] < 0:
        raise MalformedMessage("tree head tree_size must be a non-negative integer")
    if statement is not None and p["tree_size"] < statement.restored.tree_size:
        raise MalformedMessage("tree head of an epoch is smaller than the state it restored")
    root = jws.b64u_decode(p["root_hash"])
    if len(root) != 32:
        raise MalformedMessage("tree head root_hash must be 32 bytes")
    try:
        signed_at = parse_time(p["signed_at"])
    except (TypeError, ValueError) as e:
        raise MalformedMessage("tree head signed_at must be RFC 3339 UTC (…Z)") from e
    text = jws.canonical(doc.to_json()).decode("ascii")
    return TreeHead(p["tree_size"], root, signed_at, text, epoch, statement)


def head_payload(
    node_id: str, tree_size: int, root: bytes, signed_at: str, epoch: int, restore: Any | None
) -> dict[str, Any]:
    """The payload of a head. In epoch 0 exactly the four members every head had before
    restores existed; in a later epoch also ``epoch`` and ``restore``, the statement (a
    parsed JWS object) that opened it."""
    payload: dict[str, Any] = {
        "node": node_id,
        "tree_size": tree_size,
        "root_hash": jws.b64u_encode(root),
        "signed_at": signed_at,
    }
    if epoch:
        payload["epoch"] = epoch
        payload["restore"] = restore
    return payload
