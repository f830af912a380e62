"""Sessions of the web application, server-side (docs/webapp.md "Sessions").

The browser's cookie holds a random id; the table holds its SHA-256, so a copy of the
database does not let anyone take over a session. A session lives only as long as its
row: signing out, a revoked user and a timeout delete it.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from node.protocol.models import rfc3339


@dataclass(frozen=True)
class WebSession:
    user: str
    role: str
    created_at: datetime
    last_seen_at: datetime


def id_hash(session_id: str) -> str:
    # 256-bit random ids: a fast hash is enough, there is nothing to brute-force.
    return hashlib.sha256(session_id.encode()).hexdigest()


def create(conn: sqlite3.Connection, user: str, now: datetime) -> str:
    """A new session of ``user``; returns its id (for the cookie, never stored)."""
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO web_sessions (id_hash, user_name, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?)",
        (id_hash(session_id), user, rfc3339(now), rfc3339(now)),
    )
    return session_id


def find(conn: sqlite3.Connection, session_id: str) -> WebSession | None:
    """The session and its user's current role; None if unknown or the user is revoked."""
    row = conn.execute(
        "SELECT s.user_name, u.role, s.created_at, s.last_seen_at FROM web_sessions s"
        " JOIN users u ON u.name = s.user_name AND u.revoked_at IS NULL"
        " WHERE s.id_hash = ?",
        (id_hash(session_id),),
    ).fetchone()
    if row is None:
        return None
    return WebSession(
        row[0], row[1], datetime.fromisoformat(row[2]), datetime.fromisoformat(row[3])
    )


def touch(conn: sqlite3.Connection, session_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ?",
        (rfc3339(now), id_hash(session_id)),
    )


def delete(conn: sqlite3.Connection, session_id: str) -> bool:
    cur = conn.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash(session_id),))
    return cur.rowcount > 0


def delete_of_user(conn: sqlite3.Connection, user: str) -> int:
    return conn.execute("DELETE FROM web_sessions WHERE user_name = ?", (user,)).rowcount


def expired(
    conn: sqlite3.Connection, idle_before: datetime, created_before: datetime
) -> list[tuple[str, bool]]:
    """(user, ended by the absolute timeout) of every session past either timeout."""
    rows = conn.execute(
        "SELECT user_name, created_at < ? FROM web_sessions"
        " WHERE last_seen_at < ? OR created_at < ?",
        (rfc3339(created_before), rfc3339(idle_before), rfc3339(created_before)),
    )
    return [(str(r[0]), bool(r[1])) for r in rows]


def delete_expired(
    conn: sqlite3.Connection, idle_before: datetime, created_before: datetime
) -> int:
    cur = conn.execute(
        "DELETE FROM web_sessions WHERE last_seen_at < ? OR created_at < ?",
        (rfc3339(idle_before), rfc3339(created_before)),
    )
    return cur.rowcount
