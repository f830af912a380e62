"""Tag sets in SQLite: the provider's published sets and the requester's copies (§6.4, §10)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from node.protocol.models import rfc3339

EMPTY_DIGEST = hashlib.sha256(b"").digest()


@dataclass(frozen=True)
class Head:
    version: int
    count: int
    digest: bytes


# --- provider side -----------------------------------------------------------------


def head(conn: sqlite3.Connection, convenant_id: str) -> Head:
    row = conn.execute(
        "SELECT version, count, digest FROM tag_set_versions WHERE convenant_id = ? "
        "ORDER BY version DESC LIMIT 1",
        (convenant_id,),
    ).fetchone()
    return Head(row[0], row[1], row[2]) if row else Head(0, 0, EMPTY_DIGEST)


def change_refs(
    conn: sqlite3.Connection, convenant_id: str, deltas: dict[bytes, int]
) -> tuple[list[bytes], list[bytes]]:
    """Adjust per-tag reference counts; returns the tags that entered and left the set."""
    entered: list[bytes] = []
    left: list[bytes] = []
    for tag, delta in deltas.items():
        if delta == 0:
            continue
        row = conn.execute(
            "SELECT refs FROM tag_set_members WHERE convenant_id = ? AND tag = ?",
            (convenant_id, tag),
        ).fetchone()
        before = row[0] if row else 0
        after = max(before + delta, 0)
        if before == 0 and after > 0:
            conn.execute(
                "INSERT INTO tag_set_members (convenant_id, tag, refs) VALUES (?,?,?)",
                (convenant_id, tag, after),
            )
            entered.append(tag)
        elif before > 0 and after == 0:
            conn.execute(
                "DELETE FROM tag_set_members WHERE convenant_id = ? AND tag = ?",
                (convenant_id, tag),
            )
            left.append(tag)
        elif after != before:
            conn.execute(
                "UPDATE tag_set_members SET refs = ? WHERE convenant_id = ? AND tag = ?",
                (after, convenant_id, tag),
            )
    return entered, left


def publish(
    conn: sqlite3.Connection,
    convenant_id: str,
    entered: Iterable[bytes],
    left: Iterable[bytes],
    now: datetime,
) -> Head:
    """Record a new version with its changes, count and digest. Inside the caller's tx."""
    prev = head(conn, convenant_id)
    version = prev.version + 1
    conn.executemany(
        "INSERT INTO tag_set_changes (convenant_id, version, tag, op) VALUES (?,?,?,'+')",
        ((convenant_id, version, t) for t in entered),
    )
    conn.executemany(
        "INSERT INTO tag_set_changes (convenant_id, version, tag, op) VALUES (?,?,?,'-')",
        ((convenant_id, version, t) for t in left),
    )
    h = hashlib.sha256()
    n = 0
    # The primary key keeps tags in byte order, so this is the spec's sorted digest.
    for (tag,) in conn.execute(
        "SELECT tag FROM tag_set_members WHERE convenant_id = ? ORDER BY tag", (convenant_id,)
    ):
        h.update(tag)
        n += 1
    new = Head(version, n, h.digest())
    conn.execute(
        "INSERT INTO tag_set_versions (convenant_id, version, count, digest, published_at) "
        "VALUES (?,?,?,?,?)",
        (convenant_id, version, n, new.digest, rfc3339(now)),
    )
    return new


def members(conn: sqlite3.Connection, convenant_id: str) -> list[bytes]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT tag FROM tag_set_members WHERE convenant_id = ? ORDER BY tag", (convenant_id,)
        )
    ]


def delta_since(
    conn: sqlite3.Connection, convenant_id: str, since: int, current: int
) -> tuple[list[bytes], list[bytes]] | None:
    """Net (added, removed) from version ``since`` to ``current``; None if not derivable."""
    if since <= 0 or since > current:
        return None
    first_op: dict[bytes, str] = {}
    for tag, op in conn.execute(
        "SELECT tag, op FROM tag_set_changes WHERE convenant_id = ? AND version > ? "
        "AND version <= ? ORDER BY version, rowid",
        (convenant_id, since, current),
    ):
        first_op.setdefault(tag, op)
    added: list[bytes] = []
    removed: list[bytes] = []
    for tag, op in first_op.items():
        # Ops are recorded only on membership transitions, so the first op after
        # ``since`` tells whether the tag was a member then.
        was_member = op == "-"
        is_member = (
            conn.execute(
                "SELECT 1 FROM tag_set_members WHERE convenant_id = ? AND tag = ?",
                (convenant_id, tag),
            ).fetchone()
            is not None
        )
        if is_member and not was_member:
            added.append(tag)
        elif was_member and not is_member:
            removed.append(tag)
    return sorted(added), sorted(removed)


# --- requester side: our copies of partners' tag sets ------------------------------


@dataclass(frozen=True)
class PeerHead:
    version: int
    count: int
    digest: bytes
    oprf_public_key: bytes


def peer_head(conn: sqlite3.Connection, partner: str, convenant_id: str) -> PeerHead | None:
    row = conn.execute(
        "SELECT version, count, digest, oprf_public_key FROM peer_tag_sets "
        "WHERE partner = ? AND convenant_id = ?",
        (partner, convenant_id),
    ).fetchone()
    return PeerHead(row[0], row[1], row[2], row[3]) if row else None


def peer_digest(conn: sqlite3.Connection, partner: str, convenant_id: str) -> tuple[int, bytes]:
    h = hashlib.sha256()
    n = 0
    for (tag,) in conn.execute(
        "SELECT tag FROM peer_tags WHERE partner = ? AND convenant_id = ? ORDER BY tag",
        (partner, convenant_id),
    ):
        h.update(tag)
        n += 1
    return n, h.digest()


def store_peer_set(
    conn: sqlite3.Connection,
    partner: str,
    convenant_id: str,
    new_head: PeerHead,
    added: list[bytes],
    removed: list[bytes],
    full: bool,
) -> None:
    """Apply a full set or a delta. Inside the caller's tx; the caller checks the digest."""
    if full:
        conn.execute(
            "DELETE FROM peer_tags WHERE partner = ? AND convenant_id = ?", (partner, convenant_id)
        )
    conn.executemany(
        "DELETE FROM peer_tags WHERE partner = ? AND convenant_id = ? AND tag = ?",
        ((partner, convenant_id, t) for t in removed),
    )
    conn.executemany(
        "INSERT OR IGNORE INTO peer_tags (partner, convenant_id, tag) VALUES (?,?,?)",
        ((partner, convenant_id, t) for t in added),
    )
    conn.execute(
        "INSERT INTO peer_tag_sets (partner, convenant_id, version, count, digest, oprf_public_key)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (partner, convenant_id) DO UPDATE SET "
        "version = excluded.version, count = excluded.count, digest = excluded.digest, "
        "oprf_public_key = excluded.oprf_public_key",
        (
            partner,
            convenant_id,
            new_head.version,
            new_head.count,
            new_head.digest,
            new_head.oprf_public_key,
        ),
    )


def peer_has(conn: sqlite3.Connection, partner: str, convenant_id: str, tag: bytes) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM peer_tags WHERE partner = ? AND convenant_id = ? AND tag = ?",
            (partner, convenant_id, tag),
        ).fetchone()
        is not None
    )
