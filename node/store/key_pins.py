"""Requester side: the OPRF public key each partner showed, per convenant and key epoch
(docs/protocol.md §6.8 step 4a, §9.6).

A partner has one key per convenant and epoch, derived from its seed; two keys for one
epoch mean it showed someone a key it does not show everyone. The first key seen is
pinned; another one, in the partner's own answer or told by a peer that compared pins
with us, is kept as a conflict, and the partner's answers under that epoch are `invalid`
from then on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from node.protocol.models import rfc3339


@dataclass(frozen=True)
class Pin:
    partner: str
    convenant_id: str
    epoch: int
    oprf_public_key: bytes


def held(conn: sqlite3.Connection, partner: str, convenant_id: str, epoch: int) -> bytes | None:
    row = conn.execute(
        "SELECT oprf_public_key FROM peer_oprf_keys "
        "WHERE partner = ? AND convenant_id = ? AND epoch = ?",
        (partner, convenant_id, epoch),
    ).fetchone()
    return None if row is None else bytes(row[0])


def in_conflict(conn: sqlite3.Connection, partner: str, convenant_id: str, epoch: int) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM peer_oprf_key_conflicts "
            "WHERE partner = ? AND convenant_id = ? AND epoch = ? LIMIT 1",
            (partner, convenant_id, epoch),
        ).fetchone()
        is not None
    )


def observe(
    conn: sqlite3.Connection, pin: Pin, source: str, now: datetime
) -> Literal["new_conflict", "conflict"] | None:
    """Pin ``pin`` if nothing is pinned for its epoch; record a conflict if another key is.
    ``"new_conflict"`` when this is another key than the pinned one, ``"conflict"`` when
    a conflict for that epoch was recorded before, None when all agree. Inside the
    caller's transaction."""
    have = held(conn, pin.partner, pin.convenant_id, pin.epoch)
    if have is None:
        conn.execute(
            "INSERT INTO peer_oprf_keys (partner, convenant_id, epoch, oprf_public_key, "
            "first_seen_at) VALUES (?,?,?,?,?)",
            (pin.partner, pin.convenant_id, pin.epoch, pin.oprf_public_key, rfc3339(now)),
        )
    elif have != pin.oprf_public_key:
        known = conn.execute(
            "SELECT 1 FROM peer_oprf_key_conflicts WHERE partner = ? AND convenant_id = ? "
            "AND epoch = ? AND other = ? LIMIT 1",
            (pin.partner, pin.convenant_id, pin.epoch, pin.oprf_public_key),
        ).fetchone()
        if known is not None:  # the same second key again: one record, one log entry
            return "conflict"
        conn.execute(
            "INSERT INTO peer_oprf_key_conflicts (partner, convenant_id, epoch, held, other, "
            "source, seen_at) VALUES (?,?,?,?,?,?,?)",
            (pin.partner, pin.convenant_id, pin.epoch, have, pin.oprf_public_key, source,
             rfc3339(now)),
        )  # fmt: skip
        return "new_conflict"
    return "conflict" if in_conflict(conn, pin.partner, pin.convenant_id, pin.epoch) else None


def pins(conn: sqlite3.Connection, partners: Iterable[str] | None = None) -> list[Pin]:
    """Every pin held (of the named partners), newest epoch first per partner."""
    rows = conn.execute(
        "SELECT partner, convenant_id, epoch, oprf_public_key FROM peer_oprf_keys "
        "ORDER BY partner, convenant_id, epoch DESC"
    ).fetchall()
    wanted = None if partners is None else set(partners)
    return [
        Pin(r[0], r[1], int(r[2]), bytes(r[3])) for r in rows if wanted is None or r[0] in wanted
    ]


def conflicts(conn: sqlite3.Connection) -> list[tuple[str, str, int, str]]:
    """(partner, convenant id, epoch, source) of every conflict held."""
    return [
        (r[0], r[1], int(r[2]), r[3])
        for r in conn.execute(
            "SELECT partner, convenant_id, epoch, source FROM peer_oprf_key_conflicts "
            "ORDER BY seen_at"
        )
    ]
