"""Verifying the log and remembering that it was verified (docs/audit.md "Verification").

Every verify — ``vhnode audit verify``, ``GET /api/v1/audit/verify``, the privacy
officer's button in the web app — appends an ``audit.verified`` entry with who ran it,
how many entries it covered and what it found. The record lives in the log it speaks
about: it survives a restart, it is hash-linked and signed like every other entry, and
removing or editing it (to hide a failed verify, say) is itself what the next verify
reports. The privacy officer's dashboard reads the newest such entry, and the log's
latest verdicts of the cross-check of each peer (``log.cross_checked``), from the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from node.errors import VhnodeError
from node.flows import log_entries
from node.flows.audit import Entry
from node.flows.context import NodeContext
from node.store import log
from node.store.db import tx
from node.store.log_kinds import LogKind

logger = structlog.get_logger("vhnode.audit")


@dataclass(frozen=True)
class Verification:
    """One verify of the log, as its ``audit.verified`` entry records it."""

    seq: int
    """The ``audit.verified`` entry's own place in the log: entries from here on were
    appended after that verify and are not covered by it."""
    time: str
    actor: str | None
    ok: bool
    entries: int
    heads: int
    problems: tuple[tuple[int | None, str], ...]


@dataclass(frozen=True)
class CrossCheckRecord:
    """The newest logged cross-check verdict about one peer (``log.cross_checked``)."""

    peer: str
    time: str
    verdict: str
    held_size: int | None
    current_size: int | None


def _entry(report: log.VerifyReport, actor: str | None) -> log.LogEntry:
    return log_entries.audit_verified(
        actor=actor,
        entries=report.entries,
        heads=report.heads,
        problems=[(p.seq, p.kind) for p in report.problems],
    )


async def verify_and_record(ctx: NodeContext, actor: str | None) -> tuple[log.VerifyReport, bool]:
    """Verify the log (in a worker process while the node serves) and log that it was
    done. Returns the report and whether its record was written: a log damaged so that
    nothing can be appended (a truncated tail) or a full disk refuses the record, and the
    verdict must still reach the person who asked for it."""
    report = await ctx.verify_log()
    entry = _entry(report, actor)
    try:
        await ctx.write(lambda: ctx.record([entry]))
    except VhnodeError as e:
        logger.warning("verify_not_recorded", code=e.code, ok=report.ok)
        return report, False
    return report, True


def verify_and_record_here(ctx: NodeContext, actor: str | None) -> tuple[log.VerifyReport, bool]:
    """``verify_and_record`` on this thread's own connection (the CLI)."""
    report = log.verify(ctx.conn, ctx.node_id, ctx.keys.signing_history)
    try:
        with tx(ctx.conn):
            ctx.record([_entry(report, actor)])
    except VhnodeError:
        return report, False  # the command says so on stderr; its stdout stays the report
    return report, True


def _problems(data: Mapping[str, Any]) -> tuple[tuple[int | None, str], ...]:
    raw = data.get("problems")
    out: list[tuple[int | None, str]] = []
    for p in raw if isinstance(raw, list) else ():
        if isinstance(p, Mapping):
            seq = p.get("seq")
            out.append((seq if type(seq) is int else None, str(p.get("kind", "?"))))
    return tuple(out)


def _count(value: object) -> int:
    return value if type(value) is int and value >= 0 else 0


def last_verification(conn: sqlite3.Connection) -> Verification | None:
    """The newest ``audit.verified`` entry, read from its body (the signed text; the kind
    column only finds it)."""
    row = conn.execute(
        "SELECT body FROM log_entries WHERE kind = ? ORDER BY seq DESC LIMIT 1",
        (LogKind.AUDIT_VERIFIED.value,),
    ).fetchone()
    if row is None:
        return None
    e = Entry.from_text(row[0])
    if e.kind != LogKind.AUDIT_VERIFIED:  # a column edited behind the log's back
        return None
    problems = _problems(e.data)
    return Verification(
        seq=e.seq,
        time=e.time,
        actor=e.actor,
        ok=e.outcome == "ok" and not problems,
        entries=_count(e.data.get("entries")),
        heads=_count(e.data.get("heads")),
        problems=problems,
    )


def log_size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(seq) FROM log_entries").fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


def last_cross_checks(conn: sqlite3.Connection) -> dict[str, CrossCheckRecord]:
    """Per peer, the newest logged cross-check verdict."""
    kind = LogKind.LOG_CROSS_CHECKED.value
    rows = conn.execute(
        "SELECT body FROM log_entries WHERE seq IN"
        " (SELECT max(seq) FROM log_entries WHERE kind = ? GROUP BY counterparty)"
        " ORDER BY seq",
        (kind,),
    )
    out: dict[str, CrossCheckRecord] = {}
    for (body,) in rows:
        e = Entry.from_text(body)
        if e.kind != kind or e.counterparty is None:
            continue
        held, current = e.data.get("held_size"), e.data.get("current_size")
        out[e.counterparty] = CrossCheckRecord(
            peer=e.counterparty,
            time=e.time,
            verdict=e.outcome or "?",
            held_size=held if type(held) is int else None,
            current_size=current if type(current) is int else None,
        )
    return out
