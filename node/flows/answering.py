"""The answering side: evaluation, tag-set and log-consistency requests (§6.6, §6.7, §9.4).

Each handler follows the spec's numbered steps. Anything that cannot be parsed raises
(and becomes problem+json). A request that fails §6.6 steps 3–6 (not signed by a known,
valid key of the claimed requester, not for us, or not fresh) is refused before anything
is written: a signed refusal, counted in aggregate (``flows.unauthenticated``), never
logged on its own. Every other decision, including refusals, is answered with a signed
response and logged in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from node.errors import (
    BadRequestSignature,
    BadSignature,
    InvalidGroupElement,
    MalformedMessage,
    Misaddressed,
    ProtocolError,
    RateLimited,
    Refusal,
    ReplayedRequest,
    RequesterLogForked,
    RequesterTreeHeadBad,
    RevokedRequester,
    StaleRequest,
    TlsMismatch,
    TooManySubjects,
    UnknownRequester,
    UnusableElements,
)
from node.flows import log_entries, unauthenticated
from node.flows.admin import own_card
from node.flows.context import NodeContext
from node.policy.convenant import (
    ConvenantState,
    decide_evaluation,
    decide_tag_set,
    in_force,
)
from node.protocol import jws, oprf
from node.protocol.bekendheid import (
    EVALUATE_REQUEST_TYP,
    EVALUATE_RESPONSE,
    EVALUATE_RESPONSE_TYP,
    TAG_SET_REQUEST_TYP,
    TAG_SET_RESPONSE,
    TAG_SET_RESPONSE_TYP,
    EvaluateRefused,
    EvaluateRequest,
    PartnerAnswer,
    TagSetHead,
    TagSetRefused,
    TagSetRequest,
)
from node.protocol.consistency import (
    CONSISTENCY_REQUEST_TYP,
    CONSISTENCY_RESPONSE,
    CONSISTENCY_RESPONSE_TYP,
    ConsistencyRefused,
    ConsistencyRequest,
)
from node.protocol.models import parse_model, rfc3339
from node.protocol.peer_card import not_yet_valid
from node.protocol.tag_set import pack
from node.protocol.tree_head import SignedTreeHead, check_head
from node.store import log, nonces, oprf_epochs, peer_heads, peers, tag_sets
from node.store.db import tx
from node.tls import PeerTransport, transport_refusal


@dataclass(frozen=True)
class Answer:
    """A signed answer to a peer request, and the refusal it carries if any (from which
    the HTTP layer decides its status, node/http/statuses.py)."""

    document: jws.SignedDocument
    refusal: Refusal | None = None
    unauthenticated: bool = False
    """Refused at §6.6 steps 3–6: the HTTP layer counts it against the source address."""


def authenticate_peer(
    ctx: NodeContext,
    doc: jws.SignedDocument,
    claimed: str,
    partner: str,
    now: datetime,
    transport: PeerTransport,
) -> Refusal | None:
    """§6.6 steps 3–5: a known, valid peer signed this, over the TLS session its card
    names (step 3a), addressed to us."""
    if len(doc.signatures) != 1:
        raise MalformedMessage("a request carries exactly one signature")
    kid = doc.signatures[0].kid
    if kid == ctx.keys.signing_fingerprint:
        # The node asks its own registry through the same protocol as any partner.
        card, card_doc = own_card(ctx)
        peer: peers.Peer | None = peers.Peer(card, card_doc, None)
    else:
        peer = ctx.trust().peers_by_fingerprint.get(kid)
    if peer is None:
        return UnknownRequester("no peer card for the signing key")
    if peer.node_id != claimed:
        return UnknownRequester("signing key belongs to another node than the requester named")
    if peer.revoked_at is not None:
        return RevokedRequester(f"peer card of {claimed} is revoked")
    early = not_yet_valid(peer.card, now)
    if early is not None:
        return early
    if not peer.card.valid_at(now):
        return RevokedRequester(
            f"peer card of {claimed} expired at {rfc3339(peer.card.valid_until)}"
        )
    try:
        doc.verify(peer.card.signing_fingerprint, peer.card.signing_key_bytes)
    except BadSignature as e:
        return BadRequestSignature(e.detail)
    # Step 3a, after the signature: only a verified signer's card says which TLS key its
    # requests come with; before, a forged kid could make us name another node's key.
    allow_plain = ctx.cfg.tls is None or ctx.cfg.tls.allow_plain_http
    mismatch = transport_refusal(peer.card, transport, allow_plain)
    if mismatch is not None:
        return TlsMismatch(mismatch)
    if partner != ctx.node_id:
        return Misaddressed(f"request is addressed to {partner}, not to {ctx.node_id}")
    return None


def check_fresh(
    ctx: NodeContext, issued_at: datetime, requester: str, nonce: str, now: datetime
) -> Refusal | None:
    """§6.6 step 6: timestamp within the skew window and nonce never seen."""
    skew = ctx.cfg.limits.clock_skew_seconds
    if abs((now - issued_at).total_seconds()) > skew:
        return StaleRequest(f"issued_at is more than {skew} s from this node's clock")
    try:
        nonces.check_and_record(ctx.conn, requester, nonce, now.timestamp(), skew)
    except Refusal as e:
        return e
    return None


def admit_peer(
    ctx: NodeContext,
    doc: jws.SignedDocument,
    claimed: str,
    partner: str,
    issued_at: datetime,
    nonce: str,
    now: datetime,
    transport: PeerTransport,
) -> Refusal | None:
    """§6.6 steps 3–6 before any write: signed by a known, valid key of ``claimed``, over
    its card's TLS session, addressed to us, within the clock skew, nonce not seen. Reads
    only; the nonce is recorded later, in the transaction that logs the answer
    (``check_fresh``)."""
    refusal = authenticate_peer(ctx, doc, claimed, partner, now, transport)
    if refusal is not None:
        return refusal
    skew = ctx.cfg.limits.clock_skew_seconds
    if abs((now - issued_at).total_seconds()) > skew:
        return StaleRequest(f"issued_at is more than {skew} s from this node's clock")
    if nonces.seen(ctx.conn, claimed, nonce, now.timestamp(), skew):
        return ReplayedRequest("this nonce was already used")
    return None


def refuse_unauthenticated(
    ctx: NodeContext,
    message: str,
    claimed: str,
    refusal: Refusal,
    typ: str,
    fields: dict[str, Any],
    model: type[PartnerAnswer],
    now: datetime,
) -> Answer:
    """A signed refusal of a request that failed §6.6 steps 3–6: counted, not logged, and
    without a tree head — its size would tell anyone who reaches the port how much this
    node does (§9.3: heads go to authenticated peers only)."""
    unauthenticated.count(ctx, message, claimed, refusal, now)
    refused: dict[str, Any] = {
        **fields,
        "outcome": "refused",
        "reason": refusal.code,
        "reason_detail": refusal.detail[:500],
        "tree_head": None,
    }
    payload = model(**refused).wire()
    return Answer(jws.sign(typ, payload, ctx.keys.signing), refusal, unauthenticated=True)


def witness_requester(
    ctx: NodeContext,
    doc: jws.SignedDocument,
    requester: str,
    tree_head: SignedTreeHead | None,
    now: datetime,
) -> Refusal | None:
    """§9.5: keep the requester's signed tree head its request carries, as the heads of
    answers are kept (§9.3), so that a node that only asks has witnesses of its log too.

    Inside the answer's transaction, and only for a request that passed §6.6 steps 3–6:
    nothing an unauthenticated sender chose is stored. A head that is not the requester's
    refuses the request (``bad_tree_head``): answering it would leave a record of the
    exchange with no witness of the requester's side of it. A second root for a size we
    hold refuses it ``forked_log``; both signed heads are kept as evidence and the fork is
    logged. A request without a head (an earlier revision's requester) keeps nothing."""
    if tree_head is None:
        return None
    kid = doc.signatures[0].kid  # one signature, checked at step 3
    if kid == ctx.keys.signing_fingerprint:
        key = ctx.keys.signing_public
    else:
        key = ctx.trust().peers_by_fingerprint[kid].card.signing_key_bytes
    try:
        head = check_head(tree_head, requester, key)
    except ProtocolError as e:
        return RequesterTreeHeadBad(e.detail)
    if requester == ctx.node_id:
        return None  # our own head, asking ourselves: our log is here, not a peer's
    held_before = peer_heads.latest(ctx.conn, requester)
    seen = peer_heads.remember(ctx.conn, requester, head, now)
    if seen == "conflict":
        ctx.record([log_entries.peer_log_forked(partner=requester, tree_size=head.tree_size)], now)
        return RequesterLogForked(
            f"{requester} signed another root for tree size {head.tree_size} before; "
            "both signed heads are kept"
        )
    if seen == "restored" and head.restore is not None:
        # §9.7: a requester restored from a backup, with its signed statement: recorded,
        # and the request answered.
        held_size = 0 if held_before is None else held_before[0]
        ctx.record(
            [
                log_entries.peer_log_restored(
                    partner=requester, statement=head.restore, held_size=held_size
                )
            ],
            now,
        )
    return None


def convenant_state(ctx: NodeContext, convenant_id: str, version: int) -> ConvenantState:
    trusted = ctx.trust()
    asked = trusted.version(convenant_id, version)
    now = ctx.clock.now()
    newest = next(
        (
            inst
            for inst in trusted.versions(convenant_id)
            if in_force(inst.convenant, inst.document, trusted.party_keys, now) is None
        ),
        None,
    )
    return ConvenantState(
        asked=asked.convenant if asked else None,
        asked_document=asked.document if asked else None,
        newest_in_force=newest.convenant.version if newest else None,
        withdrawals=trusted.withdrawals_of(convenant_id),
    )


def sign_answer(
    ctx: NodeContext, typ: str, payload: dict[str, Any], refusal: Refusal | None
) -> Answer:
    return Answer(jws.sign(typ, payload, ctx.keys.signing), refusal)


def head_json(head: log.TreeHead) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(head.jws)
    return parsed


def answer_with_head(
    ctx: NodeContext,
    typ: str,
    build: Callable[[dict[str, Any]], dict[str, Any]],
    refusal: Refusal | None,
) -> Answer:
    """§6.6 step 11: the signed answer carries the tree head that covers its own log
    entries — the head its commit group is sealed under, so the answer leaves only once
    they are durable. ``build(tree_head)`` returns the payload.

    Typed as an Answer: inside ``ctx.write`` the value is finished after the commit, and
    ``ctx.write`` returns the finished Answer (node/store/database.py ``AfterCommit``).
    """
    return ctx.after_commit(  # type: ignore[return-value]
        lambda head: sign_answer(ctx, typ, build(head_json(head)), refusal)
    )


def _head(ctx: NodeContext, epoch: oprf_epochs.Epoch) -> TagSetHead:
    """The current head of a tag set, with the key epoch it is published under (§6.1.1)."""
    h = tag_sets.head(ctx.conn, epoch.live_set)
    _, pk = ctx.oprf_key(epoch.convenant_id, epoch.epoch)
    return TagSetHead(
        convenant_id=epoch.convenant_id,
        version=h.version,
        count=h.count,
        digest=jws.b64u_encode(h.digest),
        oprf_public_key=jws.b64u_encode(pk),
        oprf_epoch=epoch.epoch,
        oprf_epoch_ends_at=epoch.ends_at(ctx.cfg.oprf.epoch_days),
        oprf_overlap_hours=ctx.cfg.oprf.overlap_hours,
    )


def answer_evaluate(ctx: NodeContext, body: bytes, transport: PeerTransport) -> Answer:
    """§6.6: verify, decide, evaluate, sign, log — one transaction."""
    doc = jws.parse_bytes(body, EVALUATE_REQUEST_TYP)  # step 1
    req = parse_model(EvaluateRequest, doc.payload)  # step 2
    now = ctx.clock.now()
    request_hash = jws.b64u_encode(doc.digest())
    fields: dict[str, Any] = {
        "partner": ctx.node_id,
        "requester": req.requester,
        "request_hash": request_hash,
        "trace_id": req.trace_id,
        "issued_at": now,
    }
    # Steps 3–6 before any write: an unauthenticated request is only counted.
    refusal = admit_peer(
        ctx, doc, req.requester, req.partner, req.issued_at, req.nonce, now, transport
    )
    if refusal is not None:
        return refuse_unauthenticated(
            ctx, "evaluate", req.requester, refusal, EVALUATE_RESPONSE_TYP, fields,
            EvaluateRefused, now,
        )  # fmt: skip
    with tx(ctx.conn):
        # The rule that decided, logged with the outcome (§6.6): each step names its own.
        # Only a nonce recorded meanwhile (a race) can still refuse at step 6 here.
        rule = "freshness"
        refusal = check_fresh(ctx, req.issued_at, req.requester, req.nonce, now)
        if refusal is None:  # step 6a (§9.5): the requester's head, kept or refused
            refusal = witness_requester(ctx, doc, req.requester, req.tree_head, now)
            if refusal is not None:
                rule = "witness"
        if refusal is None:  # step 7
            decision = decide_evaluation(
                convenant_state(ctx, req.convenant_id, req.convenant_version),
                req.convenant_id,
                req.convenant_version,
                req.requester,
                ctx.node_id,
                req.purpose,
                ctx.trust().party_keys,
                now,
            )
            rule, refusal = decision.rule, decision.refusal
        n = len(req.blinded_elements)
        if refusal is None and n > ctx.cfg.limits.max_subjects_per_request:  # step 8
            rule = "max-subjects"
            refusal = TooManySubjects(
                f"at most {ctx.cfg.limits.max_subjects_per_request} subjects per request"
            )
        blinded = [jws.b64u_decode(e) for e in req.blinded_elements]  # strict since step 2
        if refusal is None:
            # Still step 8, before any token is taken: a request refused here tested no
            # subject against the registry, so it costs none of the bucket (§7.3).
            try:
                for element in blinded:
                    oprf.validate_element(element)
            except InvalidGroupElement as e:
                rule, refusal = "valid-elements", UnusableElements(e.detail)
        if refusal is None and not ctx.limiter.allow(  # step 9
            req.requester, req.convenant_id, n, ctx.clock.monotonic()
        ):
            rule = "rate-limit"
            refusal = RateLimited(
                f"more than {ctx.cfg.limits.evaluations_per_minute:g} evaluations per minute "
                f"for {req.requester} under {req.convenant_id}"
            )
        tag_set_version: int | None = None
        if refusal is None:
            # The key of the epoch the published set is under, read in this transaction:
            # the evaluation and the head it is answered with never straddle a change.
            epoch = oprf_epochs.current(ctx.conn, req.convenant_id)
            sk, pk = ctx.oprf_key(req.convenant_id, epoch.epoch)
            evaluated, proof = oprf.blind_evaluate(sk, pk, blinded)
            head = _head(ctx, epoch)
            tag_set_version = head.version
            fields.update(
                outcome="evaluated",
                evaluated_elements=tuple(jws.b64u_encode(e) for e in evaluated),
                proof=jws.b64u_encode(proof),
                tag_set=head,
            )
        if refusal is not None:
            fields.update(
                outcome="refused", reason=refusal.code, reason_detail=refusal.detail[:500]
            )
        answered: dict[str, Any] = {
            "trace_id": req.trace_id,
            "convenant_id": req.convenant_id,
            "convenant_version": req.convenant_version,
            "purpose": req.purpose,
            "requesting_user": req.requesting_user,
            "requester": req.requester,
            "case_ref": req.case_ref,
            "elements": n,
            "rule": rule,
            "tag_set_version": tag_set_version,
        }
        ctx.record(  # step 10
            [
                log_entries.bekendheid_refused(reason=refusal.code, **answered)
                if refusal
                else log_entries.bekendheid_evaluated(**answered)
            ],
            now,
        )
        # Step 11: the answer carries the tree head that covers its own log entry.
        return answer_with_head(
            ctx,
            EVALUATE_RESPONSE_TYP,
            lambda head: EVALUATE_RESPONSE.validate_python({**fields, "tree_head": head}).wire(),
            refusal,
        )


def answer_tag_set(ctx: NodeContext, body: bytes, transport: PeerTransport) -> Answer:
    """§6.7: a full tag set or a delta, only for a party that may query."""
    doc = jws.parse_bytes(body, TAG_SET_REQUEST_TYP)
    req = parse_model(TagSetRequest, doc.payload)
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
            ctx, "tag_set", req.requester, refusal, TAG_SET_RESPONSE_TYP, fields,
            TagSetRefused, now,
        )  # fmt: skip
    with tx(ctx.conn):
        refusal = check_fresh(ctx, req.issued_at, req.requester, req.nonce, now)
        if refusal is None:  # §9.5
            refusal = witness_requester(ctx, doc, req.requester, req.tree_head, now)
        if refusal is None:
            refusal = decide_tag_set(
                convenant_state(ctx, req.convenant_id, req.convenant_version),
                req.convenant_id,
                req.convenant_version,
                req.requester,
                ctx.node_id,
                ctx.trust().party_keys,
                now,
            ).refusal
        data: dict[str, Any] = {"since_version": req.since_version}
        if refusal is None:
            epoch = oprf_epochs.current(ctx.conn, req.convenant_id)
            head = _head(ctx, epoch)
            # No delta reaches back across a key change: the tags before it are of another
            # key, so a requester holding them gets the whole set (§6.7 step 9).
            delta = (
                tag_sets.delta_since(ctx.conn, epoch.live_set, req.since_version, head.version)
                if req.since_version >= epoch.first_version
                else None
            )
            removed: list[bytes] = []
            if delta is None:
                added, base_version = tag_sets.members(ctx.conn, epoch.live_set), 0
            else:
                (added, removed), base_version = delta, req.since_version
            fields.update(
                outcome="tag_set",
                head=head,
                base_version=base_version,
                added=jws.b64u_encode(pack(added)),
                removed=jws.b64u_encode(pack(removed)),
            )
            data.update(
                version=head.version,
                base_version=base_version,
                added=len(added),
                removed=len(removed),
            )
        else:
            fields.update(
                outcome="refused", reason=refusal.code, reason_detail=refusal.detail[:500]
            )
        ctx.record(
            [
                log_entries.tag_set_refused(
                    convenant_id=req.convenant_id,
                    convenant_version=req.convenant_version,
                    requester=req.requester,
                    reason=refusal.code,
                    data=data,
                )
                if refusal
                else log_entries.tag_set_served(
                    convenant_id=req.convenant_id,
                    convenant_version=req.convenant_version,
                    requester=req.requester,
                    data=data,
                )
            ],
            now,
        )
        return answer_with_head(
            ctx,
            TAG_SET_RESPONSE_TYP,
            lambda head: TAG_SET_RESPONSE.validate_python({**fields, "tree_head": head}).wire(),
            refusal,
        )


def answer_consistency(ctx: NodeContext, body: bytes, transport: PeerTransport) -> Answer:
    """§9.4: a consistency proof from a size the requester holds to our current head.

    Any known, unrevoked peer may ask (it received our heads with our answers); no
    convenant is needed, as the proof reveals only hashes. Refusals are signed and logged.
    """
    doc = jws.parse_bytes(body, CONSISTENCY_REQUEST_TYP)
    req = parse_model(ConsistencyRequest, doc.payload)
    now = ctx.clock.now()
    fields: dict[str, Any] = {
        "partner": ctx.node_id,
        "requester": req.requester,
        "request_hash": jws.b64u_encode(doc.digest()),
        "issued_at": now,
        "from_size": req.from_size,
    }
    refusal = admit_peer(
        ctx, doc, req.requester, req.partner, req.issued_at, req.nonce, now, transport
    )
    if refusal is not None:
        return refuse_unauthenticated(
            ctx, "consistency", req.requester, refusal, CONSISTENCY_RESPONSE_TYP, fields,
            ConsistencyRefused, now,
        )  # fmt: skip
    with tx(ctx.conn):
        refusal = check_fresh(ctx, req.issued_at, req.requester, req.nonce, now)
        if refusal is None:  # §9.5: the checker's head, witnessed by the checked
            refusal = witness_requester(ctx, doc, req.requester, req.tree_head, now)
        if refusal is not None:
            fields.update(
                outcome="refused", reason=refusal.code, reason_detail=refusal.detail[:500]
            )
        # The log's size once this answer's own entry is in: the head sent covers it.
        size = log.size(ctx.conn) + 1
        ctx.record(
            [
                log_entries.log_consistency_refused(
                    requester=req.requester,
                    reason=refusal.code,
                    from_size=req.from_size,
                    to_size=size,
                )
                if refusal
                else log_entries.log_consistency_served(
                    requester=req.requester, from_size=req.from_size, to_size=size
                )
            ],
            now,
        )

        def build(head: dict[str, Any], tree_size: int) -> dict[str, Any]:
            # The proof reaches the head sent: the one this entry's commit group is sealed
            # under (its tree_size ≥ size).
            if refusal is None:
                proof = (
                    log.consistency_proof(ctx.conn, req.from_size, tree_size)
                    if req.from_size <= tree_size
                    else None  # the requester holds more than we have: it will see the cut
                )
                fields.update(
                    outcome="proof",
                    proof=None if proof is None else tuple(jws.b64u_encode(h) for h in proof),
                )
            return CONSISTENCY_RESPONSE.validate_python({**fields, "tree_head": head}).wire()

        return ctx.after_commit(  # type: ignore[return-value]
            lambda h: sign_answer(
                ctx, CONSISTENCY_RESPONSE_TYP, build(head_json(h), h.tree_size), refusal
            )
        )
