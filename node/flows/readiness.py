"""Liveness and readiness (docs/operations.md "Monitoring", docs/api.md).

``/healthz`` is liveness: the process and its event loop answer. It stays 200 whatever
the database does (restarting a node does not free a disk), but its ``status`` says
``degraded`` rather than ``ok`` once the newest write failed for a storage reason, so a
glance at it never shows "ok" on a node that answers every write with 500 or 507.

``/readyz`` is readiness: 200 only when every check below passes, so a load balancer or
an orchestrator stops sending work to a node that would fail it. Each check is cheap
enough to run every few seconds; none runs SQLite on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass

from node.config import DB_FILE
from node.errors import VhnodeError
from node.flows.context import NodeContext
from node.policy.convenant import in_force, withdrawal_refusal
from node.store import db, log
from node.store.database import storage_failure

CHECKS = ("database_writable", "keys_loaded", "log_tip", "convenant_in_force")
# Less room than this and the node is not ready: a registration with its details, the
# log entries of a round and their head take tens of kilobytes, a tag-set version more.
DATABASE_HEADROOM_BYTES = 1024 * 1024
# A probe that waits longer than this (a write lock held by another process, a disk
# that hangs) is itself the answer: not ready.
PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def liveness(ctx: NodeContext) -> dict[str, object]:
    """The body of /healthz: alive, and whether the newest write could be stored."""
    failure = ctx.database.write_failure if ctx.database is not None else None
    body: dict[str, object] = {"status": "ok" if failure is None else "degraded"}
    body["node_id"] = ctx.node_id
    if failure is not None:
        body["write_failure"] = failure
    return body


async def readiness(ctx: NodeContext) -> list[Check]:
    """Every readiness check, in ``CHECKS`` order."""
    return [
        await _database_writable(ctx),
        _keys_loaded(ctx),
        *await _from_the_log_and_convenants(ctx),
    ]


async def _database_writable(ctx: NodeContext) -> Check:
    name = "database_writable"
    now = ctx.clock.now().isoformat()

    def probe() -> int:
        # A real write through the writer's own connection, in its commit group: what a
        # PUT or an evaluation would meet (a read-only file, query_only, a held lock).
        ctx.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('readiness_probe', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (now,),
        )
        return db.room_left(ctx.conn, ctx.home / DB_FILE)

    try:
        room = await asyncio.wait_for(ctx.write(probe), PROBE_SECONDS)
    except TimeoutError:
        return Check(name, False, f"a probe write did not finish within {PROBE_SECONDS:g} s")
    except (sqlite3.Error, VhnodeError) as e:
        why = storage_failure(e) or type(e).__name__
        return Check(name, False, f"a probe write failed: {why}")
    if room < DATABASE_HEADROOM_BYTES:
        return Check(
            name,
            False,
            f"disk_full: {room // 1024} KiB left, less than "
            f"{DATABASE_HEADROOM_BYTES // 1024} KiB ([database] max_size_mib or the file system)",
        )
    return Check(name, True, f"{room // (1024 * 1024)} MiB left")


def _keys_loaded(ctx: NodeContext) -> Check:
    card = ctx.own_card()[0]
    if card.signing_key_bytes != ctx.keys.signing_public:
        return Check("keys_loaded", False, "the signing key is not the one on this node's card")
    return Check("keys_loaded", True, f"signing key {ctx.keys.signing_fingerprint[:16]}…")


async def _from_the_log_and_convenants(ctx: NodeContext) -> list[Check]:
    def look() -> tuple[str | None, list[str]]:
        tip = log.check_tip(ctx.conn, ctx.node_id, ctx.keys.signing_history)
        trust, now = ctx.trust(), ctx.clock.now()
        in_force_now = []
        for convenant_id, versions in sorted(trust.convenants.items()):
            for inst in versions:
                conv = inst.convenant
                if ctx.node_id not in {p.node_id for p in conv.parties}:
                    continue
                if in_force(conv, inst.document, trust.party_keys, now) is not None:
                    continue
                if withdrawal_refusal(conv, trust.withdrawals_of(conv.id), ctx.node_id, now):
                    continue
                in_force_now.append(f"{convenant_id} v{conv.version}")
                break
        return tip, in_force_now

    try:
        tip, convenants = await asyncio.wait_for(ctx.read(look), PROBE_SECONDS)
    except TimeoutError:
        why = f"the read did not finish within {PROBE_SECONDS:g} s"
        return [Check("log_tip", False, why), Check("convenant_in_force", False, why)]
    except (sqlite3.Error, VhnodeError) as e:
        why = f"the read failed: {type(e).__name__}"
        return [Check("log_tip", False, why), Check("convenant_in_force", False, why)]
    return [
        Check("log_tip", tip is None, tip or "the newest entry matches the newest signed head"),
        Check(
            "convenant_in_force",
            bool(convenants),
            ", ".join(convenants) if convenants else "no installed convenant is in force",
        ),
    ]
