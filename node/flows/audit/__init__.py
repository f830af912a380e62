"""The privacy officer's views of the log: reports (``report``) and access requests (``inzage``).

Both read the log the node already keeps (docs/protocol.md §9) and never write to it,
except that answering an access request is itself logged (``audit.inzage``). What they
share is here: one typed view of a stored entry body, and the SQL that streams bodies,
so the modules above the edge are pure functions over :class:`Entry` values.
docs/audit.md describes the outputs and how the fields map to Logboek Dataverwerkingen.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from node.store.log import LogEntry

__all__ = ["UNREADABLE", "Entry", "entries_by_seq", "stream_entries"]

UNREADABLE = "unreadable"


@dataclass(frozen=True, kw_only=True)
class Entry(LogEntry):
    """One stored log entry, typed: what was appended (``LogEntry``) plus its position and
    time. ``subjects`` are pseudonyms in the entry's own order."""

    seq: int
    time: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Entry:
        """From a stored body (every member is always present, §9.1). Tolerant of a
        missing member, so a report over a damaged log still runs (verify names damage)."""
        conv = body.get("convenant")
        conv = conv if isinstance(conv, Mapping) else {}
        data = body.get("data")
        subjects = body.get("subjects")
        return cls(
            seq=int(body.get("seq", -1)),
            time=str(body.get("time", "")),
            kind=str(body.get("kind", "")),
            trace_id=_text(body.get("trace_id")),
            convenant_id=_text(conv.get("id")),
            convenant_version=conv.get("version") if type(conv.get("version")) is int else None,
            purpose=_text(body.get("purpose")),
            actor=_text(body.get("actor")),
            counterparty=_text(body.get("counterparty")),
            subjects=tuple(s for s in subjects if isinstance(s, str))
            if isinstance(subjects, list)
            else (),
            outcome=_text(body.get("outcome")),
            reason=_text(body.get("reason")),
            data=data if isinstance(data, Mapping) else {},
        )

    @classmethod
    def from_text(cls, text: str | bytes) -> Entry:
        """A body that is not a JSON object (only a damaged log has one) becomes an entry
        of kind ``unreadable``: counted and visible in a report, never a crash."""
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, Mapping):
            return cls(seq=-1, time="", kind=UNREADABLE)
        return cls.from_body(body)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stream_entries(
    conn: sqlite3.Connection,
    *,
    time_from: str | None = None,
    time_before: str | None = None,
    convenant_id: str | None = None,
) -> Iterator[Entry]:
    """Entries in log order, narrowed in SQL by the indexed columns only (time,
    convenant); the cursor streams, so memory does not grow with the log."""
    clauses: list[str] = []
    args: list[Any] = []
    if time_from is not None:
        clauses.append("time >= ?")
        args.append(time_from)
    if time_before is not None:
        clauses.append("time < ?")
        args.append(time_before)
    if convenant_id is not None:
        clauses.append("convenant_id = ?")
        args.append(convenant_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    for (body,) in conn.execute(f"SELECT body FROM log_entries{where} ORDER BY seq", args):  # noqa: S608 - fixed clauses, values bound
        yield Entry.from_text(body)


def entries_by_seq(conn: sqlite3.Connection, seqs: Sequence[int]) -> list[Entry]:
    """The entries with these numbers, in log order (chunked: SQLite limits bound values)."""
    out: list[Entry] = []
    ordered = sorted(set(seqs))
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT body FROM log_entries WHERE seq IN ({marks}) ORDER BY seq",  # noqa: S608
            chunk,
        )
        out.extend(Entry.from_text(body) for (body,) in rows)
    return out
