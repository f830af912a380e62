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
        "rule, reason, reason_detail, retain_until, recipient_roles, decided_by, decided_at) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
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
    )


def update(
    conn: sqlite3.Connection, requester: str, trace_id: str, states: list[CategoryState]
) -> None:
    conn.executemany(
        "UPDATE detail_categories SET status = ?, rule = ?, reason = ?, reason_detail = ?, "
        "retain_until = ?, recipient_roles = ?, decided_by = ?, decided_at = ? "
        "WHERE requester = ? AND trace_id = ? AND category = ?",
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
        "decided_by, decided_at FROM detail_categories WHERE requester = ? AND trace_id = ? "
        "ORDER BY position",
        (requester, trace_id),
    )
    out = []
    for r in rows:
        roles = None if r[6] is None else tuple(json.loads(r[6]))
        out.append(CategoryState(r[0], r[1], r[2], r[3], r[4], r[5], roles, r[7], r[8]))
    return out


def pending(conn: sqlite3.Connection) -> list[DetailRequestRow]:
    """Requests with at least one category waiting for a liaison, oldest first."""
    rows = conn.execute(
        "SELECT DISTINCT requester, trace_id FROM detail_categories WHERE status = 'pending'"
    ).fetchall()
    found = [get(conn, r[0], r[1]) for r in rows]
    return sorted((f for f in found if f is not None), key=lambda f: (f.received_at, f.trace_id))


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


def hit_notices(conn: sqlite3.Connection, limit: int = 500) -> list[dict[str, object]]:
    """The newest hit notices first."""
    rows = conn.execute(
        "SELECT id, requester, convenant_id, convenant_version, purpose, case_ref, "
        "requesting_user, round_trace_id, refs, received_at FROM hit_notices "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    keys = (
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
    )
    out = []
    for r in rows:
        item = dict(zip(keys, r, strict=True))
        item["refs"] = json.loads(str(item["refs"]))
        out.append(item)
    return out


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
