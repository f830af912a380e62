"""The peer client: one signed exchange with a partner (docs/protocol.md §6.8 step 3, §9.3).

Shared by every flow that asks a partner something (bekendheid, tag sets, detail, hit
notices, log consistency): POST a signed request, read a bounded answer, verify that the
key the convenant names signed it, that it answers this very request, and keep the
partner's signed tree head. Every failure is one ``PartnerFailure`` with the status the
caller reports.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import aiohttp
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


class PartnerFailure(Exception):
    """Internal: ends one partner's exchange with a status other than hit/no_hit."""

    def __init__(self, status: Status, reason: str | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    doc: jws.SignedDocument,
    typ: str,
    *,
    max_bytes: int,
) -> bytes:
    """POST ``doc`` and read the answer's body, at most ``max_bytes`` of it (the bound of
    this message type, ``protocol.answer_size``): a longer answer is ``invalid`` as soon as
    it is seen to be longer, by its Content-Length or while it is read, never buffered
    whole. Connection failures and HTTP ≥ 500 are ``unreachable``; problem+json is
    ``invalid``. The body is verified by the caller (``protocol.answers``)."""
    try:
        async with session.post(url, json=doc.to_json()) as resp:
            if resp.status >= 500:
                raise PartnerFailure("unreachable", None, f"partner answered HTTP {resp.status}")
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
    except (aiohttp.ClientError, OSError) as e:
        # Connection refused or reset, a truncated body, a redirect loop: no signed answer.
        raise PartnerFailure("unreachable", None, f"{type(e).__name__}: {e}") from e
    return body


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
    body = await asyncio.wait_for(
        post_signed(session, card.endpoint_url + path, doc, answer_typ, max_bytes=max_bytes),
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
    """§9.3: keep the partner's verified tree head. A second head for a size we hold, with
    another root, proves a forked log: the answer is not trusted."""

    def remember() -> str:
        seen = peer_heads.remember(ctx.conn, partner, head, ctx.clock.now())
        if seen == "conflict":
            ctx.record([log_entries.peer_log_forked(partner=partner, tree_size=head.tree_size)])
        return seen

    seen = await ctx.write(remember)
    if seen == "conflict":
        raise PartnerFailure(
            "invalid",
            "forked_log",
            f"partner signed two different logs of size {head.tree_size}",
        )
