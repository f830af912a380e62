"""Changing the OPRF key of this node's tag sets on schedule (docs/protocol.md §6.1.1).

Every ``[oprf] epoch_days`` the key of each convenant this node provides under moves to
the next epoch and the whole tag set is published again under it, so a tag a requester
learned before tells it nothing after. The OPRF over the registry (one evaluation per
subject key in scope) runs in worker threads, off the event loop and outside the write
lock; only the switch itself — the keys registered since, the new members and the
version — is one write job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from node.flows.context import NodeContext
from node.flows.publishing import EpochTags, provider_scopes, start_epoch, subject_keys_in_scope
from node.protocol import oprf
from node.protocol.convenant import Convenant
from node.protocol.tag_set import tag_from_output
from node.store import oprf_epochs

CHUNK = 5000
"""Subject keys evaluated per worker-thread call: small enough that the loop is never
waited on for long, large enough that the hand-over costs nothing."""

logger = structlog.get_logger("vhnode.key_epochs")


@dataclass(frozen=True)
class Changed:
    convenant_id: str
    epoch: int
    version: int
    count: int


def _plan(ctx: NodeContext) -> list[tuple[Convenant, int]]:
    """In a write job: start the schedule of convenants that have none, forget previous
    epochs past their overlap, and name the convenants whose epoch has run its days."""
    now = ctx.clock.now()
    oprf_epochs.end_overlaps(ctx.conn, now)
    days = ctx.cfg.oprf.epoch_days
    due: list[tuple[Convenant, int]] = []
    for scope in provider_scopes(ctx):
        epoch = oprf_epochs.start_schedule(ctx.conn, scope.convenant_id, now)
        ends = epoch.ends_at(days)
        if ends is not None and now >= ends:
            due.append((ctx.trust().convenants[scope.convenant_id][0].convenant, epoch.epoch + 1))
    return due


async def change_epoch(ctx: NodeContext, conv: Convenant, epoch: int) -> Changed | None:
    """Publish ``conv``'s tag set under the key of ``epoch``; None if it already was."""
    keys = await ctx.read(lambda: subject_keys_in_scope(ctx, conv))
    sk, _ = ctx.oprf_key(conv.id, epoch)
    tags: dict[str, bytes] = {}
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i : i + CHUNK]
        outputs = await asyncio.to_thread(oprf.evaluate, sk, [k.encode() for k in chunk])
        tags.update(zip(chunk, (tag_from_output(o) for o in outputs), strict=True))
    head = await ctx.write(lambda: start_epoch(ctx, conv, epoch, EpochTags(epoch, tags)))
    return None if head is None else Changed(conv.id, epoch, head.version, head.count)


async def change_due(ctx: NodeContext) -> Sequence[Changed]:
    """One pass of the schedule (the running node's retention task makes one every
    ``[retention] purge_interval_seconds``)."""
    changed = []
    for conv, epoch in await ctx.write(lambda: _plan(ctx)):
        done = await change_epoch(ctx, conv, epoch)
        if done is not None:
            logger.info(
                "oprf_epoch_started",
                convenant=done.convenant_id,
                epoch=done.epoch,
                version=done.version,
                tags=done.count,
            )
            changed.append(done)
    return changed


async def change_now(ctx: NodeContext, convenant_id: str) -> Changed | None:
    """Move one convenant to its next epoch now, whatever the schedule (the admin's
    answer to a leaked tag set or OPRF output, docs/operations.md)."""

    def plan() -> tuple[Convenant, int] | None:
        now = ctx.clock.now()
        for scope in provider_scopes(ctx):
            if scope.convenant_id == convenant_id:
                epoch = oprf_epochs.start_schedule(ctx.conn, convenant_id, now)
                return ctx.trust().convenants[convenant_id][0].convenant, epoch.epoch + 1
        return None

    found = await ctx.write(plan)
    return None if found is None else await change_epoch(ctx, *found)
