"""Numbered, forward-only schema migrations keyed on ``PRAGMA user_version``.

``user_version`` is the number of the last step a database has run; step ``n`` is
``STEPS[n - 1]``. A fresh database runs every step; a database runs the steps above its
number, each in one transaction that ends by setting ``user_version`` to it, so a crash
leaves the database at the last whole step and the next open continues from there. A
database whose number is higher than ``len(STEPS)`` was written by a newer vhnode and is
refused: its tables may mean something this code does not know (docs/adr/0003).

Adding a step: append a function to ``STEPS``; never edit a step that has shipped (a
database that ran it would not run it again). The schema text below is release 0.1.0's,
frozen: later changes are later steps.

Release 0.1.0 wrote no ``user_version`` (it is 0) but ``meta.schema_version = 1``; such a
database has step 1's tables already and is recognised by its ``meta`` table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from node.errors import ConfigError, MalformedMessage
from node.keys import NodeKeys
from node.store.received import open_at_rest, seal_at_rest

BASELINE_SCHEMA = """
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

CREATE TABLE IF NOT EXISTS log_entries (
    seq INTEGER PRIMARY KEY,          -- leaf index: 0-based, contiguous
    body TEXT NOT NULL,               -- RFC 8785 canonical JSON, exactly the bytes hashed
    leaf_hash BLOB NOT NULL,          -- SHA-256(0x00 || body)
    kind TEXT NOT NULL,               -- kind .. counterparty: copies of body fields for
    time TEXT NOT NULL,               -- querying only, verify checks they equal the body
    trace_id TEXT,
    convenant_id TEXT,
    counterparty TEXT
);
CREATE INDEX IF NOT EXISTS log_entries_by_kind ON log_entries (kind);
CREATE INDEX IF NOT EXISTS log_entries_by_trace ON log_entries (trace_id);
CREATE INDEX IF NOT EXISTS log_entries_by_time ON log_entries (time);

-- One row per distinct pseudonym in an entry's subjects: answers access requests
-- without scanning bodies. Keyed by (seq, pseudonym) so verify can merge it in seq order.
CREATE TABLE IF NOT EXISTS log_subjects (
    seq INTEGER NOT NULL,
    pseudonym TEXT NOT NULL,
    PRIMARY KEY (seq, pseudonym)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS log_subjects_by_pseudonym ON log_subjects (pseudonym);

CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,          -- copies of the signed payload, for queries
    signed_at TEXT NOT NULL,
    jws TEXT NOT NULL                 -- the signed head as JSON text: the authoritative copy
);

-- Right frontier of the Merkle tree: the root of the perfect subtree of 2^level leaves
-- for every set bit of the tree size. Enough to append and to compute the root.
CREATE TABLE IF NOT EXISTS log_frontier (
    level INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);

-- Every complete subtree above the leaves: the row (level, idx), level >= 1, is the root
-- of the perfect subtree over entries [idx * 2^level, (idx + 1) * 2^level). Leaves
-- (level 0) are log_entries.leaf_hash. Append-only, like the entries; a log written
-- before this table existed is backfilled from the leaf hashes (backfill_nodes).
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS detail_requests (
    requester TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    convenant_version INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    requesting_user TEXT NOT NULL,
    requesting_role TEXT NOT NULL,
    round_trace_id TEXT NOT NULL,
    subject_pseudonym TEXT NOT NULL,  -- log pseudonym of the resolved subject key
    refs TEXT NOT NULL,               -- JSON list: the subject's registrations in scope
    received_at TEXT NOT NULL,
    PRIMARY KEY (requester, trace_id)
);
CREATE TABLE IF NOT EXISTS detail_categories (
    requester TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    category TEXT NOT NULL,
    position INTEGER NOT NULL,        -- order asked
    status TEXT NOT NULL CHECK (status IN ('delivered', 'denied', 'pending', 'unavailable')),
    rule TEXT NOT NULL,
    reason TEXT,
    reason_detail TEXT,
    retain_until TEXT,                -- delivered: the recipient's deadline
    recipient_roles TEXT,             -- delivered: JSON list
    decided_by TEXT,                  -- a liaison's user name, when one decided
    decided_at TEXT,
    PRIMARY KEY (requester, trace_id, category)
);
CREATE INDEX IF NOT EXISTS detail_categories_pending ON detail_categories (status)
    WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS hit_notices (
    id INTEGER PRIMARY KEY,
    requester TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    convenant_version INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    requesting_user TEXT NOT NULL,
    round_trace_id TEXT NOT NULL,
    subject_pseudonym TEXT NOT NULL,
    refs TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- The hit proofs of our rounds (§14.1): one row per (round, partner, subject) that was a
-- hit. The proof is the 64-byte OPRF output; never logged, never shown, deleted at
-- expires_at.
CREATE TABLE IF NOT EXISTS round_hits (
    round_trace_id TEXT NOT NULL,
    partner TEXT NOT NULL,
    subject INTEGER NOT NULL,         -- index of the subject in the round
    convenant_id TEXT NOT NULL,
    convenant_version INTEGER NOT NULL,
    hit_proof BLOB NOT NULL,
    pseudonym TEXT NOT NULL,          -- log pseudonym of the subject key (§9.2)
    purpose TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    asked_by TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (round_trace_id, partner, subject)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS round_hits_by_expiry ON round_hits (expires_at);

-- Detail requests this node sent (§14.2), with the last exchange's outcome.
CREATE TABLE IF NOT EXISTS detail_asks (
    trace_id TEXT PRIMARY KEY,
    partner TEXT NOT NULL,
    round_trace_id TEXT NOT NULL,
    subject INTEGER NOT NULL,
    pseudonym TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    convenant_version INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    asked_by TEXT NOT NULL,
    asked_role TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    outcome TEXT NOT NULL,            -- answered/refused, or unreachable/timeout/invalid
    reason TEXT,
    detail TEXT,
    updated_at TEXT NOT NULL
);

-- Per asked category the partner's latest answer (status NULL: no answer yet) and what
-- this node did with delivered detail: received_at when stored, purged_at when deleted.
CREATE TABLE IF NOT EXISTS asked_categories (
    trace_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    category TEXT NOT NULL,
    status TEXT,
    rule TEXT,
    reason TEXT,
    reason_detail TEXT,
    retain_until TEXT,
    recipient_roles TEXT,             -- JSON list
    received_at TEXT,
    purged_at TEXT,
    PRIMARY KEY (trace_id, category)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS asked_categories_by_retention ON asked_categories (retain_until)
    WHERE received_at IS NOT NULL AND purged_at IS NULL;

-- The delivered texts, XChaCha20-Poly1305 at rest (§14.8); the row goes at retain_until.
CREATE TABLE IF NOT EXISTS received_details (
    trace_id TEXT NOT NULL,
    category TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (trace_id, category)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS registrations_by_retention ON registrations (retain_until)
    WHERE retain_until IS NOT NULL;
"""

LEGACY_PSEUDONYMS_META = "legacy_pseudonyms_before_seq"
"""``meta`` key: log entries before this seq were written with the legacy (HMAC-derived)
pseudonym key; absent on a node that never had one (docs/protocol.md §9.2)."""

REENCRYPT_BATCH = 500
"""Received detail rows re-encrypted per transaction in step 2: a requester with years of
delivered detail does not hold the write lock for one long transaction."""


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    run: Callable[[sqlite3.Connection, NodeKeys | None], None]
    """The step itself, inside its transaction; ``user_version`` is set after it."""
    prepare: Callable[[sqlite3.Connection, NodeKeys | None], None] | None = None
    """Bulk work before the step's transaction, in small transactions of its own; it must
    be idempotent, since a crash between them leaves the step to run again."""


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def latest() -> int:
    """The newest step this code knows: what ``migrate`` brings every database to."""
    return len(STEPS)


def migrate(
    conn: sqlite3.Connection, keys: NodeKeys | None = None, target: int | None = None
) -> list[int]:
    """Run the steps this database has not run yet, up to ``target`` (default: all); the
    numbers run, in order.

    ``keys`` are needed only by a step that re-encrypts data under a key derived from
    them (step 2, when the database holds received detail); without them such a step
    raises ConfigError and the database stays at the last whole step.
    """
    current = user_version(conn)
    if current > latest():
        raise ConfigError(
            f"{_path(conn)} is at schema step {current}, written by a newer vhnode; "
            f"this vhnode knows steps up to {latest()} (downgrades are not supported)"
        )
    ran: list[int] = []
    for step in STEPS[current : latest() if target is None else target]:
        if step.prepare is not None:
            step.prepare(conn, keys)
        with _transaction(conn):
            # Another process opening the same home may have run it while we waited.
            if user_version(conn) >= step.number:
                continue
            step.run(conn, keys)
            conn.execute(f"PRAGMA user_version = {step.number}")
        ran.append(step.number)
    return ran


def legacy_pseudonyms_before(conn: sqlite3.Connection) -> int:
    """The log seq from which every pseudonym is the HKDF one; 0 when none is legacy."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (LEGACY_PSEUDONYMS_META,))
    found = row.fetchone()
    return int(found[0]) if found else 0


# --- step 1: release 0.1.0's schema ----------------------------------------------------


def _baseline(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    """Release 0.1.0's tables. A database from before numbered migrations (0.1.0 and the
    development versions before it) keeps what it has: every statement is ``IF NOT
    EXISTS``, and the two repairs the old connect ran every time run once here."""
    before_migrations = _has_table(conn, "meta")
    if before_migrations and _has_table(conn, "registrations"):
        columns = {r[1] for r in conn.execute("PRAGMA table_info(registrations)")}
        if "retain_until" not in columns:  # before retention existed
            conn.execute("ALTER TABLE registrations ADD COLUMN retain_until TEXT")
    for statement in _statements(BASELINE_SCHEMA):
        conn.execute(statement)
    keys_indexed = conn.execute("SELECT 1 FROM registration_keys LIMIT 1").fetchone()
    if before_migrations and keys_indexed is None:
        # Before the detail exchange: index the keys the registry holds.
        conn.execute(
            "INSERT OR IGNORE INTO registration_keys (subject_key, ref) "
            "SELECT j.value, r.ref FROM registrations r, json_each(r.subject_keys) j"
        )


# --- step 2: keys derived with HKDF ----------------------------------------------------


def _reencrypt_prepare(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    after: tuple[str, str] | None = ("", "")
    while after is not None:
        with _transaction(conn):
            if user_version(conn) >= 2:
                return
            after = _reencrypt(conn, keys, after, REENCRYPT_BATCH)


def _hkdf_keys(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    """Received detail at rest under the HKDF key; the log's pseudonyms from now on under
    the HKDF pseudonym key, the seq from which they are recorded (docs/adr/0003)."""
    _reencrypt(conn, keys, ("", ""), None)  # rows written since prepare; normally none
    size = conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM log_entries").fetchone()[0]
    if size:
        # Entries already signed keep their pseudonyms: the log is append-only.
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            (LEGACY_PSEUDONYMS_META, str(size)),
        )
    # user_version says which schema this is; 0.1.0's marker would only contradict it.
    conn.execute("DELETE FROM meta WHERE key = 'schema_version'")


def _reencrypt(
    conn: sqlite3.Connection, keys: NodeKeys | None, after: tuple[str, str], limit: int | None
) -> tuple[str, str] | None:
    """Re-encrypt received detail rows after ``after`` from the legacy at-rest key to the
    HKDF one, up to ``limit`` rows; the last row's key, or None when none are left.

    A row that opens under the HKDF key is done already (a crashed earlier run); a row
    that opens under neither was altered at rest and stays as it is: the reader shows
    nothing of it, as before.
    """
    rows = conn.execute(
        "SELECT d.trace_id, d.category, a.partner, d.nonce, d.ciphertext"
        " FROM received_details d LEFT JOIN detail_asks a ON a.trace_id = d.trace_id"
        " WHERE (d.trace_id, d.category) > (?, ?) ORDER BY d.trace_id, d.category LIMIT ?",
        (*after, -1 if limit is None else limit),  # SQLite: a negative LIMIT is none
    ).fetchall()
    if not rows:
        return None
    if keys is None:
        raise ConfigError(
            f"{_path(conn)} holds received detail to re-encrypt (schema step 2), which "
            "needs the node's keys: open it through its node home"
        )
    new, old = keys.at_rest_key(), keys.legacy_at_rest_key()
    for trace_id, category, partner, nonce, ciphertext in rows:
        if partner is None:
            continue
        for key in (new, old):
            try:
                texts = open_at_rest(key, trace_id, partner, category, nonce, ciphertext)
            except MalformedMessage:
                continue
            if key is old:
                fresh = seal_at_rest(new, trace_id, partner, category, texts)
                conn.execute(
                    "UPDATE received_details SET nonce = ?, ciphertext = ?"
                    " WHERE trace_id = ? AND category = ?",
                    (*fresh, trace_id, category),
                )
            break
    if limit is None or len(rows) < limit:
        return None
    return (str(rows[-1][0]), str(rows[-1][1]))


# --- step 3: the liaison's inbox tells what was sent and what was read ---------------


def _liaison_inbox(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    """Hit notices a liaison acknowledged (issue 9 item 12), looked up per round to keep
    one notice per registration per round; and, per detail category, when its text was
    first sent sealed to the requester (item 11): an approved category is "delivered" on
    the wire before any text could be fetched, and the liaison must see whether one was.
    A category delivered before this step takes the time of its first ``detail.disclosed``
    log entry, the record of that sending."""
    # Each column only where missing: like step 1, the step may meet a database whose
    # user_version says less than it holds (a development copy, a restored file).
    for table, column in (
        ("hit_notices", "acknowledged_at"),
        ("hit_notices", "acknowledged_by"),
        ("detail_categories", "disclosed_at"),
    ):
        if column not in {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS hit_notices_by_round ON hit_notices (requester, round_trace_id)"
    )
    conn.execute(
        "UPDATE detail_categories SET disclosed_at = ("
        " SELECT MIN(l.time) FROM log_entries l WHERE l.kind = 'detail.disclosed'"
        " AND l.trace_id = detail_categories.trace_id"
        " AND l.counterparty = detail_categories.requester"
        " AND json_extract(l.body, '$.data.category') = detail_categories.category"
        ") WHERE status = 'delivered'"
    )


# --- step 4: signing in to the web application ------------------------------------------

WEB_SIGN_IN_SCHEMA = """
-- A local user's password and second factor for the web application (docs/webapp.md).
-- The API's bearer token stays in users; a user without a row here cannot sign in.
CREATE TABLE IF NOT EXISTS user_credentials (
    name TEXT PRIMARY KEY REFERENCES users (name),
    password_hash TEXT,               -- argon2id, PHC string
    totp_nonce BLOB,                  -- the TOTP secret, sealed under the node's at-rest key
    totp_ciphertext BLOB,
    totp_last_step INTEGER NOT NULL DEFAULT 0,   -- a code is accepted once (RFC 6238 §5.2)
    failed_attempts INTEGER NOT NULL DEFAULT 0,  -- consecutive, reset by a sign-in
    locked_until TEXT,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- Sessions of the web application, kept server-side so that signing out, a revoked
-- user and a timeout end them for certain. The cookie holds the id, the table its hash.
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS web_sessions_by_user ON web_sessions (user_name);
"""


def _web_sign_in(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    for statement in _statements(WEB_SIGN_IN_SCHEMA):
        conn.execute(statement)


# --- step 5: OPRF key epochs ------------------------------------------------------------

OPRF_EPOCHS_SCHEMA = """
-- Provider side: the OPRF key epoch of each convenant's tag set (§6.1.1). No row: epoch 0
-- (the key of the versions before epochs), its schedule not started yet. Each epoch's set
-- is kept in the tag-set tables under a set id of its own: the convenant id for epoch 0,
-- "<convenant id>#<epoch>" after (node/store/oprf_epochs.py).
CREATE TABLE IF NOT EXISTS oprf_epochs (
    convenant_id TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    first_version INTEGER NOT NULL,   -- the first tag-set version under this epoch's key
    previous_until TEXT,              -- hit proofs of the previous epoch are honoured until
    staging_cursor TEXT               -- the next epoch's set holds the refs up to this one
) WITHOUT ROWID;

-- Requester side: the OPRF public key each partner showed for each epoch (§6.8 step 4a).
CREATE TABLE IF NOT EXISTS peer_oprf_keys (
    partner TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    oprf_public_key BLOB NOT NULL,
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (partner, convenant_id, epoch)
) WITHOUT ROWID;

-- Two keys for one partner, convenant and epoch: seen in an answer, or told by a peer.
CREATE TABLE IF NOT EXISTS peer_oprf_key_conflicts (
    partner TEXT NOT NULL,
    convenant_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    held BLOB NOT NULL,
    other BLOB NOT NULL,
    source TEXT NOT NULL,             -- the partner's own answer, or the peer that told us
    seen_at TEXT NOT NULL
);
"""


def _oprf_epochs(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    for statement in _statements(OPRF_EPOCHS_SCHEMA):
        conn.execute(statement)


# --- step 6: log epochs after a restore (docs/protocol.md §9.7) --------------------------

LOG_EPOCHS_SCHEMA = """
-- Our own epochs after the first: each opened by the signed restore statement its heads carry.
CREATE TABLE IF NOT EXISTS log_epochs (
    epoch INTEGER PRIMARY KEY,
    statement TEXT NOT NULL,          -- the restore statement JWS, canonical JSON text
    restored_size INTEGER NOT NULL,
    started_at TEXT NOT NULL
);
-- Peers' restore statements, received inside their heads: the evidence of each restore.
CREATE TABLE IF NOT EXISTS peer_log_restores (
    peer TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    statement TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (peer, epoch)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peer_tree_heads_by_epoch (
    peer TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    tree_size INTEGER NOT NULL,
    root_hash BLOB NOT NULL,
    head TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (peer, epoch, tree_size)
) WITHOUT ROWID;
"""


def _log_epochs(conn: sqlite3.Connection, keys: NodeKeys | None) -> None:
    """A peer's heads are keyed by (peer, epoch, size): a restored peer's new epoch reuses
    sizes without a conflict, while two roots for one size within an epoch still are one
    (§9.3, §9.7). Every head held so far is of epoch 0."""
    for statement in _statements(LOG_EPOCHS_SCHEMA):
        conn.execute(statement)
    if "epoch" not in {str(r[1]) for r in conn.execute("PRAGMA table_info(peer_head_conflicts)")}:
        conn.execute("ALTER TABLE peer_head_conflicts ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "INSERT OR IGNORE INTO peer_tree_heads_by_epoch"
        " (peer, epoch, tree_size, root_hash, head, received_at)"
        " SELECT peer, 0, tree_size, root_hash, head, received_at FROM peer_tree_heads"
    )
    conn.execute("DROP TABLE peer_tree_heads")
    conn.execute("ALTER TABLE peer_tree_heads_by_epoch RENAME TO peer_tree_heads")


STEPS: Sequence[Step] = (
    Step(1, "release 0.1.0 schema", _baseline),
    Step(2, "HKDF-derived at-rest and pseudonym keys", _hkdf_keys, _reencrypt_prepare),
    Step(3, "liaison inbox: acknowledged hit notices, first disclosure", _liaison_inbox),
    Step(4, "web application sign-in: credentials and sessions", _web_sign_in),
    Step(5, "OPRF key epochs and pinned partner keys", _oprf_epochs),
    Step(6, "log epochs: restore statements, heads held per epoch", _log_epochs),
)


# --- helpers ---------------------------------------------------------------------------


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # db.tx, which this module cannot import (db imports it).
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one: ``executescript`` would commit the step's
    transaction first."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete statement in schema: {pending.strip()[:60]}")


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


def _path(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) or "the database"
    return "the database"
