"""Known peers: their peer cards as received (docs/protocol.md §4.2)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from node.errors import Conflict, KeyMismatch, NotFound
from node.protocol import jws
from node.protocol.models import rfc3339
from node.protocol.peer_card import CARD_CLOCK_SKEW, PeerCard, verify_card
from node.store import db


@dataclass(frozen=True)
class Peer:
    card: PeerCard
    document: jws.SignedDocument
    revoked_at: str | None

    @property
    def node_id(self) -> str:
        return self.card.node_id


def _row_to_peer(row: tuple[str, str | None]) -> Peer:
    card, doc = verify_card(json.loads(row[0]))
    return Peer(card=card, document=doc, revoked_at=row[1])


Outcome = Literal["added", "unchanged", "updated", "rotated"]


def cross_signed_by_held(card: PeerCard, held: Peer) -> bool:
    """§4.2 step 5: ``card`` is a rotation card (§4.1.1, its cross-signature verified by
    ``verify_card``) whose previous key is the key of the held card, and that card is not
    revoked: the holder of the key this node trusts for that node id vouches for the new
    one. A revoked card vouches for nothing, so a stolen key cannot move its node on."""
    return (
        held.revoked_at is None
        and card.previous_fingerprint is not None
        and card.previous_fingerprint == held.card.signing_fingerprint
    )


def add(
    conn: sqlite3.Connection, document: jws.SignedDocument, now: datetime, rotate: bool = False
) -> Outcome:
    """Store a verified peer card. Inside the caller's transaction.

    A card for a known node id with a different signing key is refused (KeyMismatch)
    unless it is cross-signed by the held key (``cross_signed_by_held``) or ``rotate`` is
    set: a swapped key is exactly what an attacker would send.
    """
    card, _ = verify_card(document.to_json())
    existing = by_id(conn, card.node_id)
    text = json.dumps(document.to_json())
    if existing is None:
        other = conn.execute(
            "SELECT node_id FROM peers WHERE signing_fingerprint = ?", (card.signing_fingerprint,)
        ).fetchone()
        if other:
            raise KeyMismatch(f"signing key already belongs to peer {other[0]}")
        conn.execute(
            "INSERT INTO peers (node_id, signing_fingerprint, card, added_at) VALUES (?,?,?,?)",
            (card.node_id, card.signing_fingerprint, text, rfc3339(now)),
        )
        db.bump_trust_generation(conn)
        return "added"
    if (
        existing.card.signing_fingerprint != card.signing_fingerprint
        and not rotate
        and not cross_signed_by_held(card, existing)
    ):
        raise KeyMismatch(_mismatch(card, existing))
    if existing.document.payload_b64 == document.payload_b64:
        return "unchanged"
    outcome: Literal["updated", "rotated"] = (
        "rotated" if existing.card.signing_fingerprint != card.signing_fingerprint else "updated"
    )
    # §4.2 step 4: issued_at orders a node's cards, so a card captured earlier cannot
    # undo a renewal. A held card issued in the future (by a fast clock, accepted before
    # the receiver refused such cards) orders nothing: it would block every later card.
    held_from_future = existing.card.issued_at - CARD_CLOCK_SKEW > now
    if existing.card.issued_at > card.issued_at and not held_from_future:
        raise Conflict(
            f"peer card of {card.node_id} was issued at {rfc3339(card.issued_at)}, before the "
            f"card held (issued at {rfc3339(existing.card.issued_at)}): an older card does "
            "not replace a newer one"
        )
    holder = conn.execute(
        "SELECT node_id FROM peers WHERE signing_fingerprint = ? AND node_id != ?",
        (card.signing_fingerprint, card.node_id),
    ).fetchone()
    if holder:  # one key, one node: also when rotating
        raise KeyMismatch(f"signing key already belongs to peer {holder[0]}")
    conn.execute(
        "UPDATE peers SET signing_fingerprint = ?, card = ?, revoked_at = NULL WHERE node_id = ?",
        (card.signing_fingerprint, text, card.node_id),
    )
    db.bump_trust_generation(conn)
    return outcome


def _mismatch(card: PeerCard, held: Peer) -> str:
    """Why a card with another key was not taken as a rotation, for the admin to act on."""
    head = f"peer {card.node_id} is known with another signing key"
    tail = "; use --rotate after confirming the new fingerprint out of band"
    if card.previous_fingerprint is None:
        return head + tail
    if card.previous_fingerprint != held.card.signing_fingerprint:
        return f"{head}, not the previous key this card's cross-signature names" + tail
    return f"{head}: the card held is revoked, so its cross-signature counts for nothing" + tail


def by_id(conn: sqlite3.Connection, node_id: str) -> Peer | None:
    row = conn.execute(
        "SELECT card, revoked_at FROM peers WHERE node_id = ?", (node_id,)
    ).fetchone()
    return _row_to_peer(row) if row else None


def by_fingerprint(conn: sqlite3.Connection, fp: str) -> Peer | None:
    row = conn.execute(
        "SELECT card, revoked_at FROM peers WHERE signing_fingerprint = ?", (fp,)
    ).fetchone()
    return _row_to_peer(row) if row else None


def all_peers(conn: sqlite3.Connection) -> list[Peer]:
    rows = conn.execute("SELECT card, revoked_at FROM peers ORDER BY node_id").fetchall()
    return [_row_to_peer(r) for r in rows]


def revoke(conn: sqlite3.Connection, node_id: str, now: datetime) -> bool:
    """Mark a peer revoked; False if it already was. NotFound for an unknown node id."""
    cur = conn.execute(
        "UPDATE peers SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL",
        (rfc3339(now), node_id),
    )
    if cur.rowcount == 0 and by_id(conn, node_id) is None:
        raise NotFound(f"no peer {node_id}")
    if cur.rowcount:
        db.bump_trust_generation(conn)
    return cur.rowcount > 0


def signing_keys(conn: sqlite3.Connection) -> dict[str, bytes]:
    """Fingerprint → public key for every known peer (revoked included: for history)."""
    return {p.card.signing_fingerprint: p.card.signing_key_bytes for p in all_peers(conn)}
