"""Restoring without forking (docs/protocol.md §9.7): both sides of the held-head exchange
and the check a restored node runs before it signs anything.

A backup copy carries a marker (``log.RESTORE_CHECK_META``, set by ``node.store.backup``);
a node started on it signs no head (``RestorePending``) until ``check_restored`` has asked
every peer for the newest head of this node it holds. If a peer holds a head the restored
log does not contain — or if any peer could not answer, so nobody can tell — the node
opens a new log epoch with a signed restore statement; heads of that epoch never collide
with a size a peer holds, and the peers record a restore instead of a fork.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from node.errors import ProtocolError, VhnodeError
from node.flows import log_entries
from node.flows.answering import (
    Answer,
    admit_peer,
    check_fresh,
    head_json,
    refuse_unauthenticated,
    sign_answer,
)
from node.flows.context import NodeContext
from node.flows.peer_client import (
    PartnerFailure,
    keep_tree_head,
    peer_ssl,
    post_signed,
    verified,
)
from node.protocol import answer_size, jws
from node.protocol.answers import Expected
from node.protocol.held_head import (
    HELD_HEAD_REQUEST_TYP,
    HELD_HEAD_RESPONSE,
    HELD_HEAD_RESPONSE_TYP,
    HeldHeadRefused,
    HeldHeadRequest,
)
from node.protocol.models import parse_model, rfc3339
from node.protocol.restore import (
    RESTORE_STATEMENT_TYP,
    LogPoint,
    check_statement,
    statement_payload,
)
from node.protocol.tree_head import TREE_HEAD_TYP, TreeHead, check_head
from node.store import log, oprf_epochs, peer_heads, tag_sets
from node.store.db import tx
from node.tls import PeerTransport

HELD_HEAD_PATH = "/peer/v1/log/held-head"
TAG_SET_VERSION_JUMP = 1 << 20
"""How far each tag set's version moves when an epoch opens (§9.7): more publications
than a node makes between a backup and its restore, so past any version a requester may
hold of the lost history — also one whose peer could not answer the check."""

logger = structlog.get_logger("vhnode.restore")


# --- answering: "which is the newest head of mine you hold?" ----------------------------


def answer_held_head(ctx: NodeContext, body: bytes, transport: PeerTransport) -> Answer:
    """§9.7: the newest signed head of the requester we hold. Any known, unrevoked peer
    may ask (the head is its own); authenticated like a consistency request (§6.6 steps
    1–6), logged, and carrying our own head (§9.3)."""
    doc = jws.parse_bytes(body, HELD_HEAD_REQUEST_TYP)
    req = parse_model(HeldHeadRequest, doc.payload)
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
            ctx, "held_head", req.requester, refusal, HELD_HEAD_RESPONSE_TYP, fields,
            HeldHeadRefused, now,
        )  # fmt: skip
    with tx(ctx.conn):
        refusal = check_fresh(ctx, req.issued_at, req.requester, req.nonce, now)
        held: str | None = None
        if refusal is not None:
            fields.update(
                outcome="refused", reason=refusal.code, reason_detail=refusal.detail[:500]
            )
            entry = log_entries.log_held_head_refused(requester=req.requester, reason=refusal.code)
        else:
            held = peer_heads.newest_held(ctx.conn, req.requester)
            payload = None if held is None else _payload(held)
            fields.update(outcome="held", held=None if held is None else json.loads(held))
            entry = log_entries.log_held_head_served(
                requester=req.requester,
                epoch=None if payload is None else payload.get("epoch", 0),
                tree_size=None if payload is None else payload["tree_size"],
            )
        ctx.record([entry], now)

        def build(head: dict[str, Any]) -> dict[str, Any]:
            return HELD_HEAD_RESPONSE.validate_python({**fields, "tree_head": head}).wire()

        return ctx.after_commit(  # type: ignore[return-value]
            lambda h: sign_answer(ctx, HELD_HEAD_RESPONSE_TYP, build(head_json(h)), refusal)
        )


def _payload(head_text: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(jws.b64u_decode(json.loads(head_text)["payload"]))
    return payload


# --- asking: the check a restored node runs before it signs -----------------------------


@dataclass
class HeldAnswer:
    peer: str
    head: TreeHead | None = None
    """Our own head the peer holds (verified under our key), None if it holds none."""
    failure: str | None = None
    """Why the peer gave no usable answer (unreachable, refused, invalid…)."""


@dataclass
class RestoreCheck:
    """What ``check_restored`` found and did."""

    peers_asked: int
    peers_answered: int
    behind: list[str]
    """Peers holding a head of ours the restored log does not contain."""
    epoch: int
    """Our log's epoch afterwards (unchanged when no epoch was needed)."""
    statement: str | None
    """The restore statement that opened ``epoch``, when one was signed."""


async def check_restored(ctx: NodeContext, session: aiohttp.ClientSession) -> RestoreCheck | None:
    """If this database is a restored copy, ask every peer which head of ours it holds
    and end the check: a new epoch when any holds more than the restored log — or when
    any did not answer (fail closed: an epoch never collides with what a silent peer may
    hold) —, else just a ``log.restore_checked`` entry. None when nothing was pending."""
    pending, peer_ids = await ctx.read(
        lambda: (
            log.restore_pending(ctx.conn),
            sorted(
                p.node_id
                for p in ctx.trust().peers_by_id.values()
                if p.revoked_at is None and p.node_id != ctx.node_id
            ),
        )
    )
    if not pending:
        return None
    answers = list(await asyncio.gather(*(_ask(ctx, session, p) for p in peer_ids)))
    result = await ctx.write(lambda: _conclude(ctx, answers))
    logger.info(
        "restore_checked",
        peers_asked=result.peers_asked,
        peers_answered=result.peers_answered,
        behind=len(result.behind),
        epoch=result.epoch,
    )
    return result


async def _ask(ctx: NodeContext, session: aiohttp.ClientSession, peer_id: str) -> HeldAnswer:
    answer = HeldAnswer(peer_id)
    peer = ctx.trust().peers_by_id.get(peer_id)
    if peer is None:
        answer.failure = "no peer card"
        return answer
    card = peer.card
    req = HeldHeadRequest(
        requester=ctx.node_id,
        partner=peer_id,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=ctx.clock.now(),
    )
    doc = jws.sign(HELD_HEAD_REQUEST_TYP, req.wire(), ctx.keys.signing)
    try:
        context = await peer_ssl(ctx, card)  # over TLS pinned to the card, as every ask
        body = await asyncio.wait_for(
            post_signed(
                session,
                card.endpoint_url + HELD_HEAD_PATH,
                doc,
                HELD_HEAD_RESPONSE_TYP,
                max_bytes=answer_size.HELD_HEAD_ANSWER,
                ssl_context=context,
            ),
            ctx.cfg.peers.timeout_seconds,
        )
        expected = Expected(
            HELD_HEAD_RESPONSE_TYP,
            peer_id,
            card.signing_fingerprint,
            card.signing_key_bytes,
            ctx.node_id,
            doc.digest(),
        )
        verified_answer = verified(body, HELD_HEAD_RESPONSE, expected)
        if verified_answer.tree_head is not None:
            await keep_tree_head(ctx, peer_id, verified_answer.tree_head)
        resp = verified_answer.answer
        if isinstance(resp, HeldHeadRefused):
            answer.failure = f"refused: {resp.reason}"
        elif resp.held is not None:
            # Our own head, as the peer holds it: it must verify under our key.
            answer.head = check_head(resp.held, ctx.node_id, ctx.keys.signing_public)
    except PartnerFailure as f:
        answer.failure = f"{f.status}: {f.reason or ''} {f.detail}".strip()
    except TimeoutError:
        answer.failure = "timeout"
    except (ProtocolError, VhnodeError) as e:
        answer.failure = f"invalid: {e.detail}"
    return answer


def _conclude(ctx: NodeContext, answers: list[HeldAnswer]) -> RestoreCheck:
    """In one write job: decide, sign the statement if needed, end the check, log it."""
    conn = ctx.conn
    now = ctx.clock.now()
    own = log.latest_head(conn)
    if own is None:
        raise VhnodeError("the restored log has no signed tree head; run vhnode audit verify")
    epoch, _ = log.current_epoch(conn)  # the newest head is always of the current epoch
    restored = LogPoint(epoch, own.tree_size, own.root_hash)
    answered = [a for a in answers if a.failure is None]
    behind = [a.peer for a in answered if a.head is not None and not _contains(conn, epoch, a.head)]
    asked = len(answers)
    if not behind and len(answered) == asked:
        log.end_restore_check(conn, None, own.tree_size, now)
        ctx.record(
            [
                log_entries.log_restore_checked(
                    tree_size=own.tree_size, peers_asked=asked, peers_answered=len(answered)
                )
            ],
            now,
        )
        return RestoreCheck(asked, len(answered), [], epoch, None)
    # The newest head anyone holds — ours when no peer holds more: the new epoch follows it.
    newest, held = own, restored
    for a in answered:
        if a.head is not None and (a.head.epoch, a.head.tree_size) > (held.epoch, held.tree_size):
            newest, held = a.head, LogPoint(a.head.epoch, a.head.tree_size, a.head.root_hash)
    payload = statement_payload(
        node=ctx.node_id,
        restored=restored,
        held=held,
        held_head_digest=jws.parse(json.loads(newest.jws), TREE_HEAD_TYP).digest(),
        peers_asked=asked,
        peers_answered=len(answered),
        stated_at=rfc3339(now),
    )
    doc = jws.sign(RESTORE_STATEMENT_TYP, payload, ctx.keys.signing)
    statement = check_statement(doc.to_json(), ctx.node_id, ctx.keys.signing_public)
    log.end_restore_check(conn, json.loads(statement.jws), own.tree_size, now)
    entries = [log_entries.log_restored(statement=statement)]
    # Tag sets published after the backup are lost too, and requesters may hold them:
    # the same members again, at a version past theirs (§9.7).
    # Each convenant's live set only (its OPRF key epoch's, §6.1.1): a previous epoch's
    # set serves hit proofs of the overlap and is never asked for as a tag set.
    set_ids = [
        str(r[0]) for r in conn.execute("SELECT DISTINCT convenant_id FROM tag_set_versions")
    ]
    convenants = sorted({s.split("#", 1)[0] for s in set_ids})
    for convenant_id in convenants:
        live = oprf_epochs.live_set(conn, convenant_id)
        head = tag_sets.publish_after_restore(conn, live, TAG_SET_VERSION_JUMP, now)
        entries.append(
            log_entries.tag_set_published(
                convenant_id=convenant_id,
                convenant_version=None,
                actor=None,
                version=head.version,
                count=head.count,
                added=0,
                removed=0,
            )
        )
    ctx.record(entries, now)
    return RestoreCheck(asked, len(answered), behind, statement.epoch, statement.jws)


def _contains(conn: sqlite3.Connection, epoch: int, head: TreeHead) -> bool:
    """Whether our restored log holds ``head``: same epoch, a size we have, that root."""
    if head.epoch != epoch:
        return head.epoch < epoch  # an epoch we closed ourselves: its statement covers it
    if head.tree_size > log.size(conn):
        return False
    return log.subtree_hash(conn, 0, head.tree_size) == head.root_hash
