"""The partner's side of the detail exchange (docs/protocol.md §14.3, §14.5, §14.7, §14.9).

A detail request is answered in two transactions with the source system in between,
never inside one: the event loop shares one SQLite connection, and a transaction held
across an ``await`` would block every other request. The first records the nonce and
takes every refusal (authentication, convenant, round binding, subject, proof); the
second stores the request with its category states, logs and signs. A crash between
them loses only the nonce: the requester sees no answer and asks again.

Detail texts are read when they are sealed and never stored here or logged: the
database keeps who asked what, and what was decided.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog

from node.errors import (
    AlreadyDecided,
    BadHitProof,
    DuplicateRequest,
    InputError,
    MalformedMessage,
    NoNoticeRule,
    NotFound,
    RateLimited,
    Refusal,
    RoundPurposeMismatch,
    UnknownDetailRequest,
    UnknownRequester,
    UnknownRound,
    UnknownSubject,
)
from node.flows import detail_source as source
from node.flows import log_entries
from node.flows.admin import own_card
from node.flows.answering import (
    Answer,
    admit_peer,
    answer_with_head,
    check_fresh,
    convenant_state,
    refuse_unauthenticated,
)
from node.flows.context import NodeContext
from node.flows.peer_client import PartnerFailure, peer_ssl
from node.flows.publishing import rebuild
from node.policy import detail as policy
from node.policy.convenant import Decision, decide_standing
from node.protocol import jws, oprf
from node.protocol.convenant import Convenant, DetailRule
from node.protocol.detail import (
    DENIED_BY_LIAISON,
    DETAIL_NOTICE_PATH,
    DETAIL_NOTICE_TYP,
    DETAIL_POLL_TYP,
    DETAIL_REQUEST_TYP,
    DETAIL_RESPONSE_TYP,
    HIT_NOTICE_RESPONSE,
    HIT_NOTICE_RESPONSE_TYP,
    HIT_NOTICE_TYP,
    HIT_PROOF_BYTES,
    LIAISON_APPROVED,
    LIAISON_DENIED,
    NO_DETAIL_ON_RECORD,
    DetailAnswered,
    DetailEntries,
    DetailNotice,
    DetailPayload,
    DetailPoll,
    DetailRefused,
    DetailRequest,
    HitNotice,
    HitNoticeRefused,
    seal,
)
from node.protocol.models import parse_model, rfc3339
from node.protocol.peer_card import PeerCard
from node.protocol.tag_set import TAG_BYTES
from node.store import details as store
from node.store import log, oprf_epochs, registry, tag_sets
from node.store.db import flush_deleted, tx
from node.store.log_kinds import LogKind
from node.tls import PeerTransport

logger = structlog.get_logger("vhnode.details")

# Rule names of the steps before §7.4, as logged (§14.3).
ROUND_BINDING = "round-binding"
SUBJECT_KNOWN = "subject-known"
HIT_PROOF_VALID = "hit-proof"
UNIQUE_TRACE = "unique-trace-id"
NOTICE_RULE = "notify-hit"
RATE_LIMIT = "rate-limit"


@dataclass(frozen=True)
class Subject:
    """The partner's own view of the person a hit proof names."""

    subject_key: str
    pseudonym: str
    refs: tuple[str, ...]


# --- shared steps -----------------------------------------------------------------------


def _round_binding(
    ctx: NodeContext,
    round_trace_id: str,
    requester: str,
    convenant_id: str,
    purpose: str,
    now: datetime,
) -> Refusal | None:
    """§14.3 step 4: we evaluated for this requester, under this convenant, recently, and
    for the same purpose: detail serves the purpose the round was asked for, no other
    (purpose limitation, AVG art. 5(1)(b))."""
    oldest = rfc3339(now - timedelta(hours=ctx.cfg.details.hit_validity_hours))
    rows = ctx.conn.execute(
        "SELECT body FROM log_entries WHERE trace_id = ? AND kind = ? "
        "AND counterparty = ? AND convenant_id = ? AND time >= ?",
        (round_trace_id, LogKind.BEKENDHEID_EVALUATED.value, requester, convenant_id, oldest),
    ).fetchall()
    if not rows:
        return UnknownRound(
            f"no bekendheid round {round_trace_id} of {requester} under {convenant_id} "
            f"answered here in the last {ctx.cfg.details.hit_validity_hours:g} hours"
        )
    logged = {json.loads(r[0]).get("purpose") for r in rows}
    if purpose not in logged:
        return RoundPurposeMismatch(
            f"round {round_trace_id} was asked under purpose "
            f"{', '.join(sorted(str(p) for p in logged))}, not {purpose}"
        )
    return None


def _resolve(ctx: NodeContext, conv: Convenant, hit_proof: str) -> Subject | Refusal:
    """§14.3 steps 5–6: the proof's tag is a member, in scope, and the proof is ours."""
    try:
        proof = jws.b64u_decode(hit_proof)
    except MalformedMessage:
        return BadHitProof("the hit proof is not base64url")
    if len(proof) != HIT_PROOF_BYTES:
        return BadHitProof(f"a hit proof is {HIT_PROOF_BYTES} bytes")
    tag = proof[:TAG_BYTES]
    current = oprf_epochs.current(ctx.conn, conv.id)
    epoch = current.epoch
    key = tag_sets.key_of(ctx.conn, current.live_set, tag)
    if key is None and not tag_sets.index_complete(ctx.conn, current.live_set):
        # A database from before the tag index: complete it once, then look again.
        rebuild(ctx, conv)
        key = tag_sets.key_of(ctx.conn, current.live_set, tag)
    if key is None:
        # A proof from a round just before the last key change: honoured while the
        # previous epoch's overlap lasts (§6.1.1), checked under that epoch's key.
        key = oprf_epochs.previous_key_of(ctx.conn, conv.id, tag, ctx.clock.now())
        if key is not None:
            epoch -= 1
    party = conv.party(ctx.node_id)
    themes = frozenset(party.scope_themes) if party else frozenset()
    refs = tuple(
        s.ref
        for s in (registry.refs_with_key(ctx.conn, key) if key is not None else ())
        if not themes.isdisjoint(s.themes)
    )
    if key is None or not refs:
        return UnknownSubject("the hit proof's tag is not in this node's tag set")
    sk, _ = ctx.oprf_key(conv.id, epoch)
    expected = oprf.evaluate(sk, [key.encode()])[0]
    if not hmac.compare_digest(expected, proof):
        return BadHitProof("the hit proof is not this node's OPRF output for the subject")
    return Subject(key, log.pseudonym(ctx.keys.pseudonym_key(), key), refs)


def _recipient_key(ctx: NodeContext, conv: Convenant, requester: str) -> bytes | Refusal:
    """§14.4: the requester's X25519 key from its card, as the convenant names it."""
    if requester == ctx.node_id:
        card = own_card(ctx)[0]
    else:
        peer = ctx.trust().peers_by_id.get(requester)
        if peer is None:
            return UnknownRequester(f"no peer card for {requester}")
        card = peer.card
    party = conv.party(requester)
    if party is None or party.encryption_key_fingerprint != card.encryption_fingerprint:
        return UnknownRequester(
            f"the encryption key on {requester}'s card is not the one the convenant names"
        )
    return card.encryption_key_bytes


def _conv_of(ctx: NodeContext, convenant_id: str, version: int) -> Convenant | None:
    inst = ctx.trust().version(convenant_id, version)
    return inst.convenant if inst else None


def _state_from(d: policy.CategoryDecision, now: datetime) -> store.CategoryState:
    if d.outcome == "deny":
        detail = d.refusal.detail[:500] if d.refusal else None
        return store.CategoryState(d.category, "denied", d.rule, d.reason, detail)
    if d.outcome == "needs_approval":
        return store.CategoryState(d.category, "pending", d.rule)
    return _released(d.category, d.rule, d.detail_rule, now)


def _released(
    category: str, rule: str, detail_rule: DetailRule | None, now: datetime
) -> store.CategoryState:
    if detail_rule is None:  # decide_category allows only with a rule in hand
        raise AssertionError("released without a detail rule")
    return store.CategoryState(
        category,
        "delivered",
        rule,
        retain_until=rfc3339(policy.retention_deadline(detail_rule, now)),
        recipient_roles=tuple(detail_rule.recipient_roles),
    )


def _texts_on_record(ctx: NodeContext, refs: Sequence[str]) -> frozenset[str]:
    """The categories with a stored text for at least one of ``refs``."""
    return frozenset(c for ref in refs for c in registry.details(ctx.conn, ref))


def _may_have_text(ctx: NodeContext, category: str, on_record: frozenset[str]) -> bool:
    """A text may exist: one is stored, or the source system may have one. The source is
    not asked before a liaison approved (docs/source-system.md), so with a source system
    configured only the fetch after approval can tell."""
    return category in on_record or ctx.cfg.details.source_url is not None


def _nothing_to_approve(state: store.CategoryState, detail: str) -> store.CategoryState:
    """A category the liaison is not asked about, or whose approval delivers nothing:
    no text of it is on record (issue 9 item 11)."""
    return store.CategoryState(
        state.category,
        "unavailable",
        state.rule,
        NO_DETAIL_ON_RECORD,
        detail,
        decided_by=state.decided_by,
        decided_at=state.decided_at,
    )


async def _fetch(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    refs: Sequence[str],
    categories: Sequence[str],
    *,
    purpose: str,
    requester: str,
    trace_id: str,
) -> dict[str, list[str] | tuple[str, str]]:
    """§14.10: per category the texts of ``refs`` in ref order, or (reason, detail).

    Stored texts first; the source system only for pairs without one, all-or-nothing.
    """
    stored = await ctx.read(lambda: {ref: registry.details(ctx.conn, ref) for ref in refs})
    missing = [c for c in categories if any(c not in stored[r] for r in refs)]
    answer = await source.ask_source(
        ctx.cfg.details,
        session,
        refs,
        missing,
        purpose=purpose,
        requester=requester,
        trace_id=trace_id,
    )
    out: dict[str, list[str] | tuple[str, str]] = {}
    for c in categories:
        texts = [stored[r][c] if c in stored[r] else answer.texts.get((r, c)) for r in refs]
        found = [t for t in texts if t]
        if answer.failure is not None and c in missing and len(found) < len(refs):
            out[c] = (answer.failure, answer.detail or "the source system failed")
        elif not found:
            out[c] = (NO_DETAIL_ON_RECORD, "no detail of this category on record")
        else:
            out[c] = found
    return out


def _seal_delivered(
    trace_id: str,
    partner: str,
    requester: str,
    states: list[store.CategoryState],
    texts: dict[str, list[str] | tuple[str, str]],
    recipient_key: bytes,
) -> tuple[list[store.CategoryState], str | None]:
    """Seal every delivered category that has texts; one without becomes unavailable."""
    out: list[store.CategoryState] = []
    entries: list[DetailEntries] = []
    for state in states:
        got = texts.get(state.category)
        if state.status == "delivered" and isinstance(got, tuple):
            reason, detail = got
            out.append(
                store.CategoryState(state.category, "unavailable", state.rule, reason, detail)
            )
            continue
        if state.status == "delivered" and got:
            entries.append(DetailEntries(category=state.category, entries=tuple(got)))
        out.append(state)
    if not entries:
        return out, None
    payload = DetailPayload(
        trace_id=trace_id, partner=partner, requester=requester, details=tuple(entries)
    )
    return out, seal(payload, recipient_key)


def _answer_json(s: store.CategoryState) -> dict[str, Any]:
    return {
        "category": s.category,
        "status": s.status,
        "rule": s.rule,
        "reason": s.reason,
        "reason_detail": s.reason_detail,
        "retain_until": s.retain_until,
        "recipient_roles": list(s.recipient_roles) if s.recipient_roles else None,
    }


def _category_entries(
    row: store.DetailRequestRow, states: Sequence[store.CategoryState], sealed_now: set[str]
) -> list[log.LogEntry]:
    out = []
    for s in states:
        if s.status == "delivered" and s.category not in sealed_now:
            continue  # released but not sent in this answer: nothing left the node
        data: dict[str, Any] = {"category": s.category, "rule": s.rule}
        if s.status == "delivered":
            data["retain_until"] = s.retain_until
        out.append(
            log_entries.detail_category(
                status=s.status,
                trace_id=row.trace_id,
                convenant_id=row.convenant_id,
                convenant_version=row.convenant_version,
                purpose=row.purpose,
                actor=s.decided_by or row.requesting_user,
                requester=row.requester,
                subject=row.subject_pseudonym,
                reason=s.reason,
                data=data,
            )
        )
    return out


def _standing(
    ctx: NodeContext, convenant_id: str, version: int, requester: str, now: datetime
) -> Decision:
    """§14.3 step 2: the convenant version is current and in force, both sides parties."""
    return decide_standing(
        convenant_state(ctx, convenant_id, version),
        convenant_id,
        version,
        requester,
        ctx.node_id,
        ctx.trust().party_keys,
        now,
    )


def _admit(
    ctx: NodeContext,
    doc: jws.SignedDocument,
    msg: DetailRequest | HitNotice,
    now: datetime,
) -> tuple[str, Refusal | None]:
    """§14.3 steps 1–2 for a request or hit notice: (the rule that decided, refusal).
    Authentication came first, before the transaction (``admit_peer``)."""
    refusal = check_fresh(ctx, msg.issued_at, msg.requester, msg.nonce, now)
    if refusal is not None:
        return "freshness", refusal
    standing = _standing(ctx, msg.convenant_id, msg.convenant_version, msg.requester, now)
    if standing.refusal is not None:
        return standing.rule, standing.refusal
    return RATE_LIMIT, _rate_limited(ctx, msg.requester, msg.convenant_id)


def _rate_limited(ctx: NodeContext, requester: str, convenant_id: str) -> Refusal | None:
    """After authentication only: a stranger must not drain a party's bucket (§7.3)."""
    if ctx.detail_limiter.allow(requester, convenant_id, 1, ctx.clock.monotonic()):
        return None
    return RateLimited(
        f"more than {ctx.cfg.limits.detail_messages_per_minute:g} detail messages per minute "
        f"for {requester} under {convenant_id}"
    )


def _redecide(
    ctx: NodeContext, row: store.DetailRequestRow, states: list[store.CategoryState], now: datetime
) -> list[store.CategoryState]:
    """Every answer re-runs §14.3 step 2 and §7.4: what no longer passes is denied."""
    standing = _standing(ctx, row.convenant_id, row.convenant_version, row.requester, now)
    conv = _conv_of(ctx, row.convenant_id, row.convenant_version)
    out = []
    for s in states:
        if s.status in ("denied", "unavailable"):
            out.append(s)
            continue
        if not standing.allowed or conv is None:
            detail = standing.refusal.detail[:500] if standing.refusal else None
            out.append(
                store.CategoryState(s.category, "denied", standing.rule, standing.reason, detail)
            )
            continue
        d = policy.decide_category(
            conv,
            ctx.node_id,
            row.requester,
            row.requesting_role,
            row.purpose,
            s.category,
            now,
            ctx.trust().withdrawals_of(row.convenant_id),
        )
        out.append(_state_from(d, now) if d.outcome == "deny" else s)
    return out


def _retained(s: store.CategoryState, now: datetime) -> bool:
    return s.status == "delivered" and s.retain_until is not None and s.retain_until > rfc3339(now)


# --- detail request (§14.3) ---------------------------------------------------------------


@dataclass(frozen=True)
class _Admitted:
    conv: Convenant
    subject: Subject
    recipient_key: bytes
    decisions: list[policy.CategoryDecision]
    on_record: frozenset[str]


async def answer_detail(
    ctx: NodeContext, session: aiohttp.ClientSession, body: bytes, transport: PeerTransport
) -> Answer:
    doc = jws.parse_bytes(body, DETAIL_REQUEST_TYP)
    req = parse_model(DetailRequest, doc.payload)
    now = ctx.clock.now()
    request_hash = jws.b64u_encode(doc.digest())

    def first() -> Answer | _Admitted:  # first transaction: nonce and every refusal
        refusal = admit_peer(
            ctx, doc, req.requester, req.partner, req.issued_at, req.nonce, now, transport
        )
        if refusal is not None:  # §6.6 steps 3–6: nothing is written, only counted
            return _refuse_unauthenticated(
                ctx, "detail", req.requester, req.trace_id, request_hash, refusal, now
            )
        rule, refusal = _admit(ctx, doc, req, now)
        conv = _conv_of(ctx, req.convenant_id, req.convenant_version)
        if refusal is None and store.exists(ctx.conn, req.requester, req.trace_id):
            rule, refusal = UNIQUE_TRACE, DuplicateRequest(f"trace id {req.trace_id} was used")
        if refusal is None:
            rule = ROUND_BINDING
            refusal = _round_binding(
                ctx, req.round_trace_id, req.requester, req.convenant_id, req.purpose, now
            )
        subject: Subject | None = None
        if refusal is None and conv is not None:
            resolved = _resolve(ctx, conv, req.hit_proof)
            if isinstance(resolved, Refusal):
                rule = HIT_PROOF_VALID if isinstance(resolved, BadHitProof) else SUBJECT_KNOWN
                refusal = resolved
            else:
                subject = resolved
        recipient_key: bytes | None = None
        if refusal is None and conv is not None:
            key = _recipient_key(ctx, conv, req.requester)
            if isinstance(key, Refusal):
                rule, refusal = "recipient-key", key
            else:
                recipient_key = key
        if refusal is not None or conv is None or subject is None or recipient_key is None:
            refusal = refusal or UnknownSubject("the subject could not be resolved")
            return _refuse_detail(ctx, req, request_hash, rule, refusal, now)
        try:
            decisions = policy.decide_request(
                conv,
                ctx.node_id,
                req.requester,
                req.requesting_role,
                req.purpose,
                req.categories,
                now,
                ctx.trust().withdrawals_of(conv.id),
            )
        except InputError as e:  # the model already refuses duplicates; kept for safety
            raise MalformedMessage(e.detail) from e
        return _Admitted(
            conv, subject, recipient_key, list(decisions), _texts_on_record(ctx, subject.refs)
        )

    admitted = await ctx.write(first)
    if isinstance(admitted, Answer):
        return admitted
    subject, recipient_key = admitted.subject, admitted.recipient_key
    states = [
        _nothing_to_approve(s, "no detail of this category on record: nothing to approve")
        if s.status == "pending" and not _may_have_text(ctx, s.category, admitted.on_record)
        else s
        for s in (_state_from(d, now) for d in admitted.decisions)
    ]
    released = [s.category for s in states if s.status == "delivered"]
    texts = await _fetch(
        ctx,
        session,
        subject.refs,
        released,
        purpose=req.purpose,
        requester=req.requester,
        trace_id=req.trace_id,
    )
    row = _row(req, subject, now)
    states, sealed = _seal_delivered(
        req.trace_id, ctx.node_id, req.requester, states, texts, recipient_key
    )
    # Every category still delivered here was sealed into this answer.
    states = [s.with_(disclosed_at=rfc3339(now)) if s.status == "delivered" else s for s in states]

    def second() -> Answer:  # second transaction: state, log, signature
        if store.exists(ctx.conn, req.requester, req.trace_id):  # raced with itself
            refusal = DuplicateRequest(f"trace id {req.trace_id} was used")
            return _refuse_detail(ctx, req, request_hash, UNIQUE_TRACE, refusal, now)
        store.insert(ctx.conn, row, states)
        sealed_now = {s.category for s in states if s.status == "delivered"}
        ctx.record(
            [
                _requested_entry(row, req.categories, "answered", None, None),
                *_category_entries(row, states, sealed_now),
            ],
            now,
        )
        return answer_with_head(
            ctx,
            DETAIL_RESPONSE_TYP,
            lambda head: DetailAnswered(
                partner=ctx.node_id,
                requester=req.requester,
                request_hash=request_hash,
                trace_id=req.trace_id,
                issued_at=now,
                outcome="answered",
                categories=tuple(_answer_json(s) for s in states),
                sealed=sealed,
                tree_head=head,
            ).wire(),
            None,
        )

    return await ctx.write(second)


def _requested_entry(
    row: store.DetailRequestRow,
    categories: Sequence[str],
    outcome: str,
    reason: str | None,
    rule: str | None,
) -> log.LogEntry:
    data: dict[str, Any] = {
        "case_ref": row.case_ref,
        "round_trace_id": row.round_trace_id,
        "categories": list(categories),
        "requesting_role": row.requesting_role,
    }
    if rule is not None:
        data["rule"] = rule
    return log_entries.detail_requested(
        trace_id=row.trace_id,
        convenant_id=row.convenant_id,
        convenant_version=row.convenant_version,
        purpose=row.purpose,
        requesting_user=row.requesting_user,
        requester=row.requester,
        subjects=(row.subject_pseudonym,) if row.subject_pseudonym else (),
        outcome=outcome,
        reason=reason,
        data=data,
    )


def _row(req: DetailRequest, subject: Subject | None, now: datetime) -> store.DetailRequestRow:
    """The request as stored and logged; a refused one has no resolved subject."""
    return store.DetailRequestRow(
        req.requester,
        req.trace_id,
        req.convenant_id,
        req.convenant_version,
        req.purpose,
        req.case_ref,
        req.requesting_user,
        req.requesting_role,
        req.round_trace_id,
        subject.pseudonym if subject else "",
        subject.refs if subject else (),
        rfc3339(now),
    )


def _refuse_detail(
    ctx: NodeContext,
    req: DetailRequest,
    request_hash: str,
    rule: str,
    refusal: Refusal,
    now: datetime,
) -> Answer:
    """A signed refusal of a whole detail request, logged (inside the caller's tx)."""
    row = _row(req, None, now)
    ctx.record([_requested_entry(row, req.categories, "refused", refusal.code, rule)], now)
    return _signed_refusal(ctx, req.requester, req.trace_id, request_hash, refusal, now)


def _refuse_unauthenticated(
    ctx: NodeContext,
    message: str,
    requester: str,
    trace_id: str,
    request_hash: str,
    refusal: Refusal,
    now: datetime,
) -> Answer:
    fields = {
        "partner": ctx.node_id,
        "requester": requester,
        "request_hash": request_hash,
        "trace_id": trace_id,
        "issued_at": now,
    }
    return refuse_unauthenticated(
        ctx, message, requester, refusal, DETAIL_RESPONSE_TYP, fields, DetailRefused, now
    )


def _signed_refusal(
    ctx: NodeContext,
    requester: str,
    trace_id: str,
    request_hash: str,
    refusal: Refusal,
    now: datetime,
) -> Answer:
    """A refused detail response (§14.3.1), carrying the head after its log entry."""
    return answer_with_head(
        ctx,
        DETAIL_RESPONSE_TYP,
        lambda head: DetailRefused(
            partner=ctx.node_id,
            requester=requester,
            request_hash=request_hash,
            trace_id=trace_id,
            issued_at=now,
            outcome="refused",
            reason=refusal.code,
            reason_detail=refusal.detail[:500],
            tree_head=head,
        ).wire(),
        refusal,
    )


# --- poll (§14.5) -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Polled:
    row: store.DetailRequestRow
    before: list[store.CategoryState]
    states: list[store.CategoryState]
    recipient_key: bytes


async def answer_poll(
    ctx: NodeContext, session: aiohttp.ClientSession, body: bytes, transport: PeerTransport
) -> Answer:
    doc = jws.parse_bytes(body, DETAIL_POLL_TYP)
    poll = parse_model(DetailPoll, doc.payload)
    now = ctx.clock.now()
    request_hash = jws.b64u_encode(doc.digest())

    def first() -> Answer | _Polled:
        refusal = admit_peer(
            ctx, doc, poll.requester, poll.partner, poll.issued_at, poll.nonce, now, transport
        )
        if refusal is not None:  # §6.6 steps 3–6: nothing is written, only counted
            return _refuse_unauthenticated(
                ctx, "detail_poll", poll.requester, poll.trace_id, request_hash, refusal, now
            )
        refusal = check_fresh(ctx, poll.issued_at, poll.requester, poll.nonce, now)
        row = None if refusal else store.get(ctx.conn, poll.requester, poll.trace_id)
        if refusal is None and row is None:
            refusal = UnknownDetailRequest(f"no detail request {poll.trace_id} of {poll.requester}")
        if refusal is None and row is not None:
            refusal = _rate_limited(ctx, poll.requester, row.convenant_id)
        recipient_key: bytes | None = None
        conv = _conv_of(ctx, row.convenant_id, row.convenant_version) if row else None
        if refusal is None and conv is not None:
            key = _recipient_key(ctx, conv, poll.requester)
            if isinstance(key, Refusal):
                refusal = key
            else:
                recipient_key = key
        if refusal is not None or row is None or recipient_key is None:
            refusal = refusal or UnknownDetailRequest("the request's convenant is gone")
            ctx.record(
                [
                    log_entries.detail_polled(
                        trace_id=poll.trace_id,
                        requester=poll.requester,
                        outcome="refused",
                        reason=refusal.code,
                    )
                ],
                now,
            )
            return _signed_refusal(ctx, poll.requester, poll.trace_id, request_hash, refusal, now)
        before = store.categories(ctx.conn, row.requester, row.trace_id)
        return _Polled(row, before, _redecide(ctx, row, before, now), recipient_key)

    polled = await ctx.write(first)
    if isinstance(polled, Answer):
        return polled
    row, before, states = polled.row, polled.before, polled.states
    # Past its retain_until a category is not fetched nor sent again: the recipient has
    # deleted it. Only what is fetched is sealed.
    texts = await _fetch(
        ctx,
        session,
        row.refs,
        [s.category for s in states if _retained(s, now)],
        purpose=row.purpose,
        requester=row.requester,
        trace_id=row.trace_id,
    )
    final, sealed = _seal_delivered(
        row.trace_id, ctx.node_id, row.requester, states, texts, polled.recipient_key
    )
    sealed_now = {
        s.category
        for s in final
        if s.status == "delivered" and isinstance(texts.get(s.category), list)
    }
    was = {s.category: s for s in before}

    def second() -> Answer:
        # A liaison may have decided while the texts were fetched: theirs stands, and this
        # answer reports what it sealed; the next one shows the liaison's decision.
        stored = {c.category: c for c in store.categories(ctx.conn, row.requester, row.trace_id)}
        store.update(
            ctx.conn,
            row.requester,
            row.trace_id,
            [
                kept
                for s in final
                if stored[s.category] == was[s.category]
                and (kept := _to_store(was[s.category], s, sealed_now, now)) is not None
            ],
        )
        changed = [
            s for s in final if s.status == "delivered" or s.status != was[s.category].status
        ]
        ctx.record(
            [
                log_entries.detail_polled(
                    trace_id=row.trace_id,
                    convenant_id=row.convenant_id,
                    convenant_version=row.convenant_version,
                    purpose=row.purpose,
                    requester=row.requester,
                    subjects=(row.subject_pseudonym,),
                    outcome="answered",
                ),
                *_category_entries(row, changed, sealed_now),
            ],
            now,
        )
        answers = [_answer_json(s) for s in final]
        return answer_with_head(
            ctx,
            DETAIL_RESPONSE_TYP,
            lambda head: DetailAnswered(
                partner=ctx.node_id,
                requester=row.requester,
                request_hash=request_hash,
                trace_id=row.trace_id,
                issued_at=now,
                outcome="answered",
                categories=tuple(answers),
                sealed=sealed,
                tree_head=head,
            ).wire(),
            None,
        )

    return await ctx.write(second)


def _to_store(
    was: store.CategoryState, now_state: store.CategoryState, sealed_now: set[str], now: datetime
) -> store.CategoryState | None:
    """What a poll's answer changes in the stored state of one category (None: nothing)."""
    if was.status == "delivered" and now_state.status == "unavailable":
        # A text sent before that cannot be fetched again now is unavailable for this
        # answer only: what was delivered stays delivered (§14.3.1). One never sent — an
        # approval, released before its text was fetched — with no text on record is
        # unavailable for good, so the liaison is not left believing it went out; a
        # source-system failure leaves it to the next poll.
        if was.disclosed_at is None and now_state.reason == NO_DETAIL_ON_RECORD:
            return now_state.with_(decided_by=was.decided_by, decided_at=was.decided_at)
        return None
    if now_state.category in sealed_now and was.disclosed_at is None:
        return now_state.with_(disclosed_at=rfc3339(now))
    return now_state


# --- hit notice (§14.9) ---------------------------------------------------------------------


def _by_registration(
    subjects: Sequence[Subject],
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The subjects grouped so that no registration is in two groups: (refs, pseudonyms)
    per group, each sorted."""
    groups: list[tuple[set[str], set[str]]] = []
    for subj in subjects:
        refs, pseudonyms = set(subj.refs), {subj.pseudonym}
        apart = []
        for g_refs, g_pseudonyms in groups:
            if g_refs & refs:
                refs |= g_refs
                pseudonyms |= g_pseudonyms
            else:
                apart.append((g_refs, g_pseudonyms))
        groups = [*apart, (refs, pseudonyms)]
    return [(tuple(sorted(r)), tuple(sorted(p))) for r, p in groups]


def answer_hit_notice(ctx: NodeContext, body: bytes, transport: PeerTransport) -> Answer:
    doc = jws.parse_bytes(body, HIT_NOTICE_TYP)
    notice = parse_model(HitNotice, doc.payload)
    now = ctx.clock.now()
    refusal = admit_peer(
        ctx, doc, notice.requester, notice.partner, notice.issued_at, notice.nonce, now, transport
    )
    if refusal is not None:
        refused: dict[str, Any] = {
            "partner": ctx.node_id,
            "requester": notice.requester,
            "request_hash": jws.b64u_encode(doc.digest()),
            "issued_at": now,
        }
        return refuse_unauthenticated(
            ctx, "hit_notice", notice.requester, refusal, HIT_NOTICE_RESPONSE_TYP, refused,
            HitNoticeRefused, now,
        )  # fmt: skip
    with tx(ctx.conn):
        rule, refusal = _admit(ctx, doc, notice, now)
        conv = _conv_of(ctx, notice.convenant_id, notice.convenant_version)
        if refusal is None:
            rule = ROUND_BINDING
            refusal = _round_binding(
                ctx,
                notice.round_trace_id,
                notice.requester,
                notice.convenant_id,
                notice.purpose,
                now,
            )
        if (
            refusal is None
            and conv is not None
            and not policy.hit_notice_required(
                conv, ctx.node_id, requester=notice.requester, purpose=notice.purpose
            ).required
        ):
            rule = NOTICE_RULE
            refusal = NoNoticeRule(
                f"no detail rule of {ctx.node_id} for {notice.requester} and purpose "
                f"{notice.purpose!r} asks for hit notices"
            )
        subjects: list[Subject] = []
        if refusal is None and conv is not None:
            for proof in notice.hit_proofs:
                resolved = _resolve(ctx, conv, proof)
                if isinstance(resolved, Refusal):
                    rule = HIT_PROOF_VALID if isinstance(resolved, BadHitProof) else SUBJECT_KNOWN
                    refusal = resolved
                    break
                subjects.append(resolved)
        if refusal is None:
            # One notice per registration per round: a BSN and a name of the same person
            # (two subjects of the round) hitting one registration make one notice.
            seen = store.noticed_refs(ctx.conn, notice.requester, notice.round_trace_id)
            for refs, pseudonyms in _by_registration(subjects):
                new_refs = tuple(r for r in refs if r not in seen)
                if not new_refs:
                    continue
                seen.update(new_refs)
                store.add_hit_notice(
                    ctx.conn,
                    requester=notice.requester,
                    convenant_id=notice.convenant_id,
                    convenant_version=notice.convenant_version,
                    purpose=notice.purpose,
                    case_ref=notice.case_ref,
                    requesting_user=notice.requesting_user,
                    round_trace_id=notice.round_trace_id,
                    subject_pseudonym=" ".join(pseudonyms),
                    refs=new_refs,
                    received_at=now,
                )
        if refusal is not None:
            # A refused notice puts nobody in the inbox: neither its log entry nor its
            # count names the subjects of the proofs that resolved before one failed.
            subjects = []
        data: dict[str, Any] = {"case_ref": notice.case_ref, "noticed": len(subjects)}
        if refusal is not None:
            data["rule"] = rule
        ctx.record(
            [
                log_entries.hit_notice_received(
                    round_trace_id=notice.round_trace_id,
                    convenant_id=notice.convenant_id,
                    convenant_version=notice.convenant_version,
                    purpose=notice.purpose,
                    requesting_user=notice.requesting_user,
                    requester=notice.requester,
                    subjects=tuple(sorted(s.pseudonym for s in subjects)),
                    reason=refusal.code if refusal else None,
                    data=data,
                )
            ],
            now,
        )
        fields: dict[str, Any] = {
            "partner": ctx.node_id,
            "requester": notice.requester,
            "request_hash": jws.b64u_encode(doc.digest()),
            "issued_at": now,
        }
        if refusal is None:
            fields.update(outcome="accepted", noticed=len(subjects))
        else:
            fields.update(
                outcome="refused", reason=refusal.code, reason_detail=refusal.detail[:500]
            )
        return answer_with_head(
            ctx,
            HIT_NOTICE_RESPONSE_TYP,
            lambda head: HIT_NOTICE_RESPONSE.validate_python({**fields, "tree_head": head}).wire(),
            refusal,
        )


# --- the liaison (§14.7) ------------------------------------------------------------------


def request_json(ctx: NodeContext, row: store.DetailRequestRow) -> dict[str, Any]:
    """A detail request as the liaison sees it (docs/api.md "Liaison")."""
    party = None
    conv = _conv_of(ctx, row.convenant_id, row.convenant_version)
    if conv is not None:
        party = conv.party(row.requester)
    return {
        "requester": row.requester,
        "organisation": party.organisation if party else None,
        "trace_id": row.trace_id,
        "convenant_id": row.convenant_id,
        "convenant_version": row.convenant_version,
        "purpose": row.purpose,
        "case_ref": row.case_ref,
        "requesting_user": row.requesting_user,
        "requesting_role": row.requesting_role,
        "round_trace_id": row.round_trace_id,
        "received_at": row.received_at,
        "refs": list(row.refs),
        "categories": [
            {
                "category": c.category,
                "status": c.status,
                "rule": c.rule,
                "reason": c.reason,
                "reason_detail": c.reason_detail,
                "retain_until": c.retain_until,
                "decided_by": c.decided_by,
                "decided_at": c.decided_at,
                "disclosed_at": c.disclosed_at,
            }
            for c in store.categories(ctx.conn, row.requester, row.trace_id)
        ],
    }


def one_request(ctx: NodeContext, requester: str, trace_id: str) -> dict[str, Any]:
    """One detail request as the liaison sees it, decided or not: what each category
    became, and whether its text went out (``disclosed_at``)."""
    row = store.get(ctx.conn, requester, trace_id)
    if row is None:
        raise UnknownDetailRequest(f"no detail request {trace_id} of {requester}")
    return request_json(ctx, row)


MAX_NOTICE_PAGE = 500


def inbox(
    ctx: NodeContext,
    where: store.NoticeFilter | None = None,
    *,
    limit: int = 50,
    before: int | None = None,
) -> dict[str, Any]:
    """Pending detail requests and one page of hit notices for the liaison (docs/api.md
    "GET /api/v1/liaison/inbox"); ``where`` filters both (its ``state``, ``round`` and
    ``since`` the notices only)."""
    where = where or store.NoticeFilter()
    if not 1 <= limit <= MAX_NOTICE_PAGE:
        raise InputError(f"limit must be 1 to {MAX_NOTICE_PAGE}")
    # One more than the page: whether a next page exists, without a second query.
    notices, total = store.hit_notices(ctx.conn, where, limit=limit + 1, before=before)
    more = len(notices) > limit
    notices = notices[:limit]
    for n in notices:
        conv = _conv_of(ctx, str(n["convenant_id"]), int(str(n["convenant_version"])))
        party = conv.party(str(n["requester"])) if conv else None
        n["organisation"] = party.organisation if party else None
    requests = [
        r
        for r in store.pending(ctx.conn)
        if where.requester in (None, r.requester)
        and where.convenant_id in (None, r.convenant_id)
        and where.case_ref in (None, r.case_ref)
    ]
    return {
        "requests": [request_json(ctx, r) for r in requests],
        "hit_notices": notices,
        "hit_notices_total": total,
        "next_before": int(str(notices[-1]["id"])) if more else None,
    }


def acknowledge_notices(
    ctx: NodeContext, user: str, *, ids: Sequence[int] | None, through: int | None
) -> dict[str, Any]:
    """A liaison marks hit notices read: the ``ids`` named, or every open one up to id
    ``through``. Acknowledged notices leave the inbox's default view; they are kept, and
    purged, like the others. Not logged: it changes what the liaison is shown, not what
    was processed or shared."""
    if (ids is None) == (through is None):
        raise InputError("name the notices: ids, or through (every open one up to that id)")
    if ids is not None and len(set(ids)) != len(ids):
        raise InputError("a notice is named twice")
    with tx(ctx.conn):
        try:
            fresh, already = store.acknowledge_notices(
                ctx.conn, list(ids) if ids is not None else None, through, user,
                rfc3339(ctx.clock.now()),
            )  # fmt: skip
        except KeyError as e:
            raise NotFound(f"no hit notice {e.args[0]}") from None
    return {"acknowledged": fresh, "already_acknowledged": already}


async def decide_pending(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    requester: str,
    trace_id: str,
    user: str,
    *,
    approve: bool,
    categories: Sequence[str] | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Approve or deny pending categories (all when ``categories`` is None).

    All or nothing: a category that is not pending (decided already, also by a second
    approval) or not asked raises and changes nothing. An approval re-runs §7.4 first;
    a category that no longer passes is denied by that rule instead.
    """
    if not approve and not (reason and reason.strip()):
        raise InputError("a denial needs a reason")
    if reason is not None and len(reason) > 500:
        raise InputError("a reason is at most 500 characters")
    now = ctx.clock.now()

    def decide() -> dict[str, Any]:
        row = store.get(ctx.conn, requester, trace_id)
        if row is None:
            raise UnknownDetailRequest(f"no detail request {trace_id} of {requester}")
        states = store.categories(ctx.conn, requester, trace_id)
        by_category = {s.category: s for s in states}
        wanted = (
            list(categories)
            if categories
            else [s.category for s in states if s.status == "pending"]
        )
        if len(set(wanted)) != len(wanted):
            raise InputError("a category is named twice")
        for c in wanted:
            if c not in by_category:
                raise InputError(f"{c!r} was not asked in request {trace_id}")
            if by_category[c].status != "pending":
                raise AlreadyDecided(f"{c!r} is {by_category[c].status} already")
        if not wanted:
            raise AlreadyDecided(f"request {trace_id} has no pending category")
        stamp = rfc3339(now)
        decided: list[store.CategoryState] = []
        if approve:
            redecided = {s.category: s for s in _redecide(ctx, row, states, now)}
            conv = _conv_of(ctx, row.convenant_id, row.convenant_version)
            # The registration may have lost its text since the request: an approval then
            # delivers nothing, and the liaison is told so rather than "delivered".
            on_record = _texts_on_record(ctx, row.refs)
            for c in wanted:
                s = redecided[c]
                if s.status == "pending" and conv is not None:
                    s = _released(c, LIAISON_APPROVED, conv.detail_rule(ctx.node_id, c), now)
                    if not _may_have_text(ctx, c, on_record):
                        s = _nothing_to_approve(s, "no detail of this category on record")
                decided.append(s.with_(decided_by=user, decided_at=stamp))
        else:
            for c in wanted:
                decided.append(
                    store.CategoryState(
                        c,
                        "denied",
                        LIAISON_DENIED,
                        DENIED_BY_LIAISON,
                        (reason or "").strip()[:500],
                        decided_by=user,
                        decided_at=stamp,
                    )
                )
        store.update(ctx.conn, requester, trace_id, decided)
        entries: list[log.LogEntry] = []
        for s in decided:
            approved = s.status in ("delivered", "unavailable")
            entries.append(
                log_entries.detail_decided(
                    approved=approved,
                    trace_id=trace_id,
                    convenant_id=row.convenant_id,
                    convenant_version=row.convenant_version,
                    purpose=row.purpose,
                    liaison=user,
                    requester=requester,
                    subject=row.subject_pseudonym,
                    reason=None if approved else s.reason,
                    category=s.category,
                    rule=s.rule,
                )
            )
            if s.status == "unavailable":  # approved, but there is nothing to send
                entries += _category_entries(row, [s], set())
        ctx.record(entries, now)
        return request_json(ctx, row)

    answer = await ctx.write(decide)
    await send_decision_notice(ctx, session, requester, trace_id)
    return answer


async def send_decision_notice(
    ctx: NodeContext, session: aiohttp.ClientSession, requester: str, trace_id: str
) -> bool:
    """§14.6: tell the requester to poll; best effort, logged either way."""
    card: PeerCard | None = None
    if requester == ctx.node_id:
        card = own_card(ctx)[0]
    else:
        peer = ctx.trust().peers_by_id.get(requester)
        card = peer.card if peer and peer.revoked_at is None else None
    sent = False
    if card is not None:
        notice = DetailNotice(
            partner=ctx.node_id,
            requester=requester,
            trace_id=trace_id,
            nonce=jws.b64u_encode(secrets.token_bytes(16)),
            issued_at=ctx.clock.now(),
        )
        doc = jws.sign(DETAIL_NOTICE_TYP, notice.wire(), ctx.keys.signing)
        try:
            context = await peer_ssl(ctx, card)
            async with session.post(
                card.endpoint_url + DETAIL_NOTICE_PATH,
                json=doc.to_json(),
                timeout=aiohttp.ClientTimeout(total=ctx.cfg.peers.timeout_seconds),
                ssl=context,
            ) as resp:
                sent = resp.status == 202
        except PartnerFailure as e:  # plain HTTP not allowed: the requester polls itself
            logger.info("decision_notice_failed", requester=requester, error=e.reason)
        except (aiohttp.ClientError, TimeoutError) as e:
            logger.info("decision_notice_failed", requester=requester, error=type(e).__name__)
    entry = log_entries.detail_notice_sent(trace_id=trace_id, requester=requester, sent=sent)
    await ctx.write(lambda: ctx.record([entry]))
    return sent


# --- keeping records no longer than needed ---------------------------------------------------


def purge_records(ctx: NodeContext) -> tuple[int, int]:
    """Delete detail requests and hit notices older than ``details.record_days`` (a
    request whose delivered detail the requester may still hold is kept until its
    ``retain_until``); the log keeps its entries. Returns (requests, hit notices)."""
    now = ctx.clock.now()
    cutoff = rfc3339(now - timedelta(days=ctx.cfg.details.record_days))
    with tx(ctx.conn):
        requests, notices = store.purge_records(ctx.conn, cutoff, rfc3339(now))
        if requests or notices:
            ctx.record(
                [log_entries.detail_records_purged(requests=requests, hit_notices=notices)],
                now,
            )
    if requests or notices:
        flush_deleted(ctx.conn)
    return requests, notices
