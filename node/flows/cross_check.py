"""Cross-checking peers' logs against the tree heads we hold (docs/protocol.md §9.4).

For each peer: take the largest signed head we hold, ask the peer for a consistency
proof from that size to its current head, and verify it. A peer that rewrote, truncated
or forked its log since cannot produce one. Each verdict is logged.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from node.errors import ProtocolError
from node.flows import log_entries
from node.flows.context import NodeContext
from node.flows.key_pin_exchange import PinVerdict, compare_pins
from node.flows.peer_client import PartnerFailure, peer_ssl, post_signed, remember_head, verified
from node.protocol import answer_size, jws, merkle
from node.protocol.answers import Expected
from node.protocol.consistency import (
    CONSISTENCY_REQUEST_TYP,
    CONSISTENCY_RESPONSE,
    CONSISTENCY_RESPONSE_TYP,
    ConsistencyRefused,
    ConsistencyRequest,
    Verdict,
)
from node.protocol.tree_head import SignedTreeHead, signed_head
from node.store import log, peer_heads

CONSISTENCY_PATH = "/peer/v1/log/consistency"

_FAILURE_VERDICT: dict[str, Verdict] = {
    "refused": "refused",
    "unreachable": "unreachable",
    "timeout": "timeout",
}


@dataclass
class CrossCheck:
    peer: str
    verdict: Verdict
    held_size: int | None = None
    current_size: int | None = None
    detail: str = ""
    # §9.6: the OPRF keys this node and the peer pinned for the partners they share.
    oprf_keys: PinVerdict | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "verdict": self.verdict,
            "held_size": self.held_size,
            "current_size": self.current_size,
            "detail": self.detail,
            "oprf_keys": self.oprf_keys,
        }


async def _check_one(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    peer_id: str,
    own_head: SignedTreeHead | None,
) -> CrossCheck:
    result = CrossCheck(peer_id, "no_heads")
    peer = ctx.trust().peers_by_id.get(peer_id)
    if peer is None:
        result.verdict, result.detail = "invalid", "no peer card for this node"
        return result
    forked, held, held_epoch = await ctx.read(
        lambda: (
            peer_heads.conflicts(ctx.conn, peer_id),
            peer_heads.latest(ctx.conn, peer_id),
            peer_heads.newest_epoch(ctx.conn, peer_id),
        )
    )
    if forked:
        result.verdict, result.detail = "forked", "we hold two signed heads of one size"
        return result
    if held is None:
        result.detail = "no signed tree head of this peer held yet"
        return result
    held_size, held_root = held
    result.held_size = held_size
    card = peer.card
    req = ConsistencyRequest(
        requester=ctx.node_id,
        partner=peer_id,
        from_size=held_size,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=ctx.clock.now(),
        tree_head=own_head,
    )
    doc = jws.sign(CONSISTENCY_REQUEST_TYP, req.wire(), ctx.keys.signing)
    try:
        context = await peer_ssl(ctx, card)
        body = await asyncio.wait_for(
            post_signed(
                session,
                card.endpoint_url + CONSISTENCY_PATH,
                doc,
                CONSISTENCY_RESPONSE_TYP,
                max_bytes=answer_size.CONSISTENCY_ANSWER,
                ssl_context=context,
            ),
            ctx.cfg.peers.timeout_seconds,
        )
        # No convenant here: the answer is signed with the key of the peer's held card.
        expected = Expected(
            CONSISTENCY_RESPONSE_TYP,
            peer_id,
            card.signing_fingerprint,
            card.signing_key_bytes,
            ctx.node_id,
            doc.digest(),
        )
        answer = verified(body, CONSISTENCY_RESPONSE, expected)
        resp, head = answer.answer, answer.tree_head
        # §9.3: a refusal carries the peer's head too; it is verified and kept before deciding.
        if isinstance(resp, ConsistencyRefused):
            if head is not None:  # none when the peer could not authenticate us
                refusal_head = head
                await ctx.write(lambda: remember_head(ctx, peer_id, refusal_head, log_fork=False))
            raise PartnerFailure("refused", resp.reason, resp.reason_detail or "")
        if head is None:  # the model allows no null head in a proof
            raise PartnerFailure("invalid", "bad_tree_head", "the answer carries no tree head")
    except PartnerFailure as f:
        result.verdict = _FAILURE_VERDICT.get(f.status, "invalid")
        result.detail = f"{f.reason or ''} {f.detail}".strip()
        return result
    except TimeoutError:
        result.verdict, result.detail = "timeout", "no answer within the per-partner timeout"
        return result
    except ProtocolError as e:
        result.verdict, result.detail = "invalid", e.detail
        return result
    result.current_size = head.tree_size
    seen = await ctx.write(lambda: remember_head(ctx, peer_id, head, log_fork=False))
    if head.epoch > held_epoch and seen != "conflict":
        # §9.7: restored from a backup, with a signed statement that admits the loss;
        # sizes of the closed epoch say nothing about the new one.
        result.verdict = "restored"
        result.detail = f"the peer opened log epoch {head.epoch} after a restore"
    elif head.epoch < held_epoch:
        result.verdict = "forked"
        result.detail = f"the peer answered in log epoch {head.epoch}, which it closed"
    elif head.tree_size < held_size:
        # Shorter than what it signed for us: cut back (any regrowth since is a fork too,
        # and a second root for a held size is kept as evidence by remember()).
        result.verdict = "truncated"
        result.detail = f"the peer's log has {head.tree_size} entries; it signed {held_size} before"
    elif seen == "conflict":
        result.verdict, result.detail = "forked", "the peer signed another root for a size we hold"
    else:
        proof = list(resp.proof or ())
        if resp.proof is not None and merkle.verify_consistency(
            held_size, head.tree_size, held_root, head.root_hash, proof
        ):
            result.verdict = "consistent"
        else:
            result.verdict = "inconsistent"
            result.detail = "no valid consistency proof: the log was rewritten or forked"
    return result


async def cross_check(
    ctx: NodeContext, session: aiohttp.ClientSession, peer_ids: Sequence[str] | None = None
) -> list[CrossCheck]:
    """Check every peer we hold heads of (or the named ones), in parallel; log each verdict."""
    if peer_ids is None:

        def held() -> list[str]:
            rows = ctx.conn.execute("SELECT DISTINCT peer FROM peer_tree_heads ORDER BY peer")
            return [r[0] for r in rows if r[0] != ctx.node_id]

        # Off the loop while the node serves (POST /api/v1/audit/cross-check).
        peer_ids = await ctx.read(held)
    # §9.5: the checker's newest head travels with each request, so the peers it checks
    # witness its log in turn (one read per cross-check).
    newest = await ctx.read(lambda: log.latest_head(ctx.conn))
    own_head = signed_head(newest) if newest is not None else None
    results = list(await asyncio.gather(*(_check_one(ctx, session, p, own_head) for p in peer_ids)))
    entries = [
        log_entries.log_cross_checked(
            peer=r.peer, verdict=r.verdict, held_size=r.held_size, current_size=r.current_size
        )
        for r in results
    ]
    await ctx.write(lambda: ctx.record(entries))
    # §9.6: the same peers compare the OPRF keys they pinned for the partners they share.
    pins = await compare_pins(ctx, session, [r.peer for r in results])
    for r in results:
        r.oprf_keys = pins.get(r.peer)
    return results
