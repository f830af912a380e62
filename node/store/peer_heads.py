"""Tree heads received from peers (docs/protocol.md §9.3).

Every signed answer carries the partner's current signed tree head; the requester keeps
them. Two heads of one peer for the same size with different roots are proof that the
peer forked its log: both signed documents are kept as evidence.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from node.protocol.models import rfc3339
from node.store import log


def remember(
    conn: sqlite3.Connection, peer: str, head: log.TreeHead, now: datetime
) -> Literal["new", "known", "conflict"]:
    """Store a verified head of ``peer``. Inside the caller's transaction."""
    row = conn.execute(
        "SELECT root_hash, head FROM peer_tree_heads WHERE peer = ? AND tree_size = ?",
        (peer, head.tree_size),
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO peer_tree_heads (peer, tree_size, root_hash, head, received_at) "
            "VALUES (?,?,?,?,?)",
            (peer, head.tree_size, head.root_hash, head.jws, rfc3339(now)),
        )
        return "new"
    if bytes(row[0]) == head.root_hash:
        return "known"
    conn.execute(
        "INSERT INTO peer_head_conflicts (peer, tree_size, held, received, received_at) "
        "VALUES (?,?,?,?,?)",
        (peer, head.tree_size, row[1], head.jws, rfc3339(now)),
    )
    return "conflict"


def latest(conn: sqlite3.Connection, peer: str) -> tuple[int, bytes] | None:
    """(tree_size, root_hash) of the largest head held for ``peer``."""
    row = conn.execute(
        "SELECT tree_size, root_hash FROM peer_tree_heads WHERE peer = ? "
        "ORDER BY tree_size DESC LIMIT 1",
        (peer,),
    ).fetchone()
    return (int(row[0]), bytes(row[1])) if row else None


def conflicts(conn: sqlite3.Connection, peer: str) -> int:
    return int(
        conn.execute("SELECT COUNT(*) FROM peer_head_conflicts WHERE peer = ?", (peer,)).fetchone()[
            0
        ]
    )


def conflicts_by_peer(conn: sqlite3.Connection) -> dict[str, int]:
    """Every peer with a second head held for one of its tree sizes: how many (a fork)."""
    rows = conn.execute("SELECT peer, COUNT(*) FROM peer_head_conflicts GROUP BY peer")
    return {str(peer): int(n) for peer, n in rows}
