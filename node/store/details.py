"""Provider side of the detail exchange (docs/protocol.md §14, §10): the detail requests
answered, the state of every category asked, and the hit notices for the liaison.

Never the detail texts: they stay in ``registration_details`` (or the source system) and
leave only sealed to the requester.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from node.protocol.models import rfc3339


@dataclass(frozen=True)
class CategoryState:
    category: str
    status: str
    rule: str
    reason: str | None = None
    reason_detail: str | None = None
    retain_until: str | None = None
    recipient_roles: tuple[str, ...] | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    # When the text was first sealed into an answer to the requester; None: never sent
    # (an approved category is "delivered" before the requester's poll fetches its text).
    disclosed_at: str | None = None

    def with_(self, **changes: object) -> CategoryState:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DetailRequestRow:
    requester: str
    trace_id: str
    convenant_id: str
    convenant_version: int
    purpose: str
    case_ref: str
    requesting_user: str
    requesting_role: str
    round_trace_id: str
    subject_pseudonym: str
    refs: tuple[str, ...]
    received_at: str


def exists(conn: sqlite3.Connection, requester: str, trace_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM detail_requests WHERE requester = ? AND trace_id = ?",
        (requester, trace_id),
    ).fetchone()
    return row is not None


def insert(conn: sqlite3.Connection, req: DetailRequestRow, states: list[CategoryState]) -> None:
    conn.execute(
        "INSERT INTO detail_requests (requester, trace_id, convenant_id, convenant_version, "
        "purpose, case_ref, requesting_user, requesting_role, round_trace_id, "
        "subject_pseudonym, refs, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            req.requester,
            req.trace_id,
            req.convenant_id,
            req.convenant_version,
            req.purpose,
            req.case_ref,
            req.requesting_user,
            req.requesting_role,
            req.round_trace_id,
            req.subject_pseudonym,
            json.dumps(list(req.refs)),
            req.received_at,
        ),
    )
    conn.executemany(
        "INSERT INTO detail_categories (requester, trace_id, category, position, status, "
        "rule, reason, reason_detail, retain_until, recipient_roles, decided_by, decided_at, "
        "disclosed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (req.requester, req.trace_id, s.category, i, *_state_columns(s)[1:])
            for i, s in enumerate(states)
        ],
    )


def _state_columns(s: CategoryState) -> tuple[object, ...]:
    roles = None if s.recipient_roles is None else json.dumps(list(s.recipient_roles))
    return (
        s.category,
        s.status,
        s.rule,
        s.reason,
        s.reason_detail,
        s.retain_until,
        roles,
        s.decided_by,
        s.decided_at,
        s.disclosed_at,
    )


def update(
    conn: sqlite3.Connection, requester: str, trace_id: str, states: list[CategoryState]
) -> None:
    conn.executemany(
        "UPDATE detail_categories SET status = ?, rule = ?, reason = ?, reason_detail = ?, "
        "retain_until = ?, recipient_roles = ?, decided_by = ?, decided_at = ?, "
        "disclosed_at = ? WHERE requester = ? AND trace_id = ? AND category = ?",
        [(*_state_columns(s)[1:], requester, trace_id, s.category) for s in states],
    )


def get(conn: sqlite3.Connection, requester: str, trace_id: str) -> DetailRequestRow | None:
    row = conn.execute(
        "SELECT requester, trace_id, convenant_id, convenant_version, purpose, case_ref, "
        "requesting_user, requesting_role, round_trace_id, subject_pseudonym, refs, "
        "received_at FROM detail_requests WHERE requester = ? AND trace_id = ?",
        (requester, trace_id),
    ).fetchone()
    if row is None:
        return None
    return DetailRequestRow(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
        tuple(json.loads(row[10])), row[11],
    )  # fmt: skip


def categories(conn: sqlite3.Connection, requester: str, trace_id: str) -> list[CategoryState]:
    rows = conn.execute(
        "SELECT category, status, rule, reason, reason_detail, retain_until, recipient_roles, "
        "decided_by, decided_at, disclosed_at FROM detail_categories "
        "WHERE requester = ? AND trace_id = ? ORDER BY position",
        (requester, trace_id),
    )
    out = []
    for r in rows:
        roles = None if r[6] is None else tuple(json.loads(r[6]))
        out.append(CategoryState(r[0], r[1], r[2], r[3], r[4], r[5], roles, r[7], r[8], r[9]))
    return out


def pending(conn: sqlite3.Connection) -> list[DetailRequestRow]:
    """Requests with at least one category waiting for a liaison, oldest first."""
    rows = conn.execute(
        "SELECT DISTINCT requester, trace_id FROM detail_categories WHERE status = 'pending'"
    ).fetchall()
    found = [get(conn, r[0], r[1]) for r in rows]
    return sorted((f for f in found if f is not None), key=lambda f: (f.received_at, f.trace_id))


def noticed_refs(conn: sqlite3.Connection, requester: str, round_trace_id: str) -> set[str]:
    """The registrations a hit notice of this round already put in the inbox."""
    rows = conn.execute(
        "SELECT refs FROM hit_notices WHERE requester = ? AND round_trace_id = ?",
        (requester, round_trace_id),
    )
    return {ref for (refs,) in rows for ref in json.loads(refs)}


def add_hit_notice(
    conn: sqlite3.Connection,
    *,
    requester: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    case_ref: str,
    requesting_user: str,
    round_trace_id: str,
    subject_pseudonym: str,
    refs: tuple[str, ...],
    received_at: datetime,
) -> int:
    cur = conn.execute(
        "INSERT INTO hit_notices (requester, convenant_id, convenant_version, purpose, "
        "case_ref, requesting_user, round_trace_id, subject_pseudonym, refs, received_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            requester,
            convenant_id,
            convenant_version,
            purpose,
            case_ref,
            requesting_user,
            round_trace_id,
            subject_pseudonym,
            json.dumps(list(refs)),
            rfc3339(received_at),
        ),
    )
    return int(cur.lastrowid or 0)


@dataclass(frozen=True)
class NoticeFilter:
    """Which hit notices the liaison wants to see (docs/api.md "GET …/inbox")."""

    state: Literal["open", "acknowledged", "all"] = "open"
    requester: str | None = None
    convenant_id: str | None = None
    case_ref: str | None = None
    round_trace_id: str | None = None
    since: str | None = None  # RFC 3339: received at or after

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        if self.state == "open":
            clauses.append("acknowledged_at IS NULL")
        elif self.state == "acknowledged":
            clauses.append("acknowledged_at IS NOT NULL")
        for column, value in (
            ("requester", self.requester),
            ("convenant_id", self.convenant_id),
            ("case_ref", self.case_ref),
            ("round_trace_id", self.round_trace_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("received_at >= ?")
            params.append(self.since)
        return " AND ".join(clauses) or "1", params


_NOTICE_KEYS = (
    "id",
    "requester",
    "convenant_id",
    "convenant_version",
    "purpose",
    "case_ref",
    "requesting_user",
    "round_trace_id",
    "refs",
    "received_at",
    "acknowledged_at",
    "acknowledged_by",
)


def hit_notices(
    conn: sqlite3.Connection,
    where: NoticeFilter | None = None,
    *,
    limit: int = 50,
    before: int | None = None,
) -> tuple[list[dict[str, object]], int]:
    """One page of the notices ``where`` selects, newest first, and how many it selects
    in all; ``before``: only notices with a smaller id (the next page)."""
    clause, params = (where or NoticeFilter()).where()
    # The clauses are fixed texts of NoticeFilter.where; every value is bound.
    count = f"SELECT COUNT(*) FROM hit_notices WHERE {clause}"  # noqa: S608
    (total,) = conn.execute(count, params).fetchone()
    if before is not None:
        clause, params = f"{clause} AND id < ?", [*params, before]
    page = (
        f"SELECT {', '.join(_NOTICE_KEYS)} FROM hit_notices WHERE {clause} "  # noqa: S608
        "ORDER BY id DESC LIMIT ?"
    )
    rows = conn.execute(page, [*params, limit])
    out = []
    for r in rows:
        item = dict(zip(_NOTICE_KEYS, r, strict=True))
        item["refs"] = json.loads(str(item["refs"]))
        out.append(item)
    return out, int(total)


def acknowledge_notices(
    conn: sqlite3.Connection, ids: list[int] | None, through: int | None, user: str, now: str
) -> tuple[list[int], list[int]]:
    """Mark notices acknowledged by ``user``: the ``ids`` named, or every open one up to
    id ``through``. Returns (newly acknowledged, acknowledged before); an id that is no
    notice raises KeyError with it. Inside the caller's transaction."""
    if ids is not None:
        marks = ", ".join("?" * len(ids))
        named = f"SELECT id, acknowledged_at FROM hit_notices WHERE id IN ({marks})"  # noqa: S608
        found = dict(conn.execute(named, ids).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            raise KeyError(missing[0])
        fresh = [i for i in ids if found[i] is None]
        already = [i for i in ids if found[i] is not None]
    else:
        fresh = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM hit_notices WHERE acknowledged_at IS NULL AND id <= ? ORDER BY id",
                (through,),
            )
        ]
        already = []
    conn.executemany(
        "UPDATE hit_notices SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
        [(now, user, i) for i in fresh],
    )
    return fresh, already


def purge_records(conn: sqlite3.Connection, cutoff: str, now: str) -> tuple[int, int]:
    """Delete requests received before ``cutoff`` that no delivered category still needs
    (``retain_until`` after ``now``), and hit notices received before ``cutoff``.
    Returns (requests, hit notices) deleted. Inside the caller's transaction."""
    old = conn.execute(
        "SELECT r.requester, r.trace_id FROM detail_requests r WHERE r.received_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM detail_categories c WHERE c.requester = r.requester "
        "AND c.trace_id = r.trace_id AND c.status = 'delivered' AND c.retain_until > ?)",
        (cutoff, now),
    ).fetchall()
    for requester, trace_id in old:
        conn.execute(
            "DELETE FROM detail_categories WHERE requester = ? AND trace_id = ?",
            (requester, trace_id),
        )
        conn.execute(
            "DELETE FROM detail_requests WHERE requester = ? AND trace_id = ?",
            (requester, trace_id),
        )
    notices = conn.execute("DELETE FROM hit_notices WHERE received_at < ?", (cutoff,)).rowcount
    return len(old), notices
