"""Requester side of the detail exchange (docs/protocol.md §14, §10): a round's hit
proofs, the detail requests sent, and the detail received (encrypted at rest).

Timestamps are stored as RFC 3339 text (UTC, whole seconds, ``Z``): one fixed width, so
``<`` on the text is ``<`` in time and deadlines are plain indexed comparisons.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nacl.bindings
import nacl.exceptions

from node.errors import MalformedMessage
from node.protocol.models import rfc3339

NONCE_BYTES = 24  # XChaCha20-Poly1305


# --- at rest (§14.8) -------------------------------------------------------------------


def _aad(trace_id: str, partner: str, category: str) -> bytes:
    return f"{trace_id}|{partner}|{category}".encode()


def seal_at_rest(
    key: bytes, trace_id: str, partner: str, category: str, entries: Sequence[str]
) -> tuple[bytes, bytes]:
    """(nonce, ciphertext) of a category's texts, bound to its exchange and category."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    plain = json.dumps(list(entries), ensure_ascii=False).encode()
    ct = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plain, _aad(trace_id, partner, category), nonce, key
    )
    return nonce, ct


def open_at_rest(
    key: bytes, trace_id: str, partner: str, category: str, nonce: bytes, ciphertext: bytes
) -> tuple[str, ...]:
    """The texts, or MalformedMessage when the row was altered, moved to another exchange,
    or sealed under another key."""
    try:
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, _aad(trace_id, partner, category), nonce, key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise MalformedMessage("stored detail does not decrypt") from e
    texts = json.loads(plain)
    return tuple(str(t) for t in texts)


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


def recent_asks(conn: sqlite3.Connection, limit: int) -> list[Ask]:
    """The ``limit`` newest asks, newest first (rowid breaks a tie within one second)."""
    ids = [
        str(r[0])
        for r in conn.execute(
            "SELECT trace_id FROM detail_asks ORDER BY asked_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
    ]
    return [a for a in (get_ask(conn, t) for t in ids) if a is not None]


def asks_of_case(
    conn: sqlite3.Connection, case_ref: str, round_trace_ids: Sequence[str]
) -> list[Ask]:
    """The asks under ``case_ref`` or after one of these rounds, newest first."""
    rows = conn.execute(
        "SELECT trace_id FROM detail_asks WHERE case_ref = ? OR round_trace_id IN"
        " (SELECT value FROM json_each(?)) ORDER BY asked_at DESC, rowid DESC",
        (case_ref, json.dumps(list(round_trace_ids))),
    )
    ids = [str(r[0]) for r in rows]
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
