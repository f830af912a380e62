"""OPRF key epochs of this node's tag sets, as a provider (docs/protocol.md §6.1.1).

One row per convenant id: the epoch whose key the published set and every evaluation use
now, when it started, the first tag-set version published under it (no delta reaches
across a key change), and until when hit proofs of the previous epoch are still honoured.
The subject key behind each tag of the previous epoch is kept for that long
(``previous_tag_keys``), so a detail request made from a round just before the change
still resolves (§14.3 step 5).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.protocol.models import rfc3339


@dataclass(frozen=True)
class Epoch:
    convenant_id: str
    epoch: int
    started_at: datetime | None
    """None: no schedule started yet (a set published before epochs, or none at all)."""
    first_version: int
    previous_until: datetime | None

    def ends_at(self, epoch_days: int) -> datetime | None:
        """When the schedule changes the key next; None when it never does."""
        if epoch_days <= 0 or self.started_at is None:
            return None
        return self.started_at + timedelta(days=epoch_days)


def current(conn: sqlite3.Connection, convenant_id: str) -> Epoch:
    row = conn.execute(
        "SELECT epoch, started_at, first_version, previous_until FROM oprf_epochs "
        "WHERE convenant_id = ?",
        (convenant_id,),
    ).fetchone()
    if row is None:
        return Epoch(convenant_id, 0, None, 0, None)
    return Epoch(
        convenant_id,
        int(row[0]),
        datetime.fromisoformat(row[1]),
        int(row[2]),
        datetime.fromisoformat(row[3]) if row[3] else None,
    )


def all_epochs(conn: sqlite3.Connection) -> Iterator[Epoch]:
    for (convenant_id,) in conn.execute("SELECT convenant_id FROM oprf_epochs").fetchall():
        yield current(conn, convenant_id)


def start_schedule(conn: sqlite3.Connection, convenant_id: str, now: datetime) -> Epoch:
    """Begin the schedule of a convenant that has none: its current epoch (0 unless a row
    was lost) counts from ``now``. Inside the caller's transaction."""
    conn.execute(
        "INSERT INTO oprf_epochs (convenant_id, epoch, started_at, first_version) "
        "VALUES (?, 0, ?, 0) ON CONFLICT (convenant_id) DO NOTHING",
        (convenant_id, rfc3339(now)),
    )
    return current(conn, convenant_id)


def begin(
    conn: sqlite3.Connection,
    convenant_id: str,
    epoch: int,
    now: datetime,
    first_version: int,
    previous_until: datetime,
) -> None:
    """Record that ``epoch`` starts now; the previous epoch's tag index moves aside and is
    kept until ``previous_until``. Inside the transaction that publishes the new set."""
    conn.execute("DELETE FROM previous_tag_keys WHERE convenant_id = ?", (convenant_id,))
    conn.execute(
        "INSERT INTO previous_tag_keys (convenant_id, tag, subject_key) "
        "SELECT convenant_id, tag, subject_key FROM tag_keys WHERE convenant_id = ?",
        (convenant_id,),
    )
    conn.execute(
        "INSERT INTO oprf_epochs (convenant_id, epoch, started_at, first_version, "
        "previous_until) VALUES (?,?,?,?,?) ON CONFLICT (convenant_id) DO UPDATE SET "
        "epoch = excluded.epoch, started_at = excluded.started_at, "
        "first_version = excluded.first_version, previous_until = excluded.previous_until",
        (convenant_id, epoch, rfc3339(now), first_version, rfc3339(previous_until)),
    )


def begin_version(conn: sqlite3.Connection, convenant_id: str, version: int) -> None:
    """The first tag-set version of the epoch ``begin`` started, once it is published."""
    conn.execute(
        "UPDATE oprf_epochs SET first_version = ? WHERE convenant_id = ?", (version, convenant_id)
    )


def previous_key_of(
    conn: sqlite3.Connection, convenant_id: str, tag: bytes, now: datetime
) -> str | None:
    """The subject key behind ``tag`` in the previous epoch, while its overlap lasts."""
    epoch = current(conn, convenant_id)
    if epoch.previous_until is None or now >= epoch.previous_until:
        return None
    row = conn.execute(
        "SELECT subject_key FROM previous_tag_keys WHERE convenant_id = ? AND tag = ?",
        (convenant_id, tag),
    ).fetchone()
    return None if row is None else str(row[0])


def end_overlaps(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """Forget the previous epochs whose overlap is over; the convenant ids concerned."""
    ended = [
        e.convenant_id
        for e in all_epochs(conn)
        if e.previous_until is not None and now >= e.previous_until
    ]
    for convenant_id in ended:
        conn.execute("DELETE FROM previous_tag_keys WHERE convenant_id = ?", (convenant_id,))
        conn.execute(
            "UPDATE oprf_epochs SET previous_until = NULL WHERE convenant_id = ?",
            (convenant_id,),
        )
    return ended
