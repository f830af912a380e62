"""GET /metrics: the scrape-time figures and the exposition (docs/operations.md)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from prometheus_client import generate_latest

from node.flows import admin, readiness
from node.flows.context import NodeContext
from node.flows.metrics import NodeMetrics
from node.protocol.tree_head import parse_time
from node.store import imports, log, peer_heads
from node.store.log_kinds import LogKind


async def scrape(ctx: NodeContext) -> bytes:
    """Read the gauges off the loop, run the readiness checks, and render every metric
    of this node's registry in the Prometheus text format."""
    m = ctx.metrics
    checks = await readiness.readiness(ctx)
    for c in checks:
        m.readiness_check.labels(c.name).set(1 if c.ok else 0)
    m.ready.set(1 if all(c.ok for c in checks) else 0)

    def read() -> None:
        conn, now = ctx.conn, ctx.clock.now()
        status = admin.status(ctx)
        for convenant_id, held in status["convenants"].items():
            m.tag_set_version.labels(convenant_id).set(held["tag_set_version"])
            m.tag_set_tags.labels(convenant_id).set(held["tag_set_count"])
        m.log_entries.set(log.size(conn))
        first = _first_entry_time(conn)
        m.since_verify.set(_seconds_since(conn, LogKind.AUDIT_VERIFIED, first, now))
        m.since_cross_check.set(_seconds_since(conn, LogKind.LOG_CROSS_CHECKED, first, now))
        size = admin.database_size(ctx)
        m.database_bytes.set(size.used_bytes + size.wal_bytes)
        for partner, forks in peer_heads.conflicts_by_peer(conn).items():
            m.peer_log_forks.labels(partner).set(forks)
        for partner, restores in peer_heads.restores_by_peer(conn).items():
            m.peer_log_restores.labels(partner).set(restores)
        m.log_epoch.set(log.current_epoch(conn)[0])
        _import_progress(m, imports.load(conn))

    await ctx.read(read)
    return generate_latest(m.registry)


def _first_entry_time(conn: sqlite3.Connection) -> datetime | None:
    row = conn.execute("SELECT body FROM log_entries ORDER BY seq LIMIT 1").fetchone()
    return None if row is None else parse_time(json.loads(row[0])["time"])


def _seconds_since(
    conn: sqlite3.Connection, kind: str, first: datetime | None, now: datetime
) -> float:
    newest = next(log.newest_of_kind(conn, kind, 1), None)
    when = parse_time(newest["time"]) if newest is not None else first
    return 0.0 if when is None else max(0.0, (now - when).total_seconds())


def _import_progress(m: NodeMetrics, p: imports.ImportProgress | None) -> None:
    """The newest registry import, as its process committed it (node/store/imports.py)."""
    m.import_in_progress.set(1 if p is not None and p.state == "running" else 0)
    m.import_failed.set(1 if p is not None and p.state == "failed" else 0)
    if p is None:
        return
    rows = {
        "read": p.rows,
        "upserted": p.upserted,
        "unchanged": p.unchanged,
        "refused": p.refused_rows,
    }
    for outcome, n in rows.items():
        m.import_rows.labels(outcome).set(n)
    m.import_refused_identifiers.set(p.refused_identifiers)
    m.import_started.set(p.started)
    m.import_progressed.set(p.updated)
