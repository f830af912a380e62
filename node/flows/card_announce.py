"""Announcing this node's rotation card to its peers (docs/protocol.md §4.4).

After ``vhnode keys rotate`` the node serves a card cross-signed by its previous key. On
start it sends that card to every peer it holds a card of (``POST /peer/v1/card``), so
their nodes take the new key without an admin (§4.2 step 5). A peer that cannot be
reached is tried again, with a growing pause, for as long as the node runs; a peer that
refuses (it revoked us, or holds another key) is an admin's matter and is not retried.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass

import aiohttp
import structlog

from node.flows.context import NodeContext
from node.flows.peer_client import PartnerFailure, peer_ssl
from node.store import peers

logger = structlog.get_logger("vhnode.card_announce")

CARD_PATH = "/peer/v1/card"
FIRST_PAUSE_SECONDS = 2.0
MAX_PAUSE_SECONDS = 300.0
MAX_ANSWER_BYTES = 16 * 1024  # {"status": …} or a problem+json: small either way


@dataclass(frozen=True)
class Announced:
    """One peer's answer: ``outcome`` (``rotated``, ``unchanged``, …) when it took the
    card, ``refused`` with the problem's code otherwise; ``retry`` when it may work later."""

    peer: str
    outcome: str
    retry: bool = False


async def announce_once(
    ctx: NodeContext, session: aiohttp.ClientSession, peer: peers.Peer
) -> Announced:
    card_text = json.dumps(ctx.own_card()[1].to_json())
    url = peer.card.endpoint_url + CARD_PATH
    try:
        # The same transport as every other message to this peer: TLS pinned to its card.
        context = await peer_ssl(ctx, peer.card)
    except PartnerFailure as f:  # plain HTTP where [tls] does not allow it: never sent
        return Announced(peer.node_id, f"not_sent:{f.reason or f.status}")
    try:
        async with asyncio.timeout(ctx.cfg.peers.timeout_seconds):
            async with session.post(
                url,
                data=card_text,
                headers={"Content-Type": "application/jose+json"},
                ssl=context,
            ) as resp:
                body = await resp.content.read(MAX_ANSWER_BYTES)
                status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        return Announced(peer.node_id, "unreachable", retry=True)
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if status == 200 and isinstance(answer.get("status"), str):
        return Announced(peer.node_id, answer["status"])
    if status >= 500 or status in {429, 404}:
        # Busy, broken, or a node that predates §4.4: later, maybe after its upgrade.
        return Announced(peer.node_id, f"http_{status}", retry=True)
    kind = str(answer.get("type", "")).rsplit("/", 1)[-1] or f"http_{status}"
    return Announced(peer.node_id, f"refused:{kind}")


async def announce_rotation(ctx: NodeContext, session: aiohttp.ClientSession) -> list[Announced]:
    """Send the rotation card to every peer not revoked until each has answered; does
    nothing when this node's card is not a rotation card. Returns the final answers."""
    card = ctx.own_card()[0]
    if card.previous_signing_key is None:
        return []
    held = await ctx.read(lambda: peers.all_peers(ctx.conn))
    pending = [p for p in held if p.revoked_at is None]
    done: list[Announced] = []
    pause = FIRST_PAUSE_SECONDS
    while pending:
        answers = await asyncio.gather(*(announce_once(ctx, session, p) for p in pending))
        retry = {a.peer for a in answers if a.retry}
        for a in answers:
            if a.retry:
                continue
            done.append(a)
            refused = a.outcome.startswith(("refused", "not_sent"))
            log = logger.warning if refused else logger.info
            log("card_announced", peer=a.peer, outcome=a.outcome)
        pending = [p for p in pending if p.node_id in retry]
        if pending:
            logger.info("card_announce_retry", peers=len(pending), pause_seconds=round(pause))
            # Jittered, so nodes restarted together do not knock together.
            await asyncio.sleep(pause * random.uniform(0.8, 1.2))
            pause = min(pause * 2, MAX_PAUSE_SECONDS)
    return done
