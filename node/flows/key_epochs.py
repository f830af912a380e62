"""Changing the OPRF key of this node's tag sets on schedule (docs/protocol.md §6.1.1).

Every ``[oprf] epoch_days`` the key of each convenant this node provides under moves to
the next epoch and the whole tag set is published again under it, so a tag a requester
learned before tells it nothing after. The OPRF over the registry (one evaluation per
subject key in scope) runs in worker threads, off the event loop and outside the write
lock, and the new set is written beside the live one in small write jobs; only the
switch itself — the new version and its digest — is one write job.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from node.errors import VhnodeError
from node.flows.context import NodeContext
from node.flows.publishing import (
    EpochTags,
    begin_epoch,
    finish_epoch,
    provider_scopes,
    stage_chunk,
)
from node.protocol import oprf
from node.protocol.convenant import Convenant
from node.protocol.tag_set import tag_from_output
from node.store import oprf_epochs, registry, tag_sets

CHUNK = 2000
"""Registrations per chunk of a build (≈ 4,000 subject keys): one worker-thread call for
their OPRF and one write job of a few tens of milliseconds for their rows."""
PURGE_BATCH = 5000
"""Rows per table deleted per write job when a set is dropped."""

logger = structlog.get_logger("vhnode.key_epochs")


@dataclass(frozen=True)
class Changed:
    convenant_id: str
    epoch: int
    version: int
    count: int


def _plan(ctx: NodeContext) -> tuple[list[tuple[Convenant, int]], list[str]]:
    """In a write job: start the schedule of convenants that have none, end the overlaps
    that are over, and name the convenants whose epoch has run its days, with the set
    ids to delete (previous epochs past their overlap)."""
    now = ctx.clock.now()
    ended = oprf_epochs.end_overlaps(ctx.conn, now)
    days = ctx.cfg.oprf.epoch_days
    due: list[tuple[Convenant, int]] = []
    for scope in provider_scopes(ctx):
        epoch = oprf_epochs.start_schedule(ctx.conn, scope.convenant_id, now)
        if epoch.previous_until is None and epoch.previous_set is not None:
            ended.append(epoch.previous_set)  # what an interrupted deletion left, if any
        ends = epoch.ends_at(days)
        if ends is not None and now >= ends:
            due.append((ctx.trust().convenants[scope.convenant_id][0].convenant, epoch.epoch + 1))
    return due, ended


async def _purge(ctx: NodeContext, set_id: str) -> None:
    """Delete a set that is no longer published, one small write job at a time."""
    while await ctx.write(lambda: tag_sets.purge_batch(ctx.conn, set_id, PURGE_BATCH)):
        pass


class KeyChangeUnderWay(VhnodeError):
    code = "key_change_under_way"
    title = "A change of this OPRF key is under way"


def _chunk_after(ctx: NodeContext, cursor: str) -> list[registry.Stored]:
    return registry.after(ctx.conn, cursor, CHUNK)


def reset_interrupted(ctx: NodeContext) -> None:
    """At start (a write job): a build of a next epoch's set that was under way when the
    node stopped is abandoned; the schedule's next pass starts it again (its rows are
    deleted first, ``begin_epoch``)."""
    for epoch in oprf_epochs.all_epochs(ctx.conn):
        if epoch.staging_cursor is not None:
            oprf_epochs.set_staging(ctx.conn, epoch.convenant_id, None)


async def change_epoch(ctx: NodeContext, conv: Convenant, epoch: int) -> Changed | None:
    """Publish ``conv``'s tag set under the key of ``epoch``; None if that is not the
    next epoch or another pass is building it.

    The new set is built beside the live one in chunks: each chunk's OPRF in a worker
    thread, its rows in a small write job (answers go on between them); registry changes
    meanwhile reach it through ``apply_changes``. Only the switch — the new version, its
    digest and the epoch — is one write job at the end."""
    while (begun := await ctx.write(lambda: begin_epoch(ctx, conv, epoch))) == "purged":
        pass  # an interrupted build's rows, deleted one small write job at a time
    if begun == "busy":
        raise KeyChangeUnderWay(f"a change of the OPRF key of {conv.id} is under way")
    if begun != "started":
        return None
    sk, _ = ctx.oprf_key(conv.id, epoch)
    themes = frozenset(p.scope_themes if (p := conv.party(ctx.node_id)) else ())
    cursor = ""
    while rows := await ctx.read(functools.partial(_chunk_after, ctx, cursor)):
        keys = sorted({k for r in rows if not themes.isdisjoint(r.themes) for k in r.subject_keys})
        outputs = await asyncio.to_thread(oprf.evaluate, sk, [k.encode() for k in keys])
        known = EpochTags(epoch, dict(zip(keys, map(tag_from_output, outputs), strict=True)))
        upto = rows[-1].ref
        chunk = functools.partial(stage_chunk, ctx, conv, epoch, cursor, upto, known)
        if not await ctx.write(chunk):
            return None
        cursor = upto
    head = await ctx.write(lambda: finish_epoch(ctx, conv, epoch))
    return None if head is None else Changed(conv.id, epoch, head.version, head.count)


async def change_due(ctx: NodeContext) -> Sequence[Changed]:
    """One pass of the schedule (the running node's retention task makes one every
    ``[retention] purge_interval_seconds``)."""
    due, ended = await ctx.write(lambda: _plan(ctx))
    for set_id in ended:
        await _purge(ctx, set_id)
    changed = []
    for conv, epoch in due:
        try:
            done = await change_epoch(ctx, conv, epoch)
        except KeyChangeUnderWay:  # `vhnode registry next-epoch` beside the node
            continue
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
