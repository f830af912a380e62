"""OPRF key epochs of this node's tag sets, as a provider (docs/protocol.md §6.1.1).

One row per convenant id: the epoch whose key the published set and every evaluation use
now, when it started, the first tag-set version published under it (no delta reaches
across a key change), until when hit proofs of the previous epoch are still honoured,
and how far the set of the next epoch has been built (``staging_cursor``).

Each epoch's set is stored under a **set id** of its own in the tag-set tables
(``tag_set_members``, ``tag_keys``, … whose ``convenant_id`` column holds it): the
convenant id itself for epoch 0 — the set of the versions before epochs —, ``C#N`` for
epoch ``N``. So the next epoch's set is built beside the live one in small transactions,
the switch is one row here plus the new version, and the previous epoch's set serves the
overlap's hit proofs (its ``tag_keys``) until it is deleted, again in small batches.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from node.protocol.models import rfc3339


def set_id(convenant_id: str, epoch: int) -> str:
    """The key of one epoch's tag set in the tag-set tables ('#' is in no convenant id)."""
    return convenant_id if epoch == 0 else f"{convenant_id}#{epoch}"


@dataclass(frozen=True)
class Epoch:
    convenant_id: str
    epoch: int
    started_at: datetime | None
    """None: no schedule started yet (a set published before epochs, or none at all)."""
    first_version: int
    previous_until: datetime | None
    staging_cursor: str | None = None
    """The last registration ref whose keys are in the next epoch's set; None: no next
    set is being built."""

    @property
    def live_set(self) -> str:
        return set_id(self.convenant_id, self.epoch)

    @property
    def next_set(self) -> str:
        return set_id(self.convenant_id, self.epoch + 1)

    @property
    def previous_set(self) -> str | None:
        return set_id(self.convenant_id, self.epoch - 1) if self.epoch > 0 else None

    def ends_at(self, epoch_days: int) -> datetime | None:
        """When the schedule changes the key next; None when it never does."""
        if epoch_days <= 0 or self.started_at is None:
            return None
        return self.started_at + timedelta(days=epoch_days)


def current(conn: sqlite3.Connection, convenant_id: str) -> Epoch:
    row = conn.execute(
        "SELECT epoch, started_at, first_version, previous_until, staging_cursor "
        "FROM oprf_epochs WHERE convenant_id = ?",
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
        row[4],
    )


def live_set(conn: sqlite3.Connection, convenant_id: str) -> str:
    """The set id of the tag set published now for ``convenant_id``."""
    return current(conn, convenant_id).live_set


def all_epochs(conn: sqlite3.Connection) -> Iterator[Epoch]:
    for (convenant_id,) in conn.execute("SELECT convenant_id FROM oprf_epochs").fetchall():
        yield current(conn, convenant_id)


def start_schedule(conn: sqlite3.Connection, convenant_id: str, now: datetime) -> Epoch:
    """Begin the schedule of a convenant that has none: its current epoch (0) counts from
    ``now``. Inside the caller's transaction."""
    conn.execute(
        "INSERT INTO oprf_epochs (convenant_id, epoch, started_at, first_version) "
        "VALUES (?, 0, ?, 0) ON CONFLICT (convenant_id) DO NOTHING",
        (convenant_id, rfc3339(now)),
    )
    return current(conn, convenant_id)


def set_staging(conn: sqlite3.Connection, convenant_id: str, cursor: str | None) -> None:
    """Start (``""``), advance or (None) stop building the next epoch's set."""
    conn.execute(
        "UPDATE oprf_epochs SET staging_cursor = ? WHERE convenant_id = ?", (cursor, convenant_id)
    )


def switch(
    conn: sqlite3.Connection,
    convenant_id: str,
    epoch: int,
    now: datetime,
    first_version: int,
    previous_until: datetime,
) -> None:
    """``epoch`` starts now with its first version; the previous one's hit proofs are
    honoured until ``previous_until``. Inside the transaction that publishes it."""
    conn.execute(
        "UPDATE oprf_epochs SET epoch = ?, started_at = ?, first_version = ?, "
        "previous_until = ?, staging_cursor = NULL WHERE convenant_id = ?",
        (epoch, rfc3339(now), first_version, rfc3339(previous_until), convenant_id),
    )


def previous_key_of(
    conn: sqlite3.Connection, convenant_id: str, tag: bytes, now: datetime
) -> str | None:
    """The subject key behind ``tag`` in the previous epoch's set, while its overlap
    lasts (§14.3 step 5)."""
    epoch = current(conn, convenant_id)
    if epoch.previous_set is None or epoch.previous_until is None or now >= epoch.previous_until:
        return None
    row = conn.execute(
        "SELECT subject_key FROM tag_keys WHERE convenant_id = ? AND tag = ?",
        (epoch.previous_set, tag),
    ).fetchone()
    return None if row is None else str(row[0])


def end_overlaps(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """End the overlaps that are over; the set ids of the previous epochs concerned, whose
    rows the caller deletes (``tag_sets.purge_batch``). Inside the caller's transaction."""
    ended: list[str] = []
    for e in all_epochs(conn):
        if e.previous_until is not None and now >= e.previous_until and e.previous_set:
            ended.append(e.previous_set)
            conn.execute(
                "UPDATE oprf_epochs SET previous_until = NULL WHERE convenant_id = ?",
                (e.convenant_id,),
            )
    return ended
