"""The asking side of bekendheid: fan out to every provider of a convenant (docs/protocol.md §6.8).

Per partner, in parallel, within the per-partner timeout:

1. blind every subject key afresh (partners never see the same blinded element);
2. sign an evaluate request and POST it;
3. verify the response: signature by the key the convenant names, ``request_hash``,
   addressing; a signed refusal becomes ``refused`` with its reason;
4. verify the DLEQ proof against the OPRF key of the partner's tag-set head, unblind;
5. bring our copy of the partner's tag set to (at least) the head's version — a delta
   when we hold an earlier version, else the full set — and check its digest;
6. a subject is ``hit`` when its tag is in the set, else ``no_hit``.

Any failure is classified into exactly one status; nothing becomes ``no_hit`` unless
the partner signed an evaluation and a tag set that together say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import structlog

from node.errors import (
    InvalidTagSet,
    NotAParty,
    NotAProvider,
    PartyWithdrawn,
    ProtocolError,
)
from node.flows import log_entries
from node.flows.admin import own_card
from node.flows.context import NodeContext
from node.flows.detail_asking import send_hit_notices
from node.flows.metrics import PartnerOutcome
from node.flows.peer_client import PartnerFailure, Tries, signed_exchange, with_retries
from node.flows.standing import current_convenant
from node.protocol import answer_size, jws, oprf
from node.protocol.bekendheid import (
    EVALUATE_REQUEST_TYP,
    EVALUATE_RESPONSE,
    EVALUATE_RESPONSE_TYP,
    TAG_SET_REQUEST_TYP,
    TAG_SET_RESPONSE,
    TAG_SET_RESPONSE_TYP,
    Evaluated,
    EvaluateRefused,
    EvaluateRequest,
    Status,
    TagSetHead,
    TagSetRefused,
    TagSetRequest,
    TagSetServed,
)
from node.protocol.convenant import Convenant, ConvenantParty
from node.protocol.identifiers import SubjectIdentifier, subject_key
from node.protocol.models import rfc3339
from node.protocol.peer_card import PeerCard
from node.protocol.tag_set import tag_from_output, unpack
from node.protocol.tree_head import SignedTreeHead, signed_head
from node.protocol.withdrawal import withdrawn
from node.store import key_pins, log, received, tag_sets

EVALUATE_PATH = "/peer/v1/evaluate"
TAG_SET_PATH = "/peer/v1/tag-set"

logger = structlog.get_logger("vhnode.client")


@dataclass
class PartnerResult:
    partner: str
    organisation: str
    org_type: str
    status: Status  # overall: hit if any subject is a hit
    subjects: list[Status]
    reason: str | None = None
    detail: str | None = None
    tag_set_version: int | None = None
    elapsed_ms: float = 0.0
    # Evaluate requests sent: more than one when the partner failed fast (§6.8 "Retries");
    # 0 when it was not asked.
    tries: int = 0
    # Subject index → the 64-byte OPRF output of a hit: its hit proof (§14.1). Kept for
    # the detail stage only; never in as_json, never logged.
    hit_proofs: dict[int, bytes] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "organisation": self.organisation,
            "org_type": self.org_type,
            "status": self.status,
            "subjects": self.subjects,
            "reason": self.reason,
            "detail": self.detail,
            "tag_set_version": self.tag_set_version,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "tries": self.tries,
        }


@dataclass
class QueryResult:
    trace_id: str
    convenant_id: str
    convenant_version: int
    purpose: str
    case_ref: str
    subject_count: int
    partners: list[PartnerResult] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "convenant_id": self.convenant_id,
            "convenant_version": self.convenant_version,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "subject_count": self.subject_count,
            "partners": [p.as_json() for p in self.partners],
        }


def _now_b64_nonce() -> str:
    return jws.b64u_encode(secrets.token_bytes(16))


@dataclass(frozen=True)
class _Round:
    ctx: NodeContext
    session: aiohttp.ClientSession
    conv: Convenant
    purpose: str
    case_ref: str
    user: str
    trace_id: str
    keys: list[bytes]  # subject keys, UTF-8
    # §9.5: our signed tree head that covers this round's ``bekendheid.round`` entry, sent
    # with every request of the round so that each partner asked witnesses our log.
    tree_head: SignedTreeHead


async def _sync_tag_set(r: _Round, party: ConvenantParty, card: PeerCard, head: TagSetHead) -> int:
    """Step 5: our copy of the partner's tag set at ≥ head.version, digest checked.

    Serialised per partner and convenant: two concurrent rounds must not apply the same
    delta twice on top of each other.
    """
    lock = r.ctx.sync_locks.setdefault((party.node_id, r.conv.id), asyncio.Lock())

    async def run() -> int:
        async with lock:
            return await _sync_tag_set_locked(r, party, card, head)

    # A transfer outlives the round that started it (shielded): cut off at the round's
    # deadline it would start over at the next round and never finish for a large set.
    # Its own bound is the tag-set timeout.
    return await asyncio.shield(r.ctx.spawn(run()))


async def _sync_tag_set_locked(
    r: _Round, party: ConvenantParty, card: PeerCard, head: TagSetHead
) -> int:
    ctx = r.ctx
    held = await ctx.read(lambda: tag_sets.peer_head(ctx.conn, party.node_id, r.conv.id))
    pk, head_digest = head.oprf_public_key, head.digest  # bytes, decoded strictly on parsing
    # Held under another key (an earlier epoch): the whole set is fetched again (§6.1.1).
    if held is not None and held.oprf_public_key == pk and held.version == head.version:
        if held.digest != head_digest:
            raise PartnerFailure(
                "invalid", "invalid_tag_set", "partner signed two digests for one version"
            )
        return held.version
    if held is not None and held.oprf_public_key == pk and held.version > head.version:
        # A concurrent round already synced past this answer's version; we hold that
        # newer set signed by the same partner, so it is at least as current.
        return held.version
    since = held.version if held is not None and held.oprf_public_key == pk else 0

    async def once() -> TagSetServed | TagSetRefused:
        req = TagSetRequest(  # signed afresh for every try: a new nonce, a new issued_at
            requester=ctx.node_id,
            partner=party.node_id,
            convenant_id=r.conv.id,
            convenant_version=r.conv.version,
            since_version=since,
            nonce=_now_b64_nonce(),
            issued_at=ctx.clock.now(),
            tree_head=r.tree_head,
        )
        doc = jws.sign(TAG_SET_REQUEST_TYP, req.wire(), ctx.keys.signing)
        return await signed_exchange(
            ctx,
            r.session,
            party,
            card,
            TAG_SET_PATH,
            doc,
            TAG_SET_RESPONSE_TYP,
            TAG_SET_RESPONSE,
            ctx.cfg.peers.tag_set_timeout_seconds,
            answer_size.tag_set_answer(ctx.cfg.peers.max_tag_set_tags),
        )

    # The transfer outlives the round (shielded), so its retries are bounded by the
    # tag-set timeout, not by the round's deadline.
    loop = asyncio.get_running_loop()
    resp = await with_retries(
        ctx,
        Tries(),
        once,
        deadline=loop.time() + ctx.cfg.peers.tag_set_timeout_seconds,
        partner=party.node_id,
    )
    if isinstance(resp, TagSetRefused):
        raise PartnerFailure("refused", resp.reason, resp.reason_detail or "")
    new = resp.head
    if new.convenant_id != r.conv.id:
        raise PartnerFailure("invalid", "bad_binding", "tag-set head names another convenant")
    # The partner changed its OPRF key between the evaluation and this request (§6.1.1):
    # the set is kept (it matches its own head), and the round evaluates again under it.
    moved = new.oprf_epoch > head.oprf_epoch
    if not moved and (new.oprf_public_key != head.oprf_public_key or new.version < head.version):
        raise PartnerFailure(
            "invalid", "invalid_tag_set", "tag set does not match the evaluation's head"
        )
    pk = new.oprf_public_key
    full = resp.base_version == 0
    if not full and resp.base_version != since:
        raise PartnerFailure(
            "invalid", "invalid_tag_set", "delta starts at a version we do not hold"
        )
    try:
        added = unpack(resp.added)
        removed = unpack(resp.removed)
    except ProtocolError as e:
        raise PartnerFailure("invalid", e.code, e.detail) from e
    new_digest = new.digest
    head_held = tag_sets.PeerHead(new.version, new.count, new_digest, pk)

    def store() -> None:
        count, digest = tag_sets.store_peer_set(
            ctx.conn, party.node_id, r.conv.id, head_held, added, removed, full
        )
        if count != new.count or digest != new_digest:
            # The incremental pair relies on the stored count and bucket rows; before
            # calling the partner invalid, recompute both from the tags held (O(n),
            # and it repairs damaged bucket rows).
            count, digest = tag_sets.peer_digest(ctx.conn, party.node_id, r.conv.id)
        if count != new.count or digest != new_digest:
            raise InvalidTagSet("tag set does not match its signed count and digest")

    try:
        await ctx.write(store)
    except ProtocolError as e:
        raise PartnerFailure("invalid", e.code, e.detail) from e
    if moved:
        raise EpochMoved(new.oprf_epoch)
    return new.version


class EpochMoved(Exception):
    """The partner's tag set is under a newer OPRF key epoch than the evaluation it
    answered: the copy is current, the round's outputs are of the old key (§6.8 step 5)."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"the partner's OPRF key moved to epoch {epoch}")


def _pin(ctx: NodeContext, partner: str, convenant_id: str, head: TagSetHead) -> bool:
    """Step 4a, in a write job: pin the key the partner evaluated with for its epoch, or
    find that it showed another one (here, or to a peer that compared pins with us)."""
    pin = key_pins.Pin(partner, convenant_id, head.oprf_epoch, head.oprf_public_key)
    seen = key_pins.observe(ctx.conn, pin, partner, ctx.clock.now())
    if seen == "new_conflict":
        ctx.record(
            [
                log_entries.peer_oprf_key_conflict(
                    partner=partner, convenant_id=convenant_id, epoch=head.oprf_epoch,
                    source=partner,
                )
            ]
        )  # fmt: skip
    return seen is not None


async def _evaluate(
    r: _Round, party: ConvenantParty, card: PeerCard
) -> tuple[list[bytes], list[bytes], Evaluated | EvaluateRefused]:
    """Steps 1–3, one try: blind afresh, sign a request with a fresh nonce, exchange."""
    ctx = r.ctx
    blinds, blinded = oprf.blind(r.keys)  # step 1
    req = EvaluateRequest(  # step 2
        requester=ctx.node_id,
        partner=party.node_id,
        convenant_id=r.conv.id,
        convenant_version=r.conv.version,
        purpose=r.purpose,
        case_ref=r.case_ref,
        requesting_user=r.user,
        trace_id=r.trace_id,
        nonce=_now_b64_nonce(),
        issued_at=ctx.clock.now(),
        blinded_elements=tuple(jws.b64u_encode(b) for b in blinded),
        tree_head=r.tree_head,
    )
    doc = jws.sign(EVALUATE_REQUEST_TYP, req.wire(), ctx.keys.signing)
    resp = await signed_exchange(  # step 3
        ctx,
        r.session,
        party,
        card,
        EVALUATE_PATH,
        doc,
        EVALUATE_RESPONSE_TYP,
        EVALUATE_RESPONSE,
        ctx.cfg.peers.timeout_seconds,
        answer_size.evaluate_answer(len(req.blinded_elements)),
    )
    return blinds, blinded, resp


async def _ask_partner(
    r: _Round, party: ConvenantParty, phase: list[str], tries: Tries, deadline: float
) -> PartnerResult:
    ctx = r.ctx
    peer = ctx.trust().peers_by_id.get(party.node_id)
    card = peer.card if peer else None
    if party.node_id == ctx.node_id:
        card = own_card(ctx)[0]
    result = PartnerResult(
        partner=party.node_id,
        organisation=party.organisation,
        org_type=party.org_type,
        status="invalid",
        subjects=[],
    )
    started = time.perf_counter()
    try:
        gone = withdrawn(
            ctx.trust().withdrawals_of(r.conv.id), r.conv, party.node_id, ctx.clock.now()
        )
        if gone is not None:
            # The partner's own signed statement says it is no party any more: asking would
            # only send it blinded elements it may not evaluate, so nothing is sent.
            raise PartnerFailure(
                "refused",
                PartyWithdrawn.code,
                f"withdrew from the convenant at {rfc3339(gone.withdrawn_at)}",
            )
        if card is None:
            raise PartnerFailure("invalid", "unknown_partner", "no peer card for this partner")
        if (peer is not None and peer.revoked_at is not None) or not card.valid_at(ctx.clock.now()):
            # We would not trust its signature, so we do not ask: fail closed.
            raise PartnerFailure(
                "invalid",
                "revoked_partner",
                "this node revoked the partner's peer card or it expired",
            )
        for again in (True, False):
            phase[0] = "evaluate"
            # Steps 1–3, tried again while the partner fails fast (§6.8 "Retries"): each
            # try blinds afresh, so the partner never sees one blinded element twice, and
            # signs a new nonce, so a retry is a new request, never a replay it would refuse.
            blinds, blinded, resp = await with_retries(
                ctx,
                tries,
                lambda: _evaluate(r, party, card),
                deadline=deadline,
                partner=party.node_id,
            )
            if isinstance(resp, EvaluateRefused):
                raise PartnerFailure("refused", resp.reason, resp.reason_detail or "")
            if resp.tag_set.convenant_id != r.conv.id:
                raise PartnerFailure(
                    "invalid", "bad_binding", "tag-set head names another convenant"
                )
            try:  # step 4
                outputs = oprf.finalize(
                    r.keys,
                    blinds,
                    blinded,
                    list(resp.evaluated_elements),
                    resp.tag_set.oprf_public_key,
                    resp.proof,
                )
            except ProtocolError as e:
                raise PartnerFailure("invalid", e.code, e.detail) from e
            head = resp.tag_set
            pin = functools.partial(_pin, ctx, party.node_id, r.conv.id, head)
            if await ctx.write(pin):  # step 4a
                raise PartnerFailure(
                    "invalid",
                    "oprf_key_conflict",
                    f"the partner showed another OPRF key for epoch {head.oprf_epoch} "
                    "than the one pinned here",
                )
            phase[0] = "tag_set"
            try:
                result.tag_set_version = await _sync_tag_set(r, party, card, head)  # step 5
            except EpochMoved:
                if again:  # once: the partner changes its key once a schedule period
                    continue
                raise PartnerFailure(
                    "invalid", "invalid_tag_set", "the partner's OPRF key changed twice"
                ) from None
            break
        phase[0] = "decide"
        tags = [tag_from_output(o) for o in outputs]
        held = await ctx.read(
            lambda: [tag_sets.peer_has(ctx.conn, party.node_id, r.conv.id, t) for t in tags]
        )
        result.subjects = ["hit" if h else "no_hit" for h in held]  # step 6
        result.status = "hit" if "hit" in result.subjects else "no_hit"
        result.hit_proofs = {
            i: o
            for i, (o, s) in enumerate(zip(outputs, result.subjects, strict=True))
            if s == "hit"
        }
    except PartnerFailure as f:
        result.status, result.reason, result.detail = f.status, f.reason, f.detail
        result.subjects = [f.status] * len(r.keys)
    except TimeoutError:
        if phase[0] == "tag_set":
            result.status, result.reason = "timeout", "tag_set_timeout"
            result.detail = "the partner's tag set did not arrive within the tag-set timeout"
        else:
            result.status, result.detail = "timeout", "no answer within the per-partner timeout"
        result.subjects = ["timeout"] * len(r.keys)
    except Exception as e:  # one partner's surprise must not lose the others' answers
        logger.exception("partner_exchange_failed", partner=party.node_id)
        result.status, result.reason = "invalid", "internal_error"
        result.detail = f"{type(e).__name__} while handling this partner's answer"
        result.subjects = ["invalid"] * len(r.keys)
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    result.tries = tries.made
    return result


@dataclass(frozen=True)
class _Begun:
    conv: Convenant
    providers: list[ConvenantParty]
    pseudonyms: tuple[str, ...]
    tree_head: SignedTreeHead


def _begin(
    ctx: NodeContext,
    convenant_id: str,
    purpose: str,
    case_ref: str,
    user: str,
    trace_id: str,
    keys: Sequence[bytes],
    partners: Sequence[str] | None,
) -> _Begun:
    """Decide whom to ask and log the intent (``bekendheid.round``) before anything is
    sent: a requester stopped mid-round leaves a record of what it asked whom.

    Finished after the commit with the signed head that seals the intent (§9.5): the
    requests carry it, so it costs no commit and no read beyond the one a round already
    makes. Typed as ``_Begun``: ``ctx.write`` returns the finished value."""
    conv = current_convenant(ctx, convenant_id)
    providers = [p for p in conv.providers() if partners is None or p.node_id in partners]
    if partners is not None:
        unknown = set(partners) - {p.node_id for p in providers}
        if unknown:
            name = sorted(unknown)[0]
            if conv.party(name) is None:
                raise NotAParty(f"{name} is not a party to {convenant_id}")
            raise NotAProvider(f"{name} provides no bekendheid under {convenant_id}")
    pseudonym_key = ctx.keys.pseudonym_key()
    pseudonyms = tuple(log.pseudonym(pseudonym_key, k.decode()) for k in keys)
    ctx.record(
        [
            log_entries.bekendheid_round(
                trace_id=trace_id,
                convenant_id=conv.id,
                convenant_version=conv.version,
                purpose=purpose,
                user=user,
                subjects=pseudonyms,
                case_ref=case_ref,
                partners=[p.node_id for p in providers],
            )
        ]
    )
    return ctx.after_commit(  # type: ignore[return-value]
        lambda head: _Begun(conv, providers, pseudonyms, signed_head(head))
    )


def _past_deadline(r: _Round, party: ConvenantParty, phase: str) -> PartnerResult:
    reason = "tag_set_timeout" if phase == "tag_set" else "round_deadline"
    return PartnerResult(
        partner=party.node_id,
        organisation=party.organisation,
        org_type=party.org_type,
        status="timeout",
        subjects=["timeout"] * len(r.keys),
        reason=reason,
        detail=(
            "the partner's tag set did not arrive within the round's deadline"
            if phase == "tag_set"
            else "no answer within the round's deadline"
        ),
    )


async def _ask_within(r: _Round, party: ConvenantParty, deadline: float) -> PartnerResult:
    """One partner's exchange, cut off at the round's deadline whatever it waits for."""
    phase = ["evaluate"]
    tries = Tries()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        return await asyncio.wait_for(
            _ask_partner(r, party, phase, tries, deadline), max(0.0, deadline - loop.time())
        )
    except TimeoutError:
        result = _past_deadline(r, party, phase[0])
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        result.tries = tries.made
        return result


async def ask_bekendheid(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    convenant_id: str,
    purpose: str,
    case_ref: str,
    user: str,
    subjects: Sequence[SubjectIdentifier],
    partners: Sequence[str] | None = None,
    deadline_seconds: float | None = None,
) -> QueryResult:
    """Ask every provider of the convenant (or the named ``partners``) in one round.

    The round ends after ``[peers] round_deadline_seconds``, or ``deadline_seconds`` if
    shorter: a partner still outstanding then is ``timeout``. Raises a Refusal only when this node
    itself cannot ask (convenant unknown, not in force, not a party, withdrawn); every
    partner-side outcome is a per-partner status.
    """
    loop = asyncio.get_running_loop()
    budget = ctx.cfg.peers.round_deadline_seconds
    if deadline_seconds is not None:
        budget = min(budget, deadline_seconds)
    deadline = loop.time() + budget
    keys = [subject_key(s).encode() for s in subjects]
    trace_id = secrets.token_hex(16)
    begun = await ctx.write(
        lambda: _begin(ctx, convenant_id, purpose, case_ref, user, trace_id, keys, partners)
    )
    conv, pseudonyms = begun.conv, begun.pseudonyms
    r = _Round(ctx, session, conv, purpose, case_ref, user, trace_id, keys, begun.tree_head)
    results = await asyncio.gather(*(_ask_within(r, p, deadline) for p in begun.providers))
    query = QueryResult(
        trace_id, conv.id, conv.version, purpose, case_ref, len(keys), list(results)
    )
    now = ctx.clock.now()
    expires = now + timedelta(hours=ctx.cfg.details.hit_validity_hours)
    hits = [
        received.RoundHit(
            trace_id,
            res.partner,
            i,
            conv.id,
            conv.version,
            proof,
            pseudonyms[i],
            purpose,
            case_ref,
            user,
            now,
            expires,
        )
        for res in results
        for i, proof in sorted(res.hit_proofs.items())
    ]

    def keep() -> None:
        received.keep_hits(ctx.conn, hits)
        ctx.record(
            [
                log_entries.bekendheid_asked(
                    trace_id=trace_id,
                    convenant_id=conv.id,
                    convenant_version=conv.version,
                    purpose=purpose,
                    user=user,
                    partner=res.partner,
                    subjects=pseudonyms,
                    status=res.status,
                    reason=res.reason,
                    data={
                        "case_ref": case_ref,
                        "subjects": res.subjects,
                        "tag_set_version": res.tag_set_version,
                        "tries": res.tries,
                    },
                )
                for res in results
            ],
            now,
        )

    await ctx.write(keep)
    ctx.metrics.round_asked(
        conv.id,
        (
            PartnerOutcome(
                res.partner,
                res.status,
                res.reason,
                tuple(res.subjects),
                res.elapsed_ms / 1000,
                res.tries,
            )
            for res in results
        ),
    )
    if hits:
        # §14.9. Within what is left of the deadline; notices still under way then are
        # finished in the background (each is logged when it is sent).
        notices = ctx.spawn(send_hit_notices(ctx, session, conv, hits))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(notices), max(0.0, deadline - loop.time()))
    return query


__all__ = ["PartnerResult", "QueryResult", "ask_bekendheid"]
