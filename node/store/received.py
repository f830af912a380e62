"""Requester side of the detail exchange (docs/protocol.md §14, §10): a round's hit
proofs, the detail requests sent, and the detail received (encrypted at rest).

Timestamps are stored as RFC 3339 text (UTC, whole seconds, ``Z``): one fixed width, so
``<`` on the text is ``<`` in time and deadlines are plain indexed comparisons.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.protocol.models import rfc3339

SCHEMA = """
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
"""


# --- hit proofs ------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundHit:
    round_trace_id: str
    partner: str
    subject: int
    convenant_id: str
    convenant_version: int
    hit_proof: bytes
    pseudonym: str
    purpose: str
    case_ref: str
    asked_by: str
    asked_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:  # the proof must not end up in a log line by accident
        return (
            f"RoundHit({self.round_trace_id}, {self.partner}, subject {self.subject}, "
            f"expires {rfc3339(self.expires_at)})"
        )


def _hit(row: Sequence[Any]) -> RoundHit:
    return RoundHit(
        str(row[0]),
        str(row[1]),
        int(row[2]),
        str(row[3]),
        int(row[4]),
        bytes(row[5]),
        str(row[6]),
        str(row[7]),
        str(row[8]),
        str(row[9]),
        datetime.fromisoformat(str(row[10])),
        datetime.fromisoformat(str(row[11])),
    )


def keep_hits(conn: sqlite3.Connection, hits: Iterable[RoundHit]) -> None:
    """Inside the round's transaction."""
    conn.executemany(
        "INSERT INTO round_hits (round_trace_id, partner, subject, convenant_id,"
        " convenant_version, hit_proof, pseudonym, purpose, case_ref, asked_by, asked_at,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                h.round_trace_id,
                h.partner,
                h.subject,
                h.convenant_id,
                h.convenant_version,
                h.hit_proof,
                h.pseudonym,
                h.purpose,
                h.case_ref,
                h.asked_by,
                rfc3339(h.asked_at),
                rfc3339(h.expires_at),
            )
            for h in hits
        ],
    )


def round_hit(
    conn: sqlite3.Connection, round_trace_id: str, partner: str, subject: int
) -> RoundHit | None:
    row = conn.execute(
        "SELECT round_trace_id, partner, subject, convenant_id, convenant_version, hit_proof,"
        " pseudonym, purpose, case_ref, asked_by, asked_at, expires_at FROM round_hits"
        " WHERE round_trace_id = ? AND partner = ? AND subject = ?",
        (round_trace_id, partner, subject),
    ).fetchone()
    return None if row is None else _hit(row)


def round_hits_of(conn: sqlite3.Connection, round_trace_id: str) -> list[RoundHit]:
    rows = conn.execute(
        "SELECT round_trace_id, partner, subject, convenant_id, convenant_version, hit_proof,"
        " pseudonym, purpose, case_ref, asked_by, asked_at, expires_at FROM round_hits"
        " WHERE round_trace_id = ? ORDER BY partner, subject",
        (round_trace_id,),
    )
    return [_hit(r) for r in rows]


def delete_expired_hits(conn: sqlite3.Connection, now: datetime) -> int:
    return conn.execute("DELETE FROM round_hits WHERE expires_at <= ?", (rfc3339(now),)).rowcount


# --- asks and their categories ----------------------------------------------------------


@dataclass(frozen=True)
class AskedCategory:
    category: str
    status: str | None
    rule: str | None
    reason: str | None
    reason_detail: str | None
    retain_until: str | None
    recipient_roles: tuple[str, ...] | None
    received_at: str | None
    purged_at: str | None


@dataclass(frozen=True)
class Ask:
    trace_id: str
    partner: str
    round_trace_id: str
    subject: int
    pseudonym: str
    convenant_id: str
    convenant_version: int
    purpose: str
    case_ref: str
    asked_by: str
    asked_role: str
    asked_at: str
    outcome: str
    reason: str | None
    detail: str | None
    categories: tuple[AskedCategory, ...]

    @property
    def open(self) -> bool:
        """Could more still come? A pending category, or no answer about any category
        yet after a local failure (the partner may have decided without us hearing)."""
        if any(c.status == "pending" for c in self.categories):
            return True
        unanswered = all(c.status is None for c in self.categories)
        return unanswered and self.outcome in ("unreachable", "timeout", "invalid")


def insert_ask(conn: sqlite3.Connection, ask: Ask, now: datetime) -> None:
    conn.execute(
        "INSERT INTO detail_asks (trace_id, partner, round_trace_id, subject, pseudonym,"
        " convenant_id, convenant_version, purpose, case_ref, asked_by, asked_role, asked_at,"
        " outcome, reason, detail, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ask.trace_id,
            ask.partner,
            ask.round_trace_id,
            ask.subject,
            ask.pseudonym,
            ask.convenant_id,
            ask.convenant_version,
            ask.purpose,
            ask.case_ref,
            ask.asked_by,
            ask.asked_role,
            ask.asked_at,
            ask.outcome,
            ask.reason,
            ask.detail,
            rfc3339(now),
        ),
    )
    conn.executemany(
        "INSERT INTO asked_categories (trace_id, position, category) VALUES (?, ?, ?)",
        [(ask.trace_id, i, c.category) for i, c in enumerate(ask.categories)],
    )


def set_outcome(
    conn: sqlite3.Connection,
    trace_id: str,
    outcome: str,
    reason: str | None,
    detail: str | None,
    now: datetime,
) -> None:
    conn.execute(
        "UPDATE detail_asks SET outcome = ?, reason = ?, detail = ?, updated_at = ?"
        " WHERE trace_id = ?",
        (outcome, reason, detail, rfc3339(now), trace_id),
    )


def set_category(
    conn: sqlite3.Connection,
    trace_id: str,
    category: str,
    *,
    status: str,
    rule: str,
    reason: str | None,
    reason_detail: str | None,
    retain_until: str | None,
    recipient_roles: Sequence[str] | None,
) -> None:
    conn.execute(
        "UPDATE asked_categories SET status = ?, rule = ?, reason = ?, reason_detail = ?,"
        " retain_until = ?, recipient_roles = ? WHERE trace_id = ? AND category = ?",
        (
            status,
            rule,
            reason,
            reason_detail,
            retain_until,
            None if recipient_roles is None else json.dumps(list(recipient_roles)),
            trace_id,
            category,
        ),
    )


def _category(row: Sequence[Any]) -> AskedCategory:
    roles = None if row[6] is None else tuple(json.loads(str(row[6])))
    text = [None if v is None else str(v) for v in row]
    return AskedCategory(
        str(row[0]), text[1], text[2], text[3], text[4], text[5], roles, text[7], text[8]
    )


def get_ask(conn: sqlite3.Connection, trace_id: str) -> Ask | None:
    row = conn.execute(
        "SELECT trace_id, partner, round_trace_id, subject, pseudonym, convenant_id,"
        " convenant_version, purpose, case_ref, asked_by, asked_role, asked_at, outcome,"
        " reason, detail FROM detail_asks WHERE trace_id = ?",
        (trace_id,),
    ).fetchone()
    if row is None:
        return None
    cats = conn.execute(
        "SELECT category, status, rule, reason, reason_detail, retain_until, recipient_roles,"
        " received_at, purged_at FROM asked_categories WHERE trace_id = ? ORDER BY position",
        (trace_id,),
    )
    return Ask(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        int(row[3]),
        str(row[4]),
        str(row[5]),
        int(row[6]),
        str(row[7]),
        str(row[8]),
        str(row[9]),
        str(row[10]),
        str(row[11]),
        str(row[12]),
        None if row[13] is None else str(row[13]),
        None if row[14] is None else str(row[14]),
        tuple(_category(c) for c in cats),
    )


def all_asks(conn: sqlite3.Connection) -> list[Ask]:
    ids = [str(r[0]) for r in conn.execute("SELECT trace_id FROM detail_asks ORDER BY asked_at")]
    return [a for a in (get_ask(conn, t) for t in ids) if a is not None]


# --- received detail -----------------------------------------------------------------


def store_received(
    conn: sqlite3.Connection,
    trace_id: str,
    category: str,
    nonce: bytes,
    ciphertext: bytes,
    received_at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO received_details (trace_id, category, nonce, ciphertext) VALUES (?, ?, ?, ?)",
        (trace_id, category, nonce, ciphertext),
    )
    conn.execute(
        "UPDATE asked_categories SET received_at = ? WHERE trace_id = ? AND category = ?",
        (rfc3339(received_at), trace_id, category),
    )


def received(conn: sqlite3.Connection, trace_id: str, category: str) -> tuple[bytes, bytes] | None:
    """(nonce, ciphertext) of a stored category, or None."""
    row = conn.execute(
        "SELECT nonce, ciphertext FROM received_details WHERE trace_id = ? AND category = ?",
        (trace_id, category),
    ).fetchone()
    return None if row is None else (bytes(row[0]), bytes(row[1]))


@dataclass(frozen=True)
class Due:
    trace_id: str
    category: str
    partner: str
    pseudonym: str
    convenant_id: str
    convenant_version: int


def due(conn: sqlite3.Connection, now: datetime) -> list[Due]:
    """Stored categories whose retain_until has come."""
    rows = conn.execute(
        "SELECT c.trace_id, c.category, a.partner, a.pseudonym, a.convenant_id,"
        " a.convenant_version FROM asked_categories c JOIN detail_asks a USING (trace_id)"
        " WHERE c.received_at IS NOT NULL AND c.purged_at IS NULL AND c.retain_until <= ?"
        " ORDER BY c.retain_until, c.trace_id, c.position",
        (rfc3339(now),),
    )
    return [Due(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5])) for r in rows]


def purge(conn: sqlite3.Connection, trace_id: str, category: str, now: datetime) -> None:
    conn.execute(
        "DELETE FROM received_details WHERE trace_id = ? AND category = ?", (trace_id, category)
    )
    conn.execute(
        "UPDATE asked_categories SET purged_at = ? WHERE trace_id = ? AND category = ?",
        (rfc3339(now), trace_id, category),
    )
