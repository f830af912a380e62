"""The asking side of the detail exchange (docs/protocol.md §14.2, §14.5, §14.6, §14.8, §14.9).

After a round, a local user may ask a partner that had a hit for detail of that subject.
The answer is verified like an evaluate response (signature by the key the convenant
names, ``request_hash``, addressing, tree head kept), the sealed payload opened, and each
delivered category stored once, re-encrypted at rest; it is shown only to the local roles
its rule names and deleted at its ``retain_until``. Every outcome the partner did not
sign (``unreachable``, ``timeout``, ``invalid``) is kept as such: a category is never
taken as denied because the partner did not answer.

Hit proofs, detail texts and tags are never logged; entries name the subject by its
pseudonym only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from node.errors import (
    CategoryNotInCatalogue,
    Forbidden,
    InputError,
    MalformedMessage,
    NotAParty,
    PartyWithdrawn,
    ProtocolError,
    Refusal,
    RoundPurposeMismatch,
    UnknownDetailRequest,
    UnknownRound,
)
from node.flows import log_entries, unauthenticated
from node.flows.admin import own_card
from node.flows.answering import admit_peer, check_fresh
from node.flows.context import NodeContext
from node.flows.peer_client import (
    RETRY_FAST_FAILURES,
    RETRY_UNDELIVERED,
    PartnerFailure,
    Transient,
    Tries,
    signed_exchange,
    with_retries,
)
from node.flows.standing import current_convenant
from node.policy.detail import (
    CategoryDecision,
    decide_category,
    hit_notice_required,
    retention_deadline,
)
from node.protocol import answer_size, jws
from node.protocol.convenant import Convenant, ConvenantParty
from node.protocol.detail import (
    DETAIL_NOTICE_TYP,
    DETAIL_PATH,
    DETAIL_POLL_PATH,
    DETAIL_POLL_TYP,
    DETAIL_REQUEST_TYP,
    DETAIL_RESPONSE,
    DETAIL_RESPONSE_TYP,
    HIT_NOTICE_PATH,
    HIT_NOTICE_RESPONSE,
    HIT_NOTICE_RESPONSE_TYP,
    HIT_NOTICE_TYP,
    MAX_CATEGORIES,
    MAX_HIT_PROOFS,
    DetailAnswered,
    DetailNotice,
    DetailPayload,
    DetailPoll,
    DetailRefused,
    DetailRequest,
    HitNotice,
    HitNoticeAccepted,
    HitNoticeRefused,
    open_sealed,
)
from node.protocol.models import WireModel, parse_model, rfc3339
from node.protocol.peer_card import PeerCard
from node.protocol.withdrawal import withdrawn
from node.store import received
from node.store.db import flush_deleted, tx
from node.store.log_kinds import LogKind
from node.store.received import Ask, AskedCategory, RoundHit, open_at_rest, seal_at_rest
from node.tls import PeerTransport

ASKING_ROLES = ("coordinator", "liaison", "privacy_officer")
LOCAL_STATUSES = ("unreachable", "timeout", "invalid")
NOTICE_ACTOR = "decision-notice"
RETENTION_ACTOR = "retention"

logger = structlog.get_logger("vhnode.details")


# --- at rest (§14.8) -------------------------------------------------------------------


def at_rest_key(ctx: NodeContext) -> bytes:
    """HKDF of the X25519 private key (node/keys.py): only this node can derive it."""
    return ctx.keys.at_rest_key()


# --- the partner: card and convenant key ---------------------------------------------


def _card(ctx: NodeContext, partner: str) -> PeerCard:
    """The partner's card we trust now, or PartnerFailure(invalid) (as a round does)."""
    if partner == ctx.node_id:
        return own_card(ctx)[0]
    peer = ctx.trust().peers_by_id.get(partner)
    if peer is None:
        raise PartnerFailure("invalid", "unknown_partner", "no peer card for this partner")
    if peer.revoked_at is not None or not peer.card.valid_at(ctx.clock.now()):
        raise PartnerFailure(
            "invalid", "revoked_partner", "this node revoked the partner's peer card or it expired"
        )
    return peer.card


def _party(conv: Convenant, partner: str) -> ConvenantParty:
    party = conv.party(partner)
    if party is None:
        raise PartnerFailure(
            "invalid", "unknown_partner", f"{partner} is no party to convenant {conv.id}"
        )
    return party


def _convenant_for(ctx: NodeContext, ask: Ask) -> Convenant:
    """The convenant whose key for the partner an answer to ``ask`` must carry: the version
    in force now (it may have been renewed), else the version the ask was sent under."""
    try:
        return current_convenant(ctx, ask.convenant_id)
    except Refusal:
        inst = ctx.trust().version(ask.convenant_id, ask.convenant_version)
        if inst is None:
            raise PartnerFailure(
                "invalid", "unknown_partner", f"convenant {ask.convenant_id} is not installed"
            ) from None
        return inst.convenant


# --- one exchange: send, verify, open ----------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    outcome: str  # answered, refused, or a local status
    reason: str | None
    detail: str | None
    response: DetailAnswered | DetailRefused | None = None
    payload: DetailPayload | None = None
    # Delivered category → (retain_until, recipient_roles) this node keeps it under.
    terms: dict[str, tuple[datetime, tuple[str, ...]]] = dataclasses.field(default_factory=dict)


def _terms(
    conv: Convenant, partner: str, requester: str, resp: DetailAnswered, now: datetime
) -> dict[str, tuple[datetime, tuple[str, ...]]]:
    """The partner's terms for each delivered category, within the convenant's rule: this
    node holds the convenant too, so a partner cannot widen who reads nor how long (§5.6)."""
    out: dict[str, tuple[datetime, tuple[str, ...]]] = {}
    for c in resp.categories:
        if c.status != "delivered":
            continue
        rule = conv.detail_rule(partner, c.category)
        if rule is None or requester not in rule.recipients:
            raise PartnerFailure(
                "invalid",
                "malformed_message",
                f"convenant {conv.id} lets {partner} give {c.category!r} to no one here",
            )
        until = min(c.retain_until or now, retention_deadline(rule, now))
        roles = tuple(r for r in c.recipient_roles or () if r in rule.recipient_roles)
        out[c.category] = (until, roles)
    return out


def _signer(ctx: NodeContext, typ: str, msg: WireModel) -> Callable[[], jws.SignedDocument]:
    """Signs ``msg`` anew at each call, with a new nonce and ``issued_at``: every try of a
    retry is a new request, never a copy the partner refuses as a replay (§6.8)."""

    def sign() -> jws.SignedDocument:
        fresh = msg.model_copy(
            update={"nonce": jws.b64u_encode(secrets.token_bytes(16)), "issued_at": ctx.clock.now()}
        )
        return jws.sign(typ, fresh.wire(), ctx.keys.signing)

    return sign


def _within_timeout(ctx: NodeContext) -> float:
    """The deadline for a detail exchange's retries, on the loop's clock: one per-partner
    timeout from the first try (there is no round here)."""
    return asyncio.get_running_loop().time() + ctx.cfg.peers.timeout_seconds


async def _exchange(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    conv: Convenant,
    partner: str,
    path: str,
    sign: Callable[[], jws.SignedDocument],
    trace_id: str,
    categories: tuple[str, ...],
    retry_on: frozenset[Transient],
) -> Exchange:
    try:
        party = _party(conv, partner)
        card = _card(ctx, partner)
        resp = await with_retries(
            ctx,
            Tries(),
            lambda: signed_exchange(
                ctx,
                session,
                party,
                card,
                path,
                sign(),
                DETAIL_RESPONSE_TYP,
                DETAIL_RESPONSE,
                ctx.cfg.peers.timeout_seconds,
                answer_size.DETAIL_ANSWER,
            ),
            deadline=_within_timeout(ctx),
            retry_on=retry_on,
            partner=partner,
        )
        if resp.trace_id != trace_id:
            raise PartnerFailure("invalid", "bad_binding", "response names another trace id")
        if isinstance(resp, DetailRefused):
            return Exchange("refused", resp.reason, resp.reason_detail, resp)
        if tuple(c.category for c in resp.categories) != categories:
            raise PartnerFailure(
                "invalid", "bad_binding", "response does not answer the categories asked"
            )
        terms = _terms(conv, partner, ctx.node_id, resp, ctx.clock.now())
        payload = None
        if resp.sealed is not None:
            try:
                payload = open_sealed(resp.sealed, ctx.keys.encryption, resp)
            except ProtocolError as e:
                raise PartnerFailure("invalid", "bad_payload", e.detail) from e
        return Exchange("answered", None, None, resp, payload, terms)
    except PartnerFailure as f:
        return Exchange(f.status, f.reason, f.detail)
    except TimeoutError:
        return Exchange("timeout", None, "no answer within the per-partner timeout")
    except Exception as e:  # a surprise in one exchange is this exchange's status, logged
        logger.exception("detail_exchange_failed", partner=partner)
        return Exchange(
            "invalid", "internal_error", f"{type(e).__name__} while handling the answer"
        )


def _apply(
    ctx: NodeContext,
    trace_id: str,
    ex: Exchange,
    kind: LogKind,
    actor: str,
    now: datetime,
    *,
    new: Ask | None = None,
) -> Ask:
    """Store the exchange's outcome and every newly delivered category, and log it: one
    transaction. A category stored (or purged) once keeps its terms and is never stored
    again: a re-delivery is dropped."""
    key = at_rest_key(ctx)
    with tx(ctx.conn):
        if new is not None:
            received.insert_ask(ctx.conn, new, now)
        received.set_outcome(ctx.conn, trace_id, ex.outcome, ex.reason, ex.detail, now)
        before = received.get_ask(ctx.conn, trace_id)
        if before is None:  # inserted above or checked by the caller
            raise UnknownDetailRequest(f"no detail request {trace_id}")
        held = {c.category: c for c in before.categories}
        texts = {d.category: d.entries for d in ex.payload.details} if ex.payload else {}
        stored: list[tuple[str, str | None]] = []
        answers = ex.response.categories if ex.response is not None else None
        for c in answers or ():
            mine = held[c.category]
            if mine.received_at is not None or mine.purged_at is not None:
                continue
            until, roles = ex.terms.get(c.category, (None, None))
            received.set_category(
                ctx.conn,
                trace_id,
                c.category,
                status=c.status,
                rule=c.rule,
                reason=c.reason,
                reason_detail=c.reason_detail,
                retain_until=None if until is None else rfc3339(until),
                recipient_roles=roles,
            )
            if c.category in texts:  # delivered and still to be retained (§14.5)
                nonce, ct = seal_at_rest(
                    key, trace_id, before.partner, c.category, texts[c.category]
                )
                received.store_received(ctx.conn, trace_id, c.category, nonce, ct, now)
                stored.append((c.category, None if until is None else rfc3339(until)))
        after = received.get_ask(ctx.conn, trace_id)
        if after is None:
            raise UnknownDetailRequest(f"no detail request {trace_id}")
        main = log_entries.detail_exchanged(
            kind,
            trace_id=trace_id,
            convenant_id=after.convenant_id,
            convenant_version=after.convenant_version,
            purpose=after.purpose,
            actor=actor,
            partner=after.partner,
            subject=after.pseudonym,
            outcome=ex.outcome,
            reason=ex.reason,
            data={
                "case_ref": after.case_ref,
                "round_trace_id": after.round_trace_id,
                "requesting_role": after.asked_role,
                "categories": [c.category for c in after.categories],
                "statuses": [c.status for c in after.categories],
            },
        )
        entries = [main] + [
            log_entries.detail_received(main, category=category, retain_until=until)
            for category, until in stored
        ]
        ctx.record(entries, now)
    return after


# --- asking ----------------------------------------------------------------------------


def _check_categories(categories: Sequence[str]) -> tuple[str, ...]:
    cats = tuple(categories)
    if not cats:
        raise InputError("categories: name at least one category")
    if len(cats) > MAX_CATEGORIES:
        raise InputError(f"categories: at most {MAX_CATEGORIES} in one detail request")
    if len(set(cats)) != len(cats):
        raise InputError("categories: a category is named twice")
    return cats


def _usable_hit(ctx: NodeContext, round_trace_id: str, partner: str, subject: int) -> RoundHit:
    hit = received.round_hit(ctx.conn, round_trace_id, partner, subject)
    if hit is None:
        hits = received.round_hits_of(ctx.conn, round_trace_id)
        if not hits:
            raise UnknownRound(
                f"no round {round_trace_id} with a hit is held here (unknown, without "
                f"hits, or its hits expired after {ctx.cfg.details.hit_validity_hours:g} h)"
            )
        raise UnknownRound(f"round {round_trace_id} had no hit at {partner} for subject {subject}")
    if hit.expires_at <= ctx.clock.now():
        raise UnknownRound(
            f"the hits of round {round_trace_id} expired at {rfc3339(hit.expires_at)}"
        )
    return hit


@dataclass(frozen=True)
class DetailOffer:
    """What a user of ``role`` may ask ``partner`` about one subject of a round: the §7.4
    decision for every category of the convenant's catalogue, made here with the rules the
    partner applies (node/policy/detail.py), so a form offers nothing the partner denies."""

    hit: RoundHit
    conv: Convenant
    decisions: tuple[CategoryDecision, ...]

    @property
    def offered(self) -> tuple[CategoryDecision, ...]:
        """Allowed, or allowed after the partner's liaison approves."""
        return tuple(d for d in self.decisions if d.outcome != "deny")


def detail_offer(
    ctx: NodeContext, round_trace_id: str, partner: str, subject: int, role: str
) -> DetailOffer:
    """The categories ``ask_details`` may ask for this hit (a read: run it in ctx.read).

    Raises as ``ask_details`` does before anything is sent: a role that may not ask, a
    round without this hit or whose hits expired, a convenant no longer in force.
    """
    if role not in ASKING_ROLES:
        raise Forbidden(f"role {role} may not ask for detail; one of {', '.join(ASKING_ROLES)}")
    hit = _usable_hit(ctx, round_trace_id, partner, subject)
    conv = current_convenant(ctx, hit.convenant_id)
    withdrawals = ctx.trust().withdrawals_of(conv.id)
    now = ctx.clock.now()
    return DetailOffer(
        hit,
        conv,
        tuple(
            decide_category(conv, partner, ctx.node_id, role, hit.purpose, c.id, now, withdrawals)
            for c in conv.categories
        ),
    )


def round_hits(ctx: NodeContext, round_trace_id: str) -> set[tuple[str, int]]:
    """(partner, subject) of every hit of the round still held, so still askable."""
    now = ctx.clock.now()
    return {
        (h.partner, h.subject)
        for h in received.round_hits_of(ctx.conn, round_trace_id)
        if h.expires_at > now
    }


async def ask_details(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    *,
    round_trace_id: str,
    partner: str,
    subject: int,
    categories: Sequence[str],
    purpose: str,
    case_ref: str | None,
    user: str,
    role: str,
) -> dict[str, Any]:
    """§14.2: ask ``partner`` for detail of the subject it had a hit on in the round.

    Raises before anything is sent or stored when this node may not ask (role, round,
    convenant, catalogue); every partner-side outcome is stored and returned.
    """
    cats = _check_categories(categories)
    if role not in ASKING_ROLES:
        raise Forbidden(f"role {role} may not ask for detail; one of {', '.join(ASKING_ROLES)}")
    hit, conv = await ctx.read(
        lambda: (
            hit := _usable_hit(ctx, round_trace_id, partner, subject),
            current_convenant(ctx, hit.convenant_id),
        )
    )
    if purpose != hit.purpose:
        # The partner refuses it anyway (§14.3 step 4); a hit proof and a case reference
        # need not travel for a purpose the round was not asked for.
        raise RoundPurposeMismatch(
            f"round {round_trace_id} was asked under purpose {hit.purpose}, not {purpose}; "
            "detail is asked under the round's purpose"
        )
    for c in cats:
        if conv.category(c) is None:
            raise CategoryNotInCatalogue(f"{c!r} is not a category of convenant {conv.id}")
    if conv.party(partner) is None:
        raise NotAParty(f"{partner} is no party to {conv.id} v{conv.version}")
    now = ctx.clock.now()
    gone = withdrawn(ctx.trust().withdrawals_of(conv.id), conv, partner, now)
    if gone is not None:
        # As in a round (§6.8): a partner that signed it left is sent nothing, least of
        # all a hit proof and a case reference.
        raise PartyWithdrawn(f"{partner} withdrew from {conv.id} at {rfc3339(gone.withdrawn_at)}")
    trace_id = secrets.token_hex(16)
    req = DetailRequest(
        requester=ctx.node_id,
        partner=partner,
        convenant_id=conv.id,
        convenant_version=conv.version,
        purpose=purpose,
        case_ref=case_ref or hit.case_ref,
        requesting_user=user,
        requesting_role=role,
        trace_id=trace_id,
        round_trace_id=round_trace_id,
        hit_proof=jws.b64u_encode(hit.hit_proof),
        categories=cats,
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=now,
    )
    # Retried only if the partner received nothing: it takes a trace id once (§14.3 step
    # 3), so a second copy after a reset could be refused for a request it holds.
    sign = _signer(ctx, DETAIL_REQUEST_TYP, req)
    ex = await _exchange(
        ctx, session, conv, partner, DETAIL_PATH, sign, trace_id, cats, RETRY_UNDELIVERED
    )
    ask = Ask(
        trace_id=trace_id,
        partner=partner,
        round_trace_id=round_trace_id,
        subject=subject,
        pseudonym=hit.pseudonym,
        convenant_id=conv.id,
        convenant_version=conv.version,
        purpose=purpose,
        case_ref=req.case_ref,
        asked_by=user,
        asked_role=role,
        asked_at=rfc3339(now),
        outcome=ex.outcome,
        reason=ex.reason,
        detail=ex.detail,
        categories=tuple(
            AskedCategory(c, None, None, None, None, None, None, None, None) for c in cats
        ),
    )
    done = ctx.clock.now()
    stored = await ctx.write(
        lambda: _apply(ctx, trace_id, ex, LogKind.DETAIL_ASKED, user, done, new=ask)
    )
    return ask_json(ctx, stored)


async def poll(
    ctx: NodeContext, session: aiohttp.ClientSession, trace_id: str, user: str
) -> dict[str, Any]:
    """§14.5: the current state of one of our detail requests, and any detail now released."""
    ask = await ctx.read(lambda: received.get_ask(ctx.conn, trace_id))
    if ask is None:
        raise UnknownDetailRequest(f"no detail request {trace_id} was sent from this node")
    cats = tuple(c.category for c in ask.categories)
    try:
        conv = _convenant_for(ctx, ask)
    except PartnerFailure as f:
        ex = Exchange(f.status, f.reason, f.detail)
    else:
        msg = DetailPoll(
            requester=ctx.node_id,
            partner=ask.partner,
            trace_id=trace_id,
            nonce=jws.b64u_encode(secrets.token_bytes(16)),
            issued_at=ctx.clock.now(),
        )
        # A poll only reads the request's state: a second copy is harmless.
        sign = _signer(ctx, DETAIL_POLL_TYP, msg)
        ex = await _exchange(
            ctx,
            session,
            conv,
            ask.partner,
            DETAIL_POLL_PATH,
            sign,
            trace_id,
            cats,
            RETRY_FAST_FAILURES,
        )
    done = ctx.clock.now()
    stored = await ctx.write(lambda: _apply(ctx, trace_id, ex, LogKind.DETAIL_POLLED, user, done))
    return ask_json(ctx, stored)


# --- reading -------------------------------------------------------------------------


def _organisation(ctx: NodeContext, ask: Ask) -> str | None:
    inst = ctx.trust().version(ask.convenant_id, ask.convenant_version)
    party = inst.convenant.party(ask.partner) if inst else None
    return party.organisation if party else None


def ask_json(
    ctx: NodeContext, ask: Ask, texts: dict[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    shown = texts or {}
    return {
        "trace_id": ask.trace_id,
        "partner": ask.partner,
        "organisation": _organisation(ctx, ask),
        "round_trace_id": ask.round_trace_id,
        "subject": ask.subject,
        "convenant_id": ask.convenant_id,
        "convenant_version": ask.convenant_version,
        "purpose": ask.purpose,
        "case_ref": ask.case_ref,
        "asked_by": ask.asked_by,
        "asked_role": ask.asked_role,
        "asked_at": ask.asked_at,
        "outcome": ask.outcome,
        "reason": ask.reason,
        "detail": ask.detail,
        "open": ask.open,
        "categories": [
            {
                "category": c.category,
                "status": c.status,
                "rule": c.rule,
                "reason": c.reason,
                "reason_detail": c.reason_detail,
                "retain_until": c.retain_until,
                "recipient_roles": None if c.recipient_roles is None else list(c.recipient_roles),
                "received_at": c.received_at,
                "purged_at": c.purged_at,
                "visible": c.category in shown,
                "entries": list(shown[c.category]) if c.category in shown else None,
            }
            for c in ask.categories
        ],
    }


def list_asks(ctx: NodeContext) -> list[dict[str, Any]]:
    """Every detail request sent from this node, newest last; never a text."""
    return [ask_json(ctx, a) for a in received.all_asks(ctx.conn)]


def recent_asks(ctx: NodeContext, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest detail requests sent from this node, newest first; never a text."""
    return [ask_json(ctx, a) for a in received.recent_asks(ctx.conn, limit)]


def view(ctx: NodeContext, trace_id: str, user: str, role: str) -> dict[str, Any]:
    """The ask with the texts ``role`` may see (§14.8); every read of a text is logged."""
    ask = received.get_ask(ctx.conn, trace_id)
    if ask is None:
        raise UnknownDetailRequest(f"no detail request {trace_id} was sent from this node")
    key = at_rest_key(ctx)
    now = rfc3339(ctx.clock.now())
    texts: dict[str, tuple[str, ...]] = {}
    for c in ask.categories:
        if c.purged_at is not None or role not in (c.recipient_roles or ()):
            continue
        if c.retain_until is None or c.retain_until <= now:
            # Due for deletion: the purge runs only every purge interval, but the rule's
            # deadline is the moment the text stops being readable here.
            continue
        row = received.received(ctx.conn, trace_id, c.category)
        if row is None:
            continue
        try:
            texts[c.category] = open_at_rest(key, trace_id, ask.partner, c.category, *row)
        except MalformedMessage:
            # Altered at rest: show nothing of it rather than something unproven.
            logger.warning("detail_unreadable", trace_id=trace_id, category=c.category)
    if texts:
        with tx(ctx.conn):
            ctx.record(
                [
                    log_entries.detail_viewed(
                        trace_id=trace_id,
                        convenant_id=ask.convenant_id,
                        convenant_version=ask.convenant_version,
                        purpose=ask.purpose,
                        user=user,
                        partner=ask.partner,
                        subject=ask.pseudonym,
                        categories=list(texts),
                        role=role,
                    )
                ]
            )
    return ask_json(ctx, ask, texts)


# --- retention -----------------------------------------------------------------------


def purge_due(ctx: NodeContext) -> int:
    """Delete every stored text past its retain_until (metadata and log stay) and every
    expired hit proof; returns the number of categories purged."""
    now = ctx.clock.now()
    due = received.due(ctx.conn, now)
    with tx(ctx.conn):
        for d in due:
            received.purge(ctx.conn, d.trace_id, d.category, now)
        received.delete_expired_hits(ctx.conn, now)
        if due:
            ctx.record(
                [
                    log_entries.detail_purged(
                        trace_id=d.trace_id,
                        convenant_id=d.convenant_id,
                        convenant_version=d.convenant_version,
                        actor=RETENTION_ACTOR,
                        partner=d.partner,
                        subject=d.pseudonym,
                        category=d.category,
                    )
                    for d in due
                ],
                now,
            )
    if due:
        flush_deleted(ctx.conn)
    return len(due)


# --- decision notices (§14.6) -----------------------------------------------------------


def receive_notice(ctx: NodeContext, body: bytes, transport: PeerTransport) -> str:
    """Check a decision notice; the trace id of the open request it concerns.

    Raises (problem+json) when it is not from a trusted partner, not for us, stale or
    replayed, or names no open request of ours to that partner. The first four are
    refused before any write and only counted (``flows.unauthenticated``).
    """
    doc = jws.parse_bytes(body, DETAIL_NOTICE_TYP)
    notice = parse_model(DetailNotice, doc.payload)
    now = ctx.clock.now()
    refusal = admit_peer(
        ctx, doc, notice.partner, notice.requester, notice.issued_at, notice.nonce, now, transport
    )
    if refusal is not None:
        unauthenticated.count(ctx, "detail_notice", notice.partner, refusal, now)
        raise refusal
    with tx(ctx.conn):
        refusal = check_fresh(ctx, notice.issued_at, notice.partner, notice.nonce, now)
    if refusal is not None:
        raise refusal
    ask = received.get_ask(ctx.conn, notice.trace_id)
    if ask is None or ask.partner != notice.partner or not ask.open:
        raise UnknownDetailRequest(
            f"no open detail request {notice.trace_id} of this node to {notice.partner}"
        )
    return notice.trace_id


async def poll_after_notice(
    ctx: NodeContext, session: aiohttp.ClientSession, trace_id: str
) -> None:
    """Background: a notice said something was decided; fetch it. Never raises."""
    try:
        await poll(ctx, session, trace_id, NOTICE_ACTOR)
    except Exception:
        logger.exception("poll_after_notice_failed", trace_id=trace_id)


# --- hit notices (§14.9) -----------------------------------------------------------------


@dataclass(frozen=True)
class _NoticeResult:
    partner: str
    outcome: str
    reason: str | None
    detail: str | None
    noticed: int | None


async def _notice_with_retries(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    party: ConvenantParty,
    card: PeerCard,
    sign: Callable[[], jws.SignedDocument],
) -> HitNoticeAccepted | HitNoticeRefused:
    return await with_retries(
        ctx,
        Tries(),
        lambda: signed_exchange(
            ctx,
            session,
            party,
            card,
            HIT_NOTICE_PATH,
            sign(),
            HIT_NOTICE_RESPONSE_TYP,
            HIT_NOTICE_RESPONSE,
            ctx.cfg.peers.timeout_seconds,
            answer_size.HIT_NOTICE_ANSWER,
        ),
        deadline=_within_timeout(ctx),
        partner=party.node_id,
    )


async def _send_hit_notice(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    conv: Convenant,
    partner: str,
    hits: Sequence[RoundHit],
) -> _NoticeResult:
    first = hits[0]
    try:
        party = _party(conv, partner)
        card = _card(ctx, partner)
        noticed = 0
        for start in range(0, len(hits), MAX_HIT_PROOFS):
            chunk = hits[start : start + MAX_HIT_PROOFS]
            msg = HitNotice(
                requester=ctx.node_id,
                partner=partner,
                convenant_id=conv.id,
                convenant_version=conv.version,
                purpose=first.purpose,
                case_ref=first.case_ref,
                requesting_user=first.asked_by,
                round_trace_id=first.round_trace_id,
                hit_proofs=tuple(jws.b64u_encode(h.hit_proof) for h in chunk),
                nonce=jws.b64u_encode(secrets.token_bytes(16)),
                issued_at=ctx.clock.now(),
            )
            # The partner keeps one notice per registration and round: a second copy of
            # a notice it took puts nothing new in its inbox, so every fast failure is
            # tried again.
            sign = _signer(ctx, HIT_NOTICE_TYP, msg)
            resp = await _notice_with_retries(ctx, session, party, card, sign)
            if isinstance(resp, HitNoticeRefused):
                raise PartnerFailure("refused", resp.reason, resp.reason_detail or "")
            noticed += resp.noticed
        return _NoticeResult(partner, "accepted", None, None, noticed)
    except PartnerFailure as f:
        return _NoticeResult(partner, f.status, f.reason, f.detail, None)
    except TimeoutError:
        return _NoticeResult(partner, "timeout", None, "no answer within the timeout", None)
    except Exception as e:  # a notice never fails the round
        logger.exception("hit_notice_failed", partner=partner)
        return _NoticeResult(partner, "invalid", "internal_error", type(e).__name__, None)


async def send_hit_notices(
    ctx: NodeContext, session: aiohttp.ClientSession, conv: Convenant, hits: Sequence[RoundHit]
) -> None:
    """§14.9: after a round, tell every partner whose rules ask for it of its hits,
    concurrently; one ``hit_notice.sent`` entry per partner. Never raises."""
    by_partner: dict[str, list[RoundHit]] = {}
    for h in hits:
        by_partner.setdefault(h.partner, []).append(h)
    wanted = {
        p: hs
        for p, hs in by_partner.items()
        if hit_notice_required(conv, p, requester=ctx.node_id, purpose=hs[0].purpose).required
    }
    if not wanted:
        return
    try:
        results = await asyncio.gather(
            *(_send_hit_notice(ctx, session, conv, p, hs) for p, hs in wanted.items())
        )
        first = hits[0]
        await ctx.write(
            lambda: ctx.record(
                [
                    log_entries.hit_notice_sent(
                        round_trace_id=first.round_trace_id,
                        convenant_id=conv.id,
                        convenant_version=conv.version,
                        purpose=first.purpose,
                        user=first.asked_by,
                        partner=r.partner,
                        subjects=tuple(dict.fromkeys(h.pseudonym for h in wanted[r.partner])),
                        outcome=r.outcome,
                        reason=r.reason,
                        data={
                            "case_ref": first.case_ref,
                            "hits": len(wanted[r.partner]),
                            "noticed": r.noticed,
                        },
                    )
                    for r in results
                ]
            )
        )
    except Exception:
        logger.exception("hit_notices_failed", round_trace_id=hits[0].round_trace_id)
