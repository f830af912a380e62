"""Opening the node database and creating its schema (docs/protocol.md §10).

One SQLite file per node, WAL mode, autocommit connection with explicit transactions
(``tx``). The schema is idempotent DDL (``IF NOT EXISTS``); its version is kept in
``meta`` so later steps can migrate.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from node.store import details, log, received

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS peers (
    node_id TEXT PRIMARY KEY,
    signing_fingerprint TEXT NOT NULL UNIQUE,
    card TEXT NOT NULL,               -- the peer card JWS as received
    added_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE IF NOT EXISTS convenants (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,           -- the fully signed convenant JWS
    installed_at TEXT NOT NULL,
    PRIMARY KEY (id, version)
);

-- Signed withdrawals of parties from convenants (§5.7), verified before they are stored.
CREATE TABLE IF NOT EXISTS convenant_withdrawals (
    convenant_id TEXT NOT NULL,
    party TEXT NOT NULL,
    convenant_version INTEGER NOT NULL,
    document TEXT NOT NULL,           -- the withdrawal JWS as received
    installed_at TEXT NOT NULL,
    PRIMARY KEY (convenant_id, party, convenant_version)
);

CREATE TABLE IF NOT EXISTS registrations (
    ref TEXT PRIMARY KEY,
    themes TEXT NOT NULL,             -- JSON list
    subject_keys TEXT NOT NULL,       -- JSON list
    fingerprint TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    retain_until TEXT                 -- YYYY-MM-DD, the source system's retention; NULL: none
);

-- The source system's detail text per registration and data category (issue 3 item 2):
-- the partner's own data, replaced with its registration, removed with it, never logged.
CREATE TABLE IF NOT EXISTS registration_details (
    ref TEXT NOT NULL,
    category TEXT NOT NULL,           -- a convenant catalogue category id
    body TEXT NOT NULL,
    PRIMARY KEY (ref, category)
) WITHOUT ROWID;

-- Which registrations hold a subject key: resolves a hit proof to the partner's own
-- registrations (docs/protocol.md §14.3 step 5). Kept with every registry change.
CREATE TABLE IF NOT EXISTS registration_keys (
    subject_key TEXT NOT NULL,
    ref TEXT NOT NULL,
    PRIMARY KEY (subject_key, ref)
) WITHOUT ROWID;

-- Provider side: the subject key behind each member tag, per convenant (§14.3 step 5).
-- One key per tag: tags are 128 bits of an OPRF output, so two keys sharing one is
-- not a case to design for (§6.4).
CREATE TABLE IF NOT EXISTS tag_keys (
    convenant_id TEXT NOT NULL,
    tag BLOB NOT NULL,
    subject_key TEXT NOT NULL,
    PRIMARY KEY (convenant_id, tag)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tag_set_members (
    convenant_id TEXT NOT NULL,
    tag BLOB NOT NULL,
    refs INTEGER NOT NULL,            -- registrations that yield this tag
    PRIMARY KEY (convenant_id, tag)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tag_set_versions (
    convenant_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    count INTEGER NOT NULL,
    digest BLOB NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (convenant_id, version)
);

-- Per bucket (first tag byte) the digest of the members in it (§6.4); 256 rows per set.
CREATE TABLE IF NOT EXISTS tag_set_buckets (
    convenant_id TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (convenant_id, bucket)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tag_set_changes (
    convenant_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    tag BLOB NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('+', '-'))
);
CREATE INDEX IF NOT EXISTS tag_set_changes_by_version ON tag_set_changes (convenant_id, version);

CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE IF NOT EXISTS seen_nonces (
    requester TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (requester, nonce)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_nonces_by_time ON seen_nonces (seen_at);

-- Requester side: the tag sets we hold of our partners.
CREATE TABLE IF NOT EXISTS peer_tag_sets (
    partner TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    count INTEGER NOT NULL,
    digest BLOB NOT NULL,
    oprf_public_key BLOB NOT NULL,
    PRIMARY KEY (partner, convenant_id)
);
-- Signed tree heads received from peers (§9.3): what stops a peer rewriting its history.
CREATE TABLE IF NOT EXISTS peer_tree_heads (
    peer TEXT NOT NULL,
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    head TEXT NOT NULL,               -- the signed head JWS as received
    received_at TEXT NOT NULL,
    PRIMARY KEY (peer, tree_size)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peer_head_conflicts (
    peer TEXT NOT NULL,
    tree_size INTEGER NOT NULL,
    held TEXT NOT NULL,               -- the head we held
    received TEXT NOT NULL,           -- a second head for the same size, another root
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS peer_tags (
    partner TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    tag BLOB NOT NULL,
    PRIMARY KEY (partner, convenant_id, tag)
) WITHOUT ROWID;
-- Per bucket the digest of the tags we hold in it (§6.4); 256 rows per copy.
CREATE TABLE IF NOT EXISTS peer_tag_buckets (
    partner TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    digest BLOB NOT NULL,
    PRIMARY KEY (partner, convenant_id, bucket)
) WITHOUT ROWID;
"""


class NodeConnection(sqlite3.Connection):
    """A connection with the hooks ``tx`` runs around its outermost COMMIT.

    ``before_commit`` seals the transaction's log entries under a signed tree head (set by
    the node: node/flows/context.py) and leaves it in ``sealed_head``; ``after_commit``
    holds work that cannot run inside a transaction (a WAL checkpoint after a purge).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_commit: Callable[[], Any] | None = None
        self.sealed_head: Any = None
        self.after_commit: list[Callable[[], None]] = []
        self.savepoints = 0


def connect(path: Path, *, check_same_thread: bool = False, migrate: bool = True) -> NodeConnection:
    """Open (and if new, create) the node database. Autocommit mode: callers use ``tx``.

    ``migrate=False`` for the server's extra connections: the node's first connection
    has brought the schema up to date already.
    """
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=check_same_thread,
        timeout=30,
        factory=NodeConnection,
    )
    assert isinstance(conn, NodeConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Deleted personal data (purged detail, removed registrations) is overwritten in the
    # file, not left in free pages; ``flush_deleted`` then clears it from the WAL.
    conn.execute("PRAGMA secure_delete=ON")
    if migrate:
        _migrate(conn)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.executescript(
        "BEGIN;" + SCHEMA + log.SCHEMA + details.SCHEMA + received.SCHEMA + "COMMIT;"
    )
    columns = {r[1] for r in conn.execute("PRAGMA table_info(registrations)")}
    if "retain_until" not in columns:  # databases created before retention existed
        conn.execute("ALTER TABLE registrations ADD COLUMN retain_until TEXT")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS registrations_by_retention ON registrations (retain_until)"
        " WHERE retain_until IS NOT NULL"
    )
    with tx(conn):
        # Databases from before the detail exchange: index the keys the registry holds.
        if conn.execute("SELECT 1 FROM registration_keys LIMIT 1").fetchone() is None:
            conn.execute(
                "INSERT OR IGNORE INTO registration_keys (subject_key, ref) "
                "SELECT j.value, r.ref FROM registrations r, json_each(r.subject_keys) j"
            )
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )


def trust_generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'trust_generation'").fetchone()
    return int(row[0]) if row else 0


def bump_trust_generation(conn: sqlite3.Connection) -> None:
    """Mark peers or convenants changed (inside the changing transaction; node/flows/trust.py)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('trust_generation', '1') ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )


def flush_deleted(conn: sqlite3.Connection) -> None:
    """Write the WAL back into the database and truncate it, so the old page images of
    deleted rows (zeroed in the file by ``secure_delete``) are gone from the WAL too.
    Called after retention purges; inside a transaction it runs after the COMMIT."""
    if conn.in_transaction and isinstance(conn, NodeConnection):
        conn.after_commit.append(lambda: flush_deleted(conn))
        return
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@contextmanager
def tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: a state change and its log entries commit together or not.

    Nested inside an open transaction it is a savepoint: the inner work rolls back alone
    on error, and commits with the outer transaction (the writer's commit group,
    node/store/database.py). The outermost one runs the connection's ``before_commit``
    (sealing the log) before COMMIT and its ``after_commit`` work after it.
    """
    if conn.in_transaction:
        depth = getattr(conn, "savepoints", 0)
        name = f"sp{depth}"
        if isinstance(conn, NodeConnection):
            conn.savepoints = depth + 1
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        finally:
            if isinstance(conn, NodeConnection):
                conn.savepoints = depth
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        if isinstance(conn, NodeConnection) and conn.before_commit is not None:
            conn.sealed_head = conn.before_commit()
    except BaseException:
        conn.execute("ROLLBACK")
        if isinstance(conn, NodeConnection):
            conn.after_commit.clear()
        raise
    conn.execute("COMMIT")
    if isinstance(conn, NodeConnection):
        work, conn.after_commit = conn.after_commit, []
        for fn in work:
            fn()
