"""Users' web sign-in credentials: password hash, sealed TOTP secret, failed attempts.

The store keeps and returns them; whether a sign-in succeeds is decided in
``node/flows/signin.py``. The TOTP secret is sealed with XChaCha20-Poly1305 under the
node's second-factor key, bound to the user's name, so a row copied to another user
does not open.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

import nacl.bindings
import nacl.exceptions

from node.errors import MalformedMessage
from node.protocol.models import rfc3339

NONCE_BYTES = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES


@dataclass(frozen=True)
class Credentials:
    name: str
    role: str
    revoked: bool
    password_hash: str | None
    totp_secret: str | None
    totp_last_step: int
    failed_attempts: int
    locked_until: datetime | None


def _aad(name: str) -> bytes:
    return b"vhnode/v1 totp secret|" + name.encode()


def seal_secret(key: bytes, name: str, secret: str) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(NONCE_BYTES)
    ct = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
        secret.encode(), _aad(name), nonce, key
    )
    return nonce, ct


def open_secret(key: bytes, name: str, nonce: bytes, ciphertext: bytes) -> str:
    try:
        return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ciphertext, _aad(name), nonce, key
        ).decode()
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as e:
        raise MalformedMessage("stored second factor does not decrypt") from e


def find(conn: sqlite3.Connection, key: bytes, name: str) -> Credentials | None:
    """The user ``name`` with its credentials (None fields where none are set), or None
    when there is no such user."""
    row = conn.execute(
        "SELECT u.name, u.role, u.revoked_at, c.password_hash, c.totp_nonce,"
        " c.totp_ciphertext, c.totp_last_step, c.failed_attempts, c.locked_until"
        " FROM users u LEFT JOIN user_credentials c ON c.name = u.name WHERE u.name = ?",
        (name,),
    ).fetchone()
    if row is None:
        return None
    secret = open_secret(key, row[0], row[4], row[5]) if row[4] is not None else None
    return Credentials(
        name=row[0],
        role=row[1],
        revoked=row[2] is not None,
        password_hash=row[3],
        totp_secret=secret,
        totp_last_step=int(row[6] or 0),
        failed_attempts=int(row[7] or 0),
        locked_until=datetime.fromisoformat(row[8]) if row[8] else None,
    )


def _ensure(conn: sqlite3.Connection, name: str, now: datetime) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO user_credentials (name, updated_at) VALUES (?, ?)",
        (name, rfc3339(now)),
    )


def set_password(conn: sqlite3.Connection, name: str, password_hash: str, now: datetime) -> None:
    """A new password also lifts a lock-out: the admin who set it vouches for the user."""
    _ensure(conn, name, now)
    conn.execute(
        "UPDATE user_credentials SET password_hash = ?, failed_attempts = 0,"
        " locked_until = NULL, updated_at = ? WHERE name = ?",
        (password_hash, rfc3339(now), name),
    )


def set_totp(conn: sqlite3.Connection, key: bytes, name: str, secret: str, now: datetime) -> None:
    _ensure(conn, name, now)
    nonce, ct = seal_secret(key, name, secret)
    conn.execute(
        "UPDATE user_credentials SET totp_nonce = ?, totp_ciphertext = ?, totp_last_step = 0,"
        " updated_at = ? WHERE name = ?",
        (nonce, ct, rfc3339(now), name),
    )


def record_failure(
    conn: sqlite3.Connection, name: str, lock_after: int, locked_until: datetime, now: datetime
) -> bool:
    """Count one failed sign-in; True when this failure locks the user out."""
    _ensure(conn, name, now)
    (failed,) = conn.execute(
        "UPDATE user_credentials SET failed_attempts = failed_attempts + 1, updated_at = ?"
        " WHERE name = ? RETURNING failed_attempts",
        (rfc3339(now), name),
    ).fetchone()
    if failed >= lock_after:
        conn.execute(
            "UPDATE user_credentials SET locked_until = ?, failed_attempts = 0 WHERE name = ?",
            (rfc3339(locked_until), name),
        )
        return True
    return False


def record_success(conn: sqlite3.Connection, name: str, totp_step: int, now: datetime) -> None:
    conn.execute(
        "UPDATE user_credentials SET failed_attempts = 0, locked_until = NULL,"
        " totp_last_step = ?, updated_at = ? WHERE name = ?",
        (totp_step, rfc3339(now), name),
    )


@dataclass(frozen=True)
class Standing:
    """What an admin sees of a user's sign-in, never a secret: which credentials are
    set, a lock-out and whether the user is revoked."""

    name: str
    role: str
    created_at: str
    revoked_at: str | None
    has_password: bool
    has_second_factor: bool
    failed_attempts: int
    locked_until: datetime | None


def standings(conn: sqlite3.Connection) -> list[Standing]:
    rows = conn.execute(
        "SELECT u.name, u.role, u.created_at, u.revoked_at, c.password_hash IS NOT NULL,"
        " c.totp_ciphertext IS NOT NULL, c.failed_attempts, c.locked_until"
        " FROM users u LEFT JOIN user_credentials c ON c.name = u.name ORDER BY u.name"
    )
    return [
        Standing(
            name=r[0],
            role=r[1],
            created_at=r[2],
            revoked_at=r[3],
            has_password=bool(r[4]),
            has_second_factor=bool(r[5]),
            failed_attempts=int(r[6] or 0),
            locked_until=datetime.fromisoformat(r[7]) if r[7] else None,
        )
        for r in rows
    ]
