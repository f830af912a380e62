"""Tag sets in SQLite: the provider's published sets and the requester's copies (§6.4, §10)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from node.protocol.models import rfc3339
from node.protocol.tag_set import BUCKETS, EMPTY_BUCKET_DIGEST, bucket_digest, combine

# The digest of the empty set (§6.4): SHA256 of 256 × SHA256("").
EMPTY_DIGEST = combine([EMPTY_BUCKET_DIGEST] * BUCKETS)


@dataclass(frozen=True)
class Head:
    version: int
    count: int
    digest: bytes


# --- buckets (§6.4): the digest is kept per first byte, so a change costs one bucket ---
#
# Each side keeps one row per (set, bucket) with that bucket's digest. The rows of one set
# are complete (256) or absent (a database from before the buckets): absent rows are
# computed once, from the members, on first use.


def _bucket_rows(
    conn: sqlite3.Connection, table_sql: tuple[str, str], key: tuple[str, ...], bucket: int
) -> Iterator[bytes]:
    """The tags of one bucket, ascending: a range on the tag primary key,
    ``tag >= X'bb' AND tag < X'bb+1'`` (for bucket 255: ``tag >= X'ff'``)."""
    lo = bytes([bucket])
    if bucket == BUCKETS - 1:
        rows = conn.execute(table_sql[1], (*key, lo))
    else:
        rows = conn.execute(table_sql[0], (*key, lo, bytes([bucket + 1])))
    for r in rows:
        yield r[0]


_MEMBERS_IN = (
    "SELECT tag FROM tag_set_members WHERE convenant_id = ? AND tag >= ? AND tag < ? ORDER BY tag",
    "SELECT tag FROM tag_set_members WHERE convenant_id = ? AND tag >= ? ORDER BY tag",
)
_PEER_TAGS_IN = (
    "SELECT tag FROM peer_tags WHERE partner = ? AND convenant_id = ? AND tag >= ? AND tag < ? "
    "ORDER BY tag",
    "SELECT tag FROM peer_tags WHERE partner = ? AND convenant_id = ? AND tag >= ? ORDER BY tag",
)


def _buckets_of(tags: Iterable[bytes]) -> set[int]:
    return {t[0] for t in tags}


def _member_bucket(conn: sqlite3.Connection, convenant_id: str, bucket: int) -> bytes:
    return bucket_digest(_bucket_rows(conn, _MEMBERS_IN, (convenant_id,), bucket))


def _provider_digest(conn: sqlite3.Connection, convenant_id: str, touched: set[int]) -> bytes:
    """Refresh the buckets in ``touched`` (all of them if none are stored) and combine."""
    stored: dict[int, bytes] = dict(
        conn.execute(
            "SELECT bucket, digest FROM tag_set_buckets WHERE convenant_id = ?", (convenant_id,)
        )
    )
    todo = touched | (set(range(BUCKETS)) - stored.keys())
    for b in sorted(todo):
        stored[b] = _member_bucket(conn, convenant_id, b)
    conn.executemany(
        "INSERT INTO tag_set_buckets (convenant_id, bucket, digest) VALUES (?,?,?) "
        "ON CONFLICT (convenant_id, bucket) DO UPDATE SET digest = excluded.digest",
        ((convenant_id, b, stored[b]) for b in sorted(todo)),
    )
    return combine([stored[b] for b in range(BUCKETS)])


def provider_digest(conn: sqlite3.Connection, convenant_id: str) -> bytes:
    """The digest of the current members from the stored buckets (backfilled if absent)."""
    return _provider_digest(conn, convenant_id, set())


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


def index_keys(
    conn: sqlite3.Connection,
    convenant_id: str,
    entered: Mapping[bytes, str],
    left: Sequence[bytes],
) -> None:
    """Keep ``tag_keys`` with the members: the subject key behind each tag that entered,
    none for a tag that left. Inside the caller's transaction (§14.3 step 5)."""
    conn.executemany(
        "DELETE FROM tag_keys WHERE convenant_id = ? AND tag = ?",
        ((convenant_id, t) for t in left),
    )
    conn.executemany(
        "INSERT OR REPLACE INTO tag_keys (convenant_id, tag, subject_key) VALUES (?,?,?)",
        ((convenant_id, t, k) for t, k in entered.items()),
    )


def key_of(conn: sqlite3.Connection, convenant_id: str, tag: bytes) -> str | None:
    """The subject key behind member ``tag``, or None when the tag is no member."""
    row = conn.execute(
        "SELECT k.subject_key FROM tag_set_members m JOIN tag_keys k "
        "ON k.convenant_id = m.convenant_id AND k.tag = m.tag "
        "WHERE m.convenant_id = ? AND m.tag = ?",
        (convenant_id, tag),
    ).fetchone()
    return None if row is None else str(row[0])


def index_complete(conn: sqlite3.Connection, convenant_id: str) -> bool:
    """Whether every member has its subject key (not so in databases from before §14)."""
    row = conn.execute(
        "SELECT (SELECT COUNT(*) FROM tag_set_members WHERE convenant_id = ?) = "
        "(SELECT COUNT(*) FROM tag_keys WHERE convenant_id = ?)",
        (convenant_id, convenant_id),
    ).fetchone()
    return bool(row[0])


def publish(
    conn: sqlite3.Connection,
    convenant_id: str,
    entered: Sequence[bytes],
    left: Sequence[bytes],
    now: datetime,
) -> Head:
    """Record a new version with its changes, count and digest. Inside the caller's tx.

    ``entered``/``left`` are the membership transitions already applied to
    ``tag_set_members`` (``change_refs``), each tag at most once.
    """
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
    # Only the buckets the change touched are rehashed: O(bucket size + 256), not O(n).
    new_digest = _provider_digest(conn, convenant_id, _buckets_of(entered) | _buckets_of(left))
    n = prev.count + len(entered) - len(left)
    new = Head(version, n, new_digest)
    conn.execute(
        "INSERT INTO tag_set_versions (convenant_id, version, count, digest, published_at) "
        "VALUES (?,?,?,?,?)",
        (convenant_id, version, n, new.digest, rfc3339(now)),
    )
    return new


def publish_whole(conn: sqlite3.Connection, set_id: str, version: int, now: datetime) -> Head:
    """Publish the members held under ``set_id`` as ``version``: the first version of a
    key epoch's set, built beside the live one (§6.1.1). Its digest hashes every bucket
    once; no change rows are written — no delta reaches across a key change (§6.7
    step 9). Inside the caller's tx."""
    count = conn.execute(
        "SELECT COUNT(*) FROM tag_set_members WHERE convenant_id = ?", (set_id,)
    ).fetchone()[0]
    new = Head(version, int(count), _provider_digest(conn, set_id, set(range(BUCKETS))))
    conn.execute(
        "INSERT INTO tag_set_versions (convenant_id, version, count, digest, published_at) "
        "VALUES (?,?,?,?,?)",
        (set_id, version, new.count, new.digest, rfc3339(now)),
    )
    return new


_PURGE = (
    "DELETE FROM tag_set_members WHERE convenant_id = :s AND tag IN "
    "(SELECT tag FROM tag_set_members WHERE convenant_id = :s LIMIT :n)",
    "DELETE FROM tag_keys WHERE convenant_id = :s AND tag IN "
    "(SELECT tag FROM tag_keys WHERE convenant_id = :s LIMIT :n)",
    "DELETE FROM tag_set_changes WHERE rowid IN "
    "(SELECT rowid FROM tag_set_changes WHERE convenant_id = :s LIMIT :n)",
    "DELETE FROM tag_set_buckets WHERE convenant_id = :s",
    "DELETE FROM tag_set_versions WHERE convenant_id = :s",
)


def purge_batch(conn: sqlite3.Connection, set_id: str, limit: int = 5000) -> int:
    """Delete up to ``limit`` rows of each table of a set that is no longer published (a
    previous epoch's after its overlap, or an unfinished next one); the rows deleted.
    Called until it returns 0, one small transaction at a time."""
    params = {"s": set_id, "n": limit}
    return sum(max(conn.execute(sql, params).rowcount, 0) for sql in _PURGE)


def holds_rows(conn: sqlite3.Connection, set_id: str) -> bool:
    return any(
        conn.execute(f"SELECT 1 FROM {table} WHERE convenant_id = ? LIMIT 1", (set_id,)).fetchone()  # noqa: S608
        is not None
        for table in ("tag_set_members", "tag_keys", "tag_set_versions")
    )


def publish_after_restore(
    conn: sqlite3.Connection, convenant_id: str, jump: int, now: datetime
) -> Head:
    """The same members again as version ``current + jump`` (docs/protocol.md §9.7): past
    any version a requester may hold of the history lost with a restore, so none takes
    its old copy for current, and none meets a second digest for a version it holds.
    Records no changes: a delta from a version below it is derived only from versions
    this node has (``delta_since``). Inside the caller's transaction."""
    prev = head(conn, convenant_id)
    version = prev.version + jump
    conn.execute(
        "INSERT INTO tag_set_versions (convenant_id, version, count, digest, published_at) "
        "VALUES (?,?,?,?,?)",
        (convenant_id, version, prev.count, prev.digest, rfc3339(now)),
    )
    return Head(version, prev.count, prev.digest)


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
    """Net (added, removed) from version ``since`` to ``current``; None if not derivable:
    also when this node never published ``since`` — a version of a history lost with a
    restore (docs/protocol.md §9.7), whose members may differ from anything recorded."""
    if since <= 0 or since > current:
        return None
    published = conn.execute(
        "SELECT 1 FROM tag_set_versions WHERE convenant_id = ? AND version = ?",
        (convenant_id, since),
    ).fetchone()
    if published is None:
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


def _peer_bucket(conn: sqlite3.Connection, partner: str, convenant_id: str, bucket: int) -> bytes:
    return bucket_digest(_bucket_rows(conn, _PEER_TAGS_IN, (partner, convenant_id), bucket))


def _peer_digest(
    conn: sqlite3.Connection, partner: str, convenant_id: str, touched: set[int]
) -> bytes:
    stored: dict[int, bytes] = dict(
        conn.execute(
            "SELECT bucket, digest FROM peer_tag_buckets WHERE partner = ? AND convenant_id = ?",
            (partner, convenant_id),
        )
    )
    todo = touched | (set(range(BUCKETS)) - stored.keys())
    for b in sorted(todo):
        stored[b] = _peer_bucket(conn, partner, convenant_id, b)
    conn.executemany(
        "INSERT INTO peer_tag_buckets (partner, convenant_id, bucket, digest) VALUES (?,?,?,?) "
        "ON CONFLICT (partner, convenant_id, bucket) DO UPDATE SET digest = excluded.digest",
        ((partner, convenant_id, b, stored[b]) for b in sorted(todo)),
    )
    return combine([stored[b] for b in range(BUCKETS)])


def peer_digest(conn: sqlite3.Connection, partner: str, convenant_id: str) -> tuple[int, bytes]:
    """(count, digest) of our copy recomputed from ``peer_tags`` alone: O(n).

    Rewrites every stored bucket row, so it also repairs damaged ones. ``store_peer_set``
    returns the same pair incrementally; this is the fallback when that does not match.
    """
    conn.execute(
        "DELETE FROM peer_tag_buckets WHERE partner = ? AND convenant_id = ?",
        (partner, convenant_id),
    )
    digest = _peer_digest(conn, partner, convenant_id, set())
    row = conn.execute(
        "SELECT COUNT(*) FROM peer_tags WHERE partner = ? AND convenant_id = ?",
        (partner, convenant_id),
    ).fetchone()
    return int(row[0]), digest


def store_peer_set(
    conn: sqlite3.Connection,
    partner: str,
    convenant_id: str,
    new_head: PeerHead,
    added: list[bytes],
    removed: list[bytes],
    full: bool,
) -> tuple[int, bytes]:
    """Apply a full set or a delta; returns the copy's (count, digest) afterwards.

    Inside the caller's tx; the caller checks the pair against the signed head. The count
    is the held (verified) count adjusted by the rows actually inserted and deleted, and
    the digest rehashes only the buckets the delta touched (all of them for a full set).
    """
    held = peer_head(conn, partner, convenant_id)
    count = held.count if held is not None and not full else 0
    if full:
        conn.execute(
            "DELETE FROM peer_tags WHERE partner = ? AND convenant_id = ?", (partner, convenant_id)
        )
        conn.execute(
            "DELETE FROM peer_tag_buckets WHERE partner = ? AND convenant_id = ?",
            (partner, convenant_id),
        )
    cur = conn.executemany(
        "DELETE FROM peer_tags WHERE partner = ? AND convenant_id = ? AND tag = ?",
        ((partner, convenant_id, t) for t in removed),
    )
    count -= max(cur.rowcount, 0)
    cur = conn.executemany(
        "INSERT OR IGNORE INTO peer_tags (partner, convenant_id, tag) VALUES (?,?,?)",
        ((partner, convenant_id, t) for t in added),
    )
    count += max(cur.rowcount, 0)
    digest = _peer_digest(conn, partner, convenant_id, _buckets_of(added) | _buckets_of(removed))
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
    return count, digest


def peer_has(conn: sqlite3.Connection, partner: str, convenant_id: str, tag: bytes) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM peer_tags WHERE partner = ? AND convenant_id = ? AND tag = ?",
            (partner, convenant_id, tag),
        ).fetchone()
        is not None
    )
