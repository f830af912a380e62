"""The partner's own registry of subjects it knows (docs/protocol.md §10).

Registrations are the partner's own data and stay on its premises; only tags derived
from them under a convenant key ever leave the node (node/flows/publishing.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from node.protocol.models import rfc3339
from node.protocol.registration import Registration


@dataclass(frozen=True)
class Stored:
    ref: str
    themes: tuple[str, ...]
    subject_keys: tuple[str, ...]
    fingerprint: str


def get(conn: sqlite3.Connection, ref: str) -> Stored | None:
    row = conn.execute(
        "SELECT ref, themes, subject_keys, fingerprint FROM registrations WHERE ref = ?", (ref,)
    ).fetchone()
    if row is None:
        return None
    return Stored(row[0], tuple(json.loads(row[1])), tuple(json.loads(row[2])), row[3])


def upsert(
    conn: sqlite3.Connection,
    reg: Registration,
    subject_keys: tuple[str, ...],
    fingerprint: str,
    now: datetime,
) -> Stored | None:
    """Insert or replace; returns the previous version, or None if new.

    ``subject_keys`` and ``fingerprint`` are ``reg``'s, computed once by the caller. An
    identical registration is left alone: the caller sees ``previous.fingerprint ==
    fingerprint`` and skips it, which makes re-imports idempotent.
    """
    previous = get(conn, reg.ref)
    if previous is not None and previous.fingerprint == fingerprint:
        return previous
    conn.execute(
        "INSERT INTO registrations (ref, themes, subject_keys, fingerprint, updated_at, "
        "retain_until) VALUES (?,?,?,?,?,?) ON CONFLICT (ref) DO UPDATE SET "
        "themes = excluded.themes, subject_keys = excluded.subject_keys, "
        "fingerprint = excluded.fingerprint, updated_at = excluded.updated_at, "
        "retain_until = excluded.retain_until",
        (
            reg.ref,
            json.dumps(list(reg.themes)),
            json.dumps(list(subject_keys)),
            fingerprint,
            rfc3339(now),
            reg.retain_until.isoformat() if reg.retain_until else None,
        ),
    )
    conn.execute("DELETE FROM registration_details WHERE ref = ?", (reg.ref,))
    conn.executemany(
        "INSERT INTO registration_details (ref, category, body) VALUES (?,?,?)",
        [(reg.ref, category, body) for category, body in reg.details.items()],
    )
    if previous is not None:  # by primary key: no second index on ref is kept
        _forget_keys(conn, previous)
    conn.executemany(
        "INSERT OR IGNORE INTO registration_keys (subject_key, ref) VALUES (?,?)",
        [(key, reg.ref) for key in subject_keys],
    )
    return previous


def remove(conn: sqlite3.Connection, ref: str) -> Stored | None:
    previous = get(conn, ref)
    if previous is not None:
        conn.execute("DELETE FROM registrations WHERE ref = ?", (ref,))
        conn.execute("DELETE FROM registration_details WHERE ref = ?", (ref,))
        _forget_keys(conn, previous)
    return previous


def _forget_keys(conn: sqlite3.Connection, stored: Stored) -> None:
    conn.executemany(
        "DELETE FROM registration_keys WHERE subject_key = ? AND ref = ?",
        [(key, stored.ref) for key in stored.subject_keys],
    )


def details(conn: sqlite3.Connection, ref: str) -> dict[str, str]:
    """The detail text per category the source system supplied for ``ref`` ({} if none)."""
    rows = conn.execute(
        "SELECT category, body FROM registration_details WHERE ref = ? ORDER BY category",
        (ref,),
    )
    return {r[0]: r[1] for r in rows}


def refs_with_key(conn: sqlite3.Connection, subject_key: str) -> list[Stored]:
    """Every registration holding ``subject_key``, in ref order."""
    rows = conn.execute(
        "SELECT r.ref, r.themes, r.subject_keys, r.fingerprint FROM registration_keys k "
        "JOIN registrations r ON r.ref = k.ref WHERE k.subject_key = ? ORDER BY r.ref",
        (subject_key,),
    )
    return [Stored(r[0], tuple(json.loads(r[1])), tuple(json.loads(r[2])), r[3]) for r in rows]


def expired(conn: sqlite3.Connection, today: date, limit: int = -1) -> list[str]:
    """Refs whose retain_until day lies before ``today`` (the day itself is still kept),
    at most ``limit`` of them (all when negative)."""
    rows = conn.execute(
        "SELECT ref FROM registrations WHERE retain_until IS NOT NULL AND retain_until < ? "
        "ORDER BY ref LIMIT ?",
        (today.isoformat(), limit),
    )
    return [r[0] for r in rows]


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM registrations").fetchone()[0])


def fingerprints(conn: sqlite3.Connection, refs: Sequence[str]) -> dict[str, str]:
    """Ref → stored fingerprint, for those of ``refs`` that are registered."""
    out: dict[str, str] = {}
    for i in range(0, len(refs), 500):
        chunk = list(refs[i : i + 500])
        marks = ",".join("?" * len(chunk))
        out.update(
            conn.execute(
                f"SELECT ref, fingerprint FROM registrations WHERE ref IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
        )
    return out


def after(
    conn: sqlite3.Connection, after_ref: str, limit: int, upto: str | None = None
) -> list[Stored]:
    """The registrations with ``after_ref < ref`` (and ``ref <= upto`` if given), in ref
    order, at most ``limit``: one chunk of a walk over the registry."""
    if upto is None:
        rows = conn.execute(
            "SELECT ref, themes, subject_keys, fingerprint FROM registrations "
            "WHERE ref > ? ORDER BY ref LIMIT ?",
            (after_ref, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT ref, themes, subject_keys, fingerprint FROM registrations "
            "WHERE ref > ? AND ref <= ? ORDER BY ref LIMIT ?",
            (after_ref, upto, limit),
        ).fetchall()
    return [Stored(r[0], tuple(json.loads(r[1])), tuple(json.loads(r[2])), r[3]) for r in rows]


def iter_all(conn: sqlite3.Connection, batch: int = 10_000) -> Iterator[Stored]:
    """All registrations in ref order, fetched in batches (a registry may hold 10^7)."""
    last = ""
    while True:
        rows = conn.execute(
            "SELECT ref, themes, subject_keys, fingerprint FROM registrations "
            "WHERE ref > ? ORDER BY ref LIMIT ?",
            (last, batch),
        ).fetchall()
        if not rows:
            return
        for r in rows:
            yield Stored(r[0], tuple(json.loads(r[1])), tuple(json.loads(r[2])), r[3])
        last = rows[-1][0]
