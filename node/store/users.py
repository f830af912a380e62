"""Local users of the node's own API: bearer tokens bound to a role, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from node.errors import AuthError, Conflict, InputError, NotFound
from node.protocol.fields import check_user_name
from node.protocol.models import rfc3339

# monitor: a scraper's token (Prometheus) that reads /metrics and nothing else, so the
# monitoring system never holds a token that can ask about a person or change the node.
Role = Literal["admin", "source", "coordinator", "liaison", "privacy_officer", "monitor"]
ROLES: tuple[str, ...] = get_args(Role)
TOKEN_PREFIX = "vhn_"


@dataclass(frozen=True)
class User:
    name: str
    role: str


def _hash(token: str) -> str:
    # Tokens are 256-bit random, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: sqlite3.Connection, name: str, role: str, now: datetime) -> str:
    """Create a user and return its token (shown once, never stored in clear)."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    check_user_name(name)
    if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
        raise Conflict(f"user {name} exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO users (name, role, token_hash, created_at) VALUES (?,?,?,?)",
        (name, role, _hash(token), rfc3339(now)),
    )
    return token


def authenticate(conn: sqlite3.Connection, token: str) -> User:
    row = conn.execute(
        "SELECT name, role FROM users WHERE token_hash = ? AND revoked_at IS NULL", (_hash(token),)
    ).fetchone()
    if row is None:
        raise AuthError("unknown or revoked token")
    return User(name=row[0], role=row[1])


def revoke(conn: sqlite3.Connection, name: str, now: datetime) -> None:
    cur = conn.execute(
        "UPDATE users SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        (rfc3339(now), name),
    )
    if cur.rowcount == 0:
        raise NotFound(f"no active user {name}")


def all_users(conn: sqlite3.Connection) -> list[dict[str, str | None]]:
    rows = conn.execute("SELECT name, role, created_at, revoked_at FROM users ORDER BY name")
    return [{"name": r[0], "role": r[1], "created_at": r[2], "revoked_at": r[3]} for r in rows]
