"""Log epochs after a restore (docs/protocol.md §9.7): the restore statement and the
held-head exchange.

A node restored from a backup has a log shorter than, or different from, the one its
peers hold signed heads of. Signing on would give a second root for sizes a peer holds:
a fork (§9.3). Instead it asks its peers for the newest head of its own they hold
(``node.protocol.held_head``) and, when its log is behind, opens a new *epoch*: a signed restore
statement names the state it was restored to and the newest head peers hold, admitting
that the entries between them are lost. Every head of the new epoch carries the
statement, so any peer that meets the epoch can check it and record a restore instead of
a fork; sizes are compared within one epoch only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from node.errors import MalformedMessage
from node.protocol import jws

RESTORE_STATEMENT_TYP = "vhnode-restore-statement/v1"

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_STATEMENT_MEMBERS = {
    "node",
    "epoch",
    "restored",
    "held",
    "peers_asked",
    "peers_answered",
    "stated_at",
}
_POINT_MEMBERS = {"epoch", "tree_size", "root_hash"}


@dataclass(frozen=True)
class LogPoint:
    """A state of a log: ``tree_size`` entries of ``epoch`` with Merkle root ``root_hash``."""

    epoch: int
    tree_size: int
    root_hash: bytes

    def wire(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "tree_size": self.tree_size,
            "root_hash": jws.b64u_encode(self.root_hash),
        }


@dataclass(frozen=True)
class RestoreStatement:
    """A verified restore statement (§9.7)."""

    node: str
    epoch: int
    restored: LogPoint
    """The state the node was restored to: the newest head of its restored log."""
    held: LogPoint
    held_head_digest: bytes
    """§3.5 digest of the newest signed head peers said they hold (or of the node's
    own newest head, when none held more)."""
    peers_asked: int
    peers_answered: int
    stated_at: datetime
    jws: str
    """The statement as canonical JSON text (JWS General JSON Serialization)."""

    @property
    def lost_entries(self) -> int:
        """Entries of the held epoch past the restored state: the admitted loss (0 when
        the epoch was opened only because some peer did not answer)."""
        if self.held.epoch != self.restored.epoch:
            return self.held.tree_size
        return self.held.tree_size - self.restored.tree_size


def statement_payload(
    *,
    node: str,
    restored: LogPoint,
    held: LogPoint,
    held_head_digest: bytes,
    peers_asked: int,
    peers_answered: int,
    stated_at: str,
) -> dict[str, Any]:
    """The payload of the statement that opens epoch ``held.epoch + 1``."""
    return {
        "node": node,
        "epoch": held.epoch + 1,
        "restored": restored.wire(),
        "held": {**held.wire(), "head_digest": jws.b64u_encode(held_head_digest)},
        "peers_asked": peers_asked,
        "peers_answered": peers_answered,
        "stated_at": stated_at,
    }


def _count(value: Any, what: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise MalformedMessage(f"restore statement {what} must be an integer ≥ {minimum}")
    return value


def _hash(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedMessage(f"restore statement {what} must be B64U text")
    raw = jws.b64u_decode(value)
    if len(raw) != 32:
        raise MalformedMessage(f"restore statement {what} must be 32 bytes")
    return raw


def _point(value: Any, what: str, extra: set[str] = frozenset()) -> LogPoint:  # type: ignore[assignment]
    if not isinstance(value, dict) or set(value) != _POINT_MEMBERS | extra:
        members = ", ".join(sorted(_POINT_MEMBERS | extra))
        raise MalformedMessage(f"restore statement {what} must be exactly {members}")
    return LogPoint(
        _count(value["epoch"], f"{what}.epoch"),
        _count(value["tree_size"], f"{what}.tree_size"),
        _hash(value["root_hash"], f"{what}.root_hash"),
    )


def check_statement(
    obj: Any, node_id: str, verify_key: bytes | Mapping[str, bytes]
) -> RestoreStatement:
    """Parse and verify a restore statement of ``node_id``, signed by ``verify_key`` (one
    key, or every key the node has had by fingerprint, §4.1.1). Raises BadSignature or
    MalformedMessage."""
    doc = jws.parse(obj, RESTORE_STATEMENT_TYP)
    doc.verify_by(verify_key, "restore statement")
    p = doc.payload
    if set(p) != _STATEMENT_MEMBERS:
        raise MalformedMessage(
            "restore statement payload must be exactly " + ", ".join(sorted(_STATEMENT_MEMBERS))
        )
    if p["node"] != node_id:
        raise MalformedMessage(f"restore statement is for node {p['node']!r}, expected {node_id!r}")
    epoch = _count(p["epoch"], "epoch", 1)
    restored = _point(p["restored"], "restored")
    held = _point(p["held"], "held", {"head_digest"})
    # The new epoch follows the newest one peers hold; the restored state is not newer
    # than that head (else nothing would have been lost and no epoch needed).
    if epoch != held.epoch + 1:
        raise MalformedMessage("restore statement epoch must be one past the held head's epoch")
    if restored.epoch > held.epoch or (
        restored.epoch == held.epoch and restored.tree_size > held.tree_size
    ):
        raise MalformedMessage("restore statement's restored state is past the held head")
    asked = _count(p["peers_asked"], "peers_asked")
    answered = _count(p["peers_answered"], "peers_answered")
    if answered > asked:
        raise MalformedMessage("restore statement peers_answered exceeds peers_asked")
    try:
        stated_at = datetime.strptime(p["stated_at"], _TIME_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError) as e:
        raise MalformedMessage("restore statement stated_at must be RFC 3339 UTC (…Z)") from e
    return RestoreStatement(
        node=node_id,
        epoch=epoch,
        restored=restored,
        held=held,
        held_head_digest=_hash(p["held"]["head_digest"], "held.head_digest"),
        peers_asked=asked,
        peers_answered=answered,
        stated_at=stated_at,
        jws=jws.canonical(doc.to_json()).decode("ascii"),
    )
