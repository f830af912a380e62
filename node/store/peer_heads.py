"""Tree heads received from peers (docs/protocol.md §9.3, §9.7).

Every signed answer carries the partner's current signed tree head; the requester keeps
them. Two heads of one peer for the same size *within one log epoch* with different roots
are proof that the peer forked its log: both signed documents are kept as evidence.

A head of a newer epoch carries the peer's signed restore statement (§9.7): the peer was
restored from a backup and admits the entries it lost. It is kept as evidence and the
head is a restore, not a fork — unless the statement contradicts a head we hold (its
restored state is not a state of the log we saw), or the peer signs on in an epoch it
closed, after the statement that closed it: those are forks.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Literal

from node.protocol import jws
from node.protocol.models import rfc3339
from node.protocol.restore import RestoreStatement
from node.protocol.tree_head import parse_time
from node.store import log

Seen = Literal["new", "known", "conflict", "restored"]


def remember(conn: sqlite3.Connection, peer: str, head: log.TreeHead, now: datetime) -> Seen:
    """Store a verified head of ``peer``. Inside the caller's transaction.

    ``restored``: the head opens a newer epoch than any we held of the peer, and its
    statement agrees with what we hold (kept in ``peer_log_restores``)."""
    newest = newest_epoch(conn, peer)
    if head.epoch > newest and head.restore is not None:
        if newest_held(conn, peer) is not None:
            contradiction = _contradicts(conn, peer, head.restore)
            if contradiction is not None:
                _conflict(conn, peer, head, contradiction, now)
                return "conflict"
        conn.execute(
            "INSERT OR IGNORE INTO peer_log_restores (peer, epoch, statement, received_at)"
            " VALUES (?,?,?,?)",
            (peer, head.epoch, head.restore.jws, rfc3339(now)),
        )
        _insert(conn, peer, head, now)
        return "restored" if newest_held(conn, peer, below_epoch=head.epoch) else "new"
    if head.epoch < newest:
        closed = _closing_statement(conn, peer, head.epoch)
        if closed is not None and head.signed_at > closed[1]:
            # Signed in an epoch after the peer itself declared it closed: two histories.
            _conflict(conn, peer, head, closed[0], now)
            return "conflict"
    row = conn.execute(
        "SELECT root_hash, head FROM peer_tree_heads WHERE peer = ? AND epoch = ?"
        " AND tree_size = ?",
        (peer, head.epoch, head.tree_size),
    ).fetchone()
    if row is None:
        _insert(conn, peer, head, now)
        return "new"
    if bytes(row[0]) == head.root_hash:
        return "known"
    _conflict(conn, peer, head, str(row[1]), now)
    return "conflict"


def _insert(conn: sqlite3.Connection, peer: str, head: log.TreeHead, now: datetime) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO peer_tree_heads"
        " (peer, epoch, tree_size, root_hash, head, received_at) VALUES (?,?,?,?,?,?)",
        (peer, head.epoch, head.tree_size, head.root_hash, head.jws, rfc3339(now)),
    )


def _conflict(
    conn: sqlite3.Connection, peer: str, head: log.TreeHead, held: str, now: datetime
) -> None:
    conn.execute(
        "INSERT INTO peer_head_conflicts (peer, tree_size, held, received, received_at, epoch)"
        " VALUES (?,?,?,?,?,?)",
        (peer, head.tree_size, held, head.jws, rfc3339(now), head.epoch),
    )


def _contradicts(conn: sqlite3.Connection, peer: str, statement: RestoreStatement) -> str | None:
    """A held head the statement's restored state contradicts (its JWS), or None: we hold
    a head of the restored epoch and size with another root — the node claims to be back
    at a state it never signed for us."""
    r = statement.restored
    row = conn.execute(
        "SELECT root_hash, head FROM peer_tree_heads WHERE peer = ? AND epoch = ?"
        " AND tree_size = ?",
        (peer, r.epoch, r.tree_size),
    ).fetchone()
    if row is not None and bytes(row[0]) != r.root_hash:
        return str(row[1])
    return None


def _closing_statement(
    conn: sqlite3.Connection, peer: str, epoch: int
) -> tuple[str, datetime] | None:
    """The statement (JWS, stated_at) of the first epoch after ``epoch`` that we hold."""
    row = conn.execute(
        "SELECT statement FROM peer_log_restores WHERE peer = ? AND epoch > ?"
        " ORDER BY epoch LIMIT 1",
        (peer, epoch),
    ).fetchone()
    if row is None:
        return None
    payload = json.loads(jws.b64u_decode(json.loads(row[0])["payload"]))
    return str(row[0]), parse_time(payload["stated_at"])


def newest_epoch(conn: sqlite3.Connection, peer: str) -> int:
    """The highest epoch of ``peer`` we hold a head of (0 when none)."""
    row = conn.execute("SELECT max(epoch) FROM peer_tree_heads WHERE peer = ?", (peer,)).fetchone()
    return 0 if row[0] is None else int(row[0])


def newest_held(
    conn: sqlite3.Connection, peer: str, *, below_epoch: int | None = None
) -> str | None:
    """The JWS of the newest head of ``peer`` we hold: highest epoch (below
    ``below_epoch`` if given), then largest size. What the held-head exchange answers."""
    row = conn.execute(
        "SELECT head FROM peer_tree_heads WHERE peer = ? AND epoch < ?"
        " ORDER BY epoch DESC, tree_size DESC LIMIT 1",
        (peer, 2**62 if below_epoch is None else below_epoch),
    ).fetchone()
    return None if row is None else str(row[0])


def latest(conn: sqlite3.Connection, peer: str) -> tuple[int, bytes] | None:
    """(tree_size, root_hash) of the largest head held for ``peer`` in its newest epoch."""
    row = conn.execute(
        "SELECT tree_size, root_hash FROM peer_tree_heads WHERE peer = ? "
        "ORDER BY epoch DESC, tree_size DESC LIMIT 1",
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


def restores_by_peer(conn: sqlite3.Connection) -> dict[str, int]:
    """Every peer we hold restore statements of: how many (§9.7)."""
    rows = conn.execute("SELECT peer, COUNT(*) FROM peer_log_restores GROUP BY peer")
    return {str(peer): int(n) for peer, n in rows}


def restores(conn: sqlite3.Connection, peer: str) -> int:
    """How many restore statements of ``peer`` we hold (§9.7)."""
    row = conn.execute("SELECT COUNT(*) FROM peer_log_restores WHERE peer = ?", (peer,))
    return int(row.fetchone()[0])
