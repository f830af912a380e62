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
from node.protocol.bekendheid import PartnerAnswer, Status
from node.protocol.convenant import ConvenantParty
from node.protocol.models import parse_union
from node.protocol.peer_card import PeerCard
from node.protocol.tree_head import SignedTreeHead
from node.store import log, peer_heads


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
) -> jws.SignedDocument:
    """POST ``doc`` and read the answer, at most ``max_bytes`` of it (the bound of this
    message type, ``protocol.answer_size``): a longer answer is ``invalid`` as soon as it
    is seen to be longer, by its Content-Length or while it is read, never buffered whole."""
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
    try:
        return jws.parse_bytes(body, typ)
    except ProtocolError as e:
        raise PartnerFailure("invalid", e.code, e.detail) from e


def verify_from(doc: jws.SignedDocument, party: ConvenantParty, card: PeerCard | None) -> None:
    """The response is signed by the key the convenant names for this partner."""
    if card is None:
        raise PartnerFailure("invalid", "unknown_partner", "no peer card for this partner")
    if card.signing_fingerprint != party.signing_key_fingerprint:
        raise PartnerFailure(
            "invalid", "key_mismatch", "peer card key differs from the convenant's"
        )
    try:
        doc.verify(party.signing_key_fingerprint, card.signing_key_bytes)
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
    answer = await asyncio.wait_for(
        post_signed(session, card.endpoint_url + path, doc, answer_typ, max_bytes=max_bytes),
        timeout,
    )
    verify_from(answer, party, card)
    try:
        resp = parse_union(model, answer_typ, answer.payload)
    except ProtocolError as e:
        raise PartnerFailure("invalid", e.code, e.detail) from e
    if (
        resp.request_hash != doc.digest()
        or resp.partner != party.node_id
        or resp.requester != ctx.node_id
    ):
        raise PartnerFailure("invalid", "bad_binding", "response does not answer our request")
    await keep_tree_head(ctx, party, card, resp.tree_head)
    return resp


async def keep_tree_head(
    ctx: NodeContext, party: ConvenantParty, card: PeerCard, obj: SignedTreeHead
) -> None:
    """§9.3: verify the partner's signed tree head and keep it. A second head for a size we
    hold, with another root, proves a forked log: the answer is not trusted."""
    try:
        head = log.check_head(obj, party.node_id, card.signing_key_bytes)
    except ProtocolError as e:
        raise PartnerFailure("invalid", "bad_tree_head", e.detail) from e

    def remember() -> str:
        seen = peer_heads.remember(ctx.conn, party.node_id, head, ctx.clock.now())
        if seen == "conflict":
            ctx.record(
                [log_entries.peer_log_forked(partner=party.node_id, tree_size=head.tree_size)]
            )
        return seen

    seen = await ctx.write(remember)
    if seen == "conflict":
        raise PartnerFailure(
            "invalid",
            "forked_log",
            f"partner signed two different logs of size {head.tree_size}",
        )
