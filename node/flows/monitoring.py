"""GET /metrics: the scrape-time figures and the exposition (docs/operations.md)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from prometheus_client import generate_latest

from node.flows import admin, readiness
from node.flows.context import NodeContext
from node.protocol.tree_head import parse_time
from node.store import log, peer_heads
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
