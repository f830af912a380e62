"""Counting unauthenticated peer requests and writing the count to the log (§6.6).

A request refused at §6.6 steps 3–6 is answered (a signed refusal, or problem+json for a
decision notice) but never logged on its own: :func:`count` adds it to the node's
:class:`~node.policy.unauthenticated.UnauthenticatedTally`, and :func:`flush` — run by the
server every window and at shutdown — writes one ``peer.unauthenticated`` entry per
closed window and claimed requester, with counts per reason and per message. Nothing the
sender wrote (user, case reference, trace id) is kept.

The entry names the claimed requester in ``data.claimed``, never as ``counterparty``:
the claim is unproven, and the report must not count these requests as that party's
(docs/audit.md "Unauthenticated requests").
"""

from __future__ import annotations

from datetime import UTC, datetime

from node.errors import Refusal
from node.flows import log_entries
from node.flows.context import NodeContext
from node.protocol.models import rfc3339
from node.store.db import tx
from node.store.log_kinds import LogKind

KIND = LogKind.PEER_UNAUTHENTICATED


def claim_bucket(ctx: NodeContext, claimed: str) -> str | None:
    """The claimed requester if it is a known peer (or this node), else None: a sender
    must not be able to make the tally hold one bucket per name it invents."""
    if claimed == ctx.node_id or claimed in ctx.trust().peers_by_id:
        return claimed
    return None


def count(ctx: NodeContext, message: str, claimed: str, refusal: Refusal, now: datetime) -> None:
    """Count one unauthenticated request (no write)."""
    ctx.unauthenticated.add(claim_bucket(ctx, claimed), message, refusal.code, now.timestamp())


def flush(ctx: NodeContext, *, everything: bool = False) -> int:
    """Write the closed windows (all of them with ``everything``) as log entries, in one
    transaction. Returns the number of entries written."""
    now = ctx.clock.now()
    closed = ctx.unauthenticated.take_closed(now.timestamp(), everything=everything)
    if not closed:
        return 0
    entries = [
        log_entries.peer_unauthenticated(
            claimed=w.claimed,
            window_start=rfc3339(datetime.fromtimestamp(w.start, UTC)),
            window_end=rfc3339(datetime.fromtimestamp(w.end, UTC)),
            reasons=w.reasons,
            messages=w.messages,
        )
        for w in closed
    ]
    with tx(ctx.conn):
        ctx.record(entries, now)
    return len(entries)
