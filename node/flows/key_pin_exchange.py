"""Comparing pinned OPRF keys with peers (docs/protocol.md §9.6).

Every requester pins the OPRF key each partner evaluated with, per convenant and key
epoch (§6.8 step 4a). A partner that showed one requester another key than the rest is
caught only where two requesters compare: during a cross-check (§9.4) this node sends
each peer the pins it holds of *other* partners, and the peer answers with its own pins
for the same partner, convenant and epoch. Either side that finds a second key records
the conflict, logs ``peer.oprf_key_conflict`` and from then on treats that partner's
answers under that epoch as ``invalid`` (``oprf_key_conflict``).

Only pins of convenants both nodes are parties to are compared: a peer learns nothing
of the partners of a convenant it is not in.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import aiohttp

from node.errors import ProtocolError
from node.flows import log_entries
from node.flows.answering import (
    Answer,
    admit_peer,
    answer_with_head,
    check_fresh,
    refuse_unauthenticated,
)
from node.flows.context import NodeContext
from node.flows.peer_client import PartnerFailure, peer_ssl, post_signed, verified
from node.protocol import answer_size, jws
from node.protocol.answers import Expected
from node.protocol.key_pins import (
    KEY_PINS_REQUEST_TYP,
    KEY_PINS_RESPONSE,
    KEY_PINS_RESPONSE_TYP,
    MAX_PINS,
    KeyPin,
    KeyPinsRefused,
    KeyPinsRequest,
)
from node.protocol.models import parse_model
from node.store import key_pins, log, peer_heads
from node.store.db import tx
from node.tls import PeerTransport

KEY_PINS_PATH = "/peer/v1/key-pins"

PinVerdict = Literal["agree", "conflict", "refused", "unreachable", "timeout", "invalid"]


def _shared_convenants(ctx: NodeContext, peer: str) -> set[str]:
    """Convenant ids whose newest installed version has both this node and ``peer``."""
    return {
        cid
        for cid, versions in ctx.trust().convenants.items()
        if versions[0].convenant.party(peer) is not None
        and versions[0].convenant.party(ctx.node_id) is not None
    }


def _compare(
    ctx: NodeContext, peer: str, theirs: Sequence[KeyPin], now: datetime
) -> tuple[list[KeyPin], list[log.LogEntry]]:
    """Our pins for the (node, convenant, epoch) of ``theirs``, and a conflict entry for
    each second key found. Inside the caller's transaction."""
    shared = _shared_convenants(ctx, peer)
    ours: list[KeyPin] = []
    entries: list[log.LogEntry] = []
    for pin in theirs:
        if pin.convenant_id not in shared or pin.node in (ctx.node_id, peer):
            continue
        held = key_pins.held(ctx.conn, pin.node, pin.convenant_id, pin.epoch)
        if held is None:
            continue
        ours.append(KeyPin(node=pin.node, convenant_id=pin.convenant_id, epoch=pin.epoch,
                           oprf_public_key=jws.b64u_encode(held)))  # fmt: skip
        told = key_pins.Pin(pin.node, pin.convenant_id, pin.epoch, pin.oprf_public_key)
        if key_pins.observe(ctx.conn, told, peer, now) == "new_conflict":
            entries.append(
                log_entries.peer_oprf_key_conflict(
                    partner=pin.node, convenant_id=pin.convenant_id, epoch=pin.epoch,
                    source=peer,
                )
            )  # fmt: skip
    return ours, entries


def answer_key_pins(ctx: NodeContext, body: bytes, transport: PeerTransport) -> Answer:
    """§9.6, answering: §6.6 steps 1–6, then compare, record, log, sign."""
    doc = jws.parse_bytes(body, KEY_PINS_REQUEST_TYP)
    req = parse_model(KeyPinsRequest, doc.payload)
    now = ctx.clock.now()
    fields: dict[str, Any] = {
        "partner": ctx.node_id,
        "requester": req.requester,
        "request_hash": jws.b64u_encode(doc.digest()),
        "issued_at": now,
    }
    refusal = admit_peer(
        ctx, doc, req.requester, req.partner, req.issued_at, req.nonce, now, transport
    )
    if refusal is not None:
        return refuse_unauthenticated(
            ctx, "key_pins", req.requester, refusal, KEY_PINS_RESPONSE_TYP, fields,
            KeyPinsRefused, now,
        )  # fmt: skip
    with tx(ctx.conn):
        refusal = check_fresh(ctx, req.issued_at, req.requester, req.nonce, now)
        entries: list[log.LogEntry] = []
        ours: list[KeyPin] = []
        if refusal is None:
            ours, entries = _compare(ctx, req.requester, req.pins, now)
            fields.update(outcome="pins", pins=tuple(ours))
        else:
            fields.update(
                outcome="refused", reason=refusal.code, reason_detail=refusal.detail[:500]
            )
        ctx.record(
            [
                log_entries.key_pins_compared(
                    requester=req.requester,
                    reason=refusal.code if refusal else None,
                    received=len(req.pins),
                    compared=len(ours),
                    conflicts=len(entries),
                ),
                *entries,
            ],
            now,
        )
        return answer_with_head(
            ctx,
            KEY_PINS_RESPONSE_TYP,
            lambda head: KEY_PINS_RESPONSE.validate_python({**fields, "tree_head": head}).wire(),
            refusal,
        )


async def _compare_with(
    ctx: NodeContext, session: aiohttp.ClientSession, peer_id: str, held: Sequence[key_pins.Pin]
) -> tuple[PinVerdict, int]:
    """Send ``peer_id`` our pins of the partners it shares a convenant with; compare its
    answer. The verdict and the number of pins compared."""
    peer = ctx.trust().peers_by_id.get(peer_id)
    if peer is None:
        return "invalid", 0
    shared = _shared_convenants(ctx, peer_id)
    sent = [
        KeyPin(node=p.partner, convenant_id=p.convenant_id, epoch=p.epoch,
               oprf_public_key=jws.b64u_encode(p.oprf_public_key))
        for p in held
        if p.convenant_id in shared and p.partner not in (ctx.node_id, peer_id)
    ][:MAX_PINS]  # fmt: skip
    if not sent:
        return "agree", 0
    req = KeyPinsRequest(
        requester=ctx.node_id,
        partner=peer_id,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=ctx.clock.now(),
        pins=tuple(sent),
    )
    doc = jws.sign(KEY_PINS_REQUEST_TYP, req.wire(), ctx.keys.signing)
    card = peer.card
    try:
        context = await peer_ssl(ctx, card)  # TLS pinned to the card's key (§12.3)
        body = await asyncio.wait_for(
            post_signed(
                session,
                card.endpoint_url + KEY_PINS_PATH,
                doc,
                KEY_PINS_RESPONSE_TYP,
                max_bytes=answer_size.KEY_PINS_ANSWER,
                ssl_context=context,
            ),
            ctx.cfg.peers.timeout_seconds,
        )
        expected = Expected(
            KEY_PINS_RESPONSE_TYP,
            peer_id,
            card.signing_fingerprint,
            card.signing_key_bytes,
            ctx.node_id,
            doc.digest(),
        )
        answer = verified(body, KEY_PINS_RESPONSE, expected)
    except PartnerFailure as f:
        return ("refused" if f.status == "refused" else f.status), 0  # type: ignore[return-value]
    except TimeoutError:
        return "timeout", 0
    except ProtocolError:
        return "invalid", 0
    resp, head = answer.answer, answer.tree_head
    asked = {(p.node, p.convenant_id, p.epoch) for p in sent}
    if resp.pins is not None and any((p.node, p.convenant_id, p.epoch) not in asked
                                     for p in resp.pins):  # fmt: skip
        return "invalid", 0

    def keep() -> bool:
        now = ctx.clock.now()
        if head is not None:
            peer_heads.remember(ctx.conn, peer_id, head, now)
        if resp.pins is None:
            return False
        _, entries = _compare(ctx, peer_id, resp.pins, now)
        if entries:
            ctx.record(entries, now)
        return bool(entries)

    found = await ctx.write(keep)
    if resp.pins is None:
        return "refused", 0
    return ("conflict" if found else "agree"), len(resp.pins)


async def compare_pins(
    ctx: NodeContext, session: aiohttp.ClientSession, peer_ids: Sequence[str]
) -> dict[str, PinVerdict]:
    """Compare pins with every peer named, in parallel; log one entry per peer."""
    held = await ctx.read(lambda: key_pins.pins(ctx.conn))
    peers = [p for p in peer_ids if p != ctx.node_id]
    outcomes = await asyncio.gather(*(_compare_with(ctx, session, p, held) for p in peers))
    entries = [
        log_entries.key_pins_checked(peer=p, verdict=v, compared=n)
        for p, (v, n) in zip(peers, outcomes, strict=True)
    ]
    await ctx.write(lambda: ctx.record(entries))
    return {p: v for p, (v, _) in zip(peers, outcomes, strict=True)}
