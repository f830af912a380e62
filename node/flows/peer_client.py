"""The peer client: one signed exchange with a partner (docs/protocol.md §6.8 step 3, §9.3).

Shared by every flow that asks a partner something (bekendheid, tag sets, detail, hit
notices, log consistency): POST a signed request, read a bounded answer, verify that the
key the convenant names signed it, that it answers this very request, and keep the
partner's signed tree head. Every failure is one ``PartnerFailure`` with the status the
caller reports.

A partner that fails fast — its connection refused or reset before any answer, or an
HTTP 502/503 — is tried again (``with_retries``, docs/protocol.md §6.8 "Retries"): such a
failure says the partner did not answer, not what it would answer. Each try is a request
signed afresh (new nonce, new ``issued_at``): the partner refuses a repeated nonce as a
replay (§6.6 step 6), so a retry is never the same bytes sent twice.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import aiohttp
import structlog
from pydantic import TypeAdapter

from node.errors import ProtocolError
from node.flows import log_entries
from node.flows.context import NodeContext
from node.protocol import jws
from node.protocol.answers import Expected, VerifiedAnswer, verify_answer
from node.protocol.bekendheid import PartnerAnswer, Status
from node.protocol.convenant import ConvenantParty
from node.protocol.peer_card import PeerCard
from node.protocol.tree_head import TreeHead
from node.store import peer_heads

logger = structlog.get_logger("vhnode.client")

# A fast failure's kind, for whether it may be tried again:
# - "not_delivered": the connection was never made (refused): the partner received nothing;
# - "maybe_delivered": reset before any answer, or HTTP 502/503: the partner (or a proxy
#   in front of it) gave no answer, but may have read the request.
Transient = Literal["not_delivered", "maybe_delivered"]
# The kinds a request may be retried after when a second copy, signed afresh, is harmless
# at the partner (an evaluation, a tag set, a poll, a hit notice).
RETRY_FAST_FAILURES: frozenset[Transient] = frozenset({"not_delivered", "maybe_delivered"})
# Only when the partner received nothing: for a detail request, whose trace id the
# partner takes once (a second copy would be refused duplicate_request, §14.3 step 3).
RETRY_UNDELIVERED: frozenset[Transient] = frozenset({"not_delivered"})


class PartnerFailure(Exception):
    """Internal: ends one partner's exchange with a status other than hit/no_hit.
    ``transient`` is set for a fast failure that may be tried again."""

    def __init__(
        self,
        status: Status,
        reason: str | None,
        detail: str,
        transient: Transient | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.transient = transient


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    doc: jws.SignedDocument,
    typ: str,
    *,
    max_bytes: int,
    ssl_context: ssl.SSLContext | bool = True,
) -> bytes:
    """POST ``doc`` and read the answer's body, at most ``max_bytes`` of it (the bound of
    this message type, ``protocol.answer_size``): a longer answer is ``invalid`` as soon as
    it is seen to be longer, by its Content-Length or while it is read, never buffered
    whole. Connection failures and HTTP ≥ 500 are ``unreachable``; problem+json is
    ``invalid``. The body is verified by the caller (``protocol.answers``).

    Marks the fast failures (``transient``): a connection refused, one reset before the
    answer's status line, HTTP 502 or 503. Not a timeout (the partner is slow, and a second
    wait would not fit the deadline), a TLS failure (it fails the same way again), a body
    broken off (the partner answered, and may have acted on the request), nor another
    5xx (the partner handled the request and failed).

    ``ssl_context`` is the partner's pinned context (``peer_ssl``): a certificate that
    does not verify against the partner's card — another key, expired, not from the
    configured CA — is ``invalid`` with reason ``tls_certificate``, and nothing was sent."""
    answered = False
    try:
        async with session.post(url, json=doc.to_json(), ssl=ssl_context) as resp:
            answered = True
            if resp.status >= 500:
                raise PartnerFailure(
                    "unreachable",
                    None,
                    f"partner answered HTTP {resp.status}",
                    "maybe_delivered" if resp.status in (502, 503) else None,
                )
            too_large = PartnerFailure(
                "invalid", None, f"response larger than {max_bytes} bytes for this message"
            )
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise too_large
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
            body = b"".join(chunks)
            if resp.content_type == "application/problem+json":
                raise PartnerFailure(
                    "invalid",
                    None,
                    f"partner rejected the request (HTTP {resp.status}): {body[:200]!r}",
                )
    except aiohttp.ClientConnectorCertificateError as e:
        raise PartnerFailure(
            "invalid",
            "tls_certificate",
            f"the partner's TLS certificate failed: {e.certificate_error}",
        ) from e
    except (aiohttp.ClientError, OSError) as e:
        # Connection refused or reset, a truncated body, a redirect loop: no signed answer.
        raise PartnerFailure(
            "unreachable", None, f"{type(e).__name__}: {e}", None if answered else _fast(e)
        ) from e
    return body


def _fast(e: BaseException) -> Transient | None:
    """The kind of fast failure ``e`` (raised before any answer) is, or None."""
    if isinstance(
        e,
        TimeoutError | ssl.SSLError | aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch,
    ):
        return None  # a connect timeout is a slow partner; a TLS failure repeats itself
    if isinstance(e, aiohttp.ClientConnectorError):
        return "not_delivered"
    if isinstance(e, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | ConnectionError):
        return "maybe_delivered"
    return None


@dataclass
class Tries:
    """How many requests one exchange with a partner sent (``tries`` in its result)."""

    made: int = 0


_JITTER = secrets.SystemRandom()


def backoff(tries_made: int, base_seconds: float) -> float:
    """The pause before the next try: ``base · 2^(tries_made − 1)``, jittered to between
    half and all of it, so that requesters that saw one partner fail together do not all
    come back at the same instant."""
    return float(base_seconds * 2 ** (tries_made - 1) * _JITTER.uniform(0.5, 1.0))


R = TypeVar("R")


async def with_retries(
    ctx: NodeContext,
    tries: Tries,
    attempt: Callable[[], Awaitable[R]],
    *,
    deadline: float,
    retry_on: frozenset[Transient] = RETRY_FAST_FAILURES,
    partner: str,
) -> R:
    """Run ``attempt`` (one request, signed afresh each time) until it returns or fails
    other than fast, at most ``[peers] max_tries`` times; ``deadline`` is on the event
    loop's clock, as the round's is. A retry whose pause would end at or past it is not
    made: the last failure stands (``unreachable`` only after the last try).

    The pause is real time, not ``ctx.clock``: the deadline it must fit is real time too
    (the round's, taken from the loop), and it is short (``retry_backoff_seconds``)."""
    peers = ctx.cfg.peers
    loop = asyncio.get_running_loop()
    while True:
        tries.made += 1
        try:
            return await attempt()
        except PartnerFailure as f:
            if f.transient not in retry_on or tries.made >= peers.max_tries:
                raise
            pause = backoff(tries.made, peers.retry_backoff_seconds)
            if loop.time() + pause >= deadline:
                raise
            logger.info(
                "partner_retry",
                partner=partner,
                tries=tries.made,
                pause_ms=round(pause * 1000),
                failure=f.detail[:120],
            )
            await asyncio.sleep(pause)


async def peer_ssl(ctx: NodeContext, card: PeerCard) -> ssl.SSLContext | bool:
    """How to reach the node of ``card``: over TLS pinned to the key on its card; plain
    HTTP (or a proxy's TLS, checked against the system's CAs) only for a card without a
    TLS key where ``[tls] allow_plain_http`` lets us (§12.3): else nothing is sent."""
    context = await ctx.peer_ssl(card)
    if context is not None:
        return context
    if not ctx.allow_plain_http:
        raise PartnerFailure(
            "invalid",
            "plain_http",
            "the partner's card names no TLS key and [tls] allow_plain_http is false: not asked",
        )
    return True


def partner_key(party: ConvenantParty, card: PeerCard | None) -> bytes:
    """The key an answer of this partner must be signed with: the one the convenant names,
    as held in its peer card."""
    if card is None:
        raise PartnerFailure("invalid", "unknown_partner", "no peer card for this partner")
    if card.signing_fingerprint != party.signing_key_fingerprint:
        raise PartnerFailure(
            "invalid", "key_mismatch", "peer card key differs from the convenant's"
        )
    return card.signing_key_bytes


def verified(body: bytes, model: TypeAdapter[A], expected: Expected) -> VerifiedAnswer[A]:
    """``protocol.answers.verify_answer``, its failure as this partner's ``invalid``."""
    try:
        return verify_answer(body, model, expected)
    except ProtocolError as e:
        raise PartnerFailure("invalid", e.code, e.detail) from e


A = TypeVar("A", bound=PartnerAnswer)


async def signed_exchange(
    ctx: NodeContext,
    session: aiohttp.ClientSession,
    party: ConvenantParty,
    card: PeerCard,
    path: str,
    doc: jws.SignedDocument,
    answer_typ: str,
    model: TypeAdapter[A],
    timeout: float,
    max_bytes: int,
) -> A:
    """POST a signed request to a partner and take its signed answer as one of ``model``'s
    types (the answer or its refusal): signed
    by the key the convenant names, answering this very request (``request_hash``,
    ``partner``, ``requester``), its tree head verified and kept (§6.8 step 3, §9.3).

    Every failure is a PartnerFailure (or TimeoutError); a refusal is returned, for the
    caller to classify with what it asked.
    """
    key = partner_key(party, card)
    context = await peer_ssl(ctx, card)
    body = await asyncio.wait_for(
        post_signed(
            session,
            card.endpoint_url + path,
            doc,
            answer_typ,
            max_bytes=max_bytes,
            ssl_context=context,
        ),
        timeout,
    )
    expected = Expected(
        answer_typ, party.node_id, party.signing_key_fingerprint, key, ctx.node_id, doc.digest()
    )
    answer = verified(body, model, expected)
    if answer.tree_head is not None:  # none in a refusal of an unauthenticated request
        await keep_tree_head(ctx, party.node_id, answer.tree_head)
    return answer.answer


async def keep_tree_head(ctx: NodeContext, partner: str, head: TreeHead) -> None:
    """§9.3: keep the partner's verified tree head. A second head for a size we hold in
    the same epoch, with another root, proves a forked log: the answer is not trusted. A
    head of a new epoch with its restore statement (§9.7) is a restore: logged, trusted."""
    seen = await ctx.write(lambda: remember_head(ctx, partner, head))
    if seen == "conflict":
        raise PartnerFailure(
            "invalid",
            "forked_log",
            f"partner signed two different logs of size {head.tree_size}",
        )


def remember_head(
    ctx: NodeContext, partner: str, head: TreeHead, *, log_fork: bool = True
) -> peer_heads.Seen:
    """``peer_heads.remember`` and its log entry: a restore always, a fork unless the
    caller records it its own way (the cross-check's verdict). In a write job."""
    held_before = peer_heads.latest(ctx.conn, partner)
    seen = peer_heads.remember(ctx.conn, partner, head, ctx.clock.now())
    if seen == "conflict" and log_fork:
        ctx.record([log_entries.peer_log_forked(partner=partner, tree_size=head.tree_size)])
    elif seen == "restored" and head.restore is not None:
        ctx.record(
            [
                log_entries.peer_log_restored(
                    partner=partner,
                    statement=head.restore,
                    held_size=0 if held_before is None else held_before[0],
                )
            ]
        )
    return seen
