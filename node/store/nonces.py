"""Replay protection: nonces seen within the clock-skew window (docs/protocol.md §6.6)."""

from __future__ import annotations

import sqlite3

from node.errors import ReplayedRequest


def check_and_record(
    conn: sqlite3.Connection, requester: str, nonce: str, now: float, window: float
) -> None:
    """Record a nonce or raise ReplayedRequest. Inside the caller's transaction.

    Only nonces younger than twice the skew window are kept: an older request is already
    refused as stale, so its nonce need not be remembered.
    """
    conn.execute("DELETE FROM seen_nonces WHERE seen_at < ?", (now - 2 * window,))
    try:
        conn.execute(
            "INSERT INTO seen_nonces (requester, nonce, seen_at) VALUES (?,?,?)",
            (requester, nonce, now),
        )
    except sqlite3.IntegrityError as e:
        raise ReplayedRequest("this nonce was already used") from e


def seen(conn: sqlite3.Connection, requester: str, nonce: str, now: float, window: float) -> bool:
    """Was this nonce recorded within the window ``check_and_record`` keeps? A read only,
    so a replay is refused before anything is written."""
    row = conn.execute(
        "SELECT 1 FROM seen_nonces WHERE requester = ? AND nonce = ? AND seen_at >= ?",
        (requester, nonce, now - 2 * window),
    ).fetchone()
    return row is not None
