"""The partner's routes of the detail exchange: peer endpoints (docs/protocol.md §14.3,
§14.5, §14.9) and the liaison's local API (§14.7, docs/api.md "Liaison")."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.errors import InputError
from node.flows import detail_answering as provider
from node.http.plumbing import CTX, SESSION, USER, jose, json_object, roles
from node.protocol.convenant import ID_PATTERN
from node.protocol.detail import DETAIL_PATH, DETAIL_POLL_PATH, HIT_NOTICE_PATH


async def peer_detail(request: web.Request) -> web.Response:
    answer = await provider.answer_detail(
        request.app[CTX], request.app[SESSION], await request.read()
    )
    return jose(answer)


async def peer_detail_poll(request: web.Request) -> web.Response:
    answer = await provider.answer_poll(
        request.app[CTX], request.app[SESSION], await request.read()
    )
    return jose(answer)


async def peer_hit_notice(request: web.Request) -> web.Response:
    ctx, body = request.app[CTX], await request.read()
    return jose(await ctx.write(lambda: provider.answer_hit_notice(ctx, body)))


class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[str] | None = Field(None, min_length=1, max_length=32)
    reason: str | None = Field(None, min_length=1, max_length=500)


async def _decision(request: web.Request, *, approve: bool) -> dict[str, Any]:
    data = await json_object(request) if request.can_read_body else {}
    try:
        body = _Decision.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from e
    if approve and body.reason is not None:
        raise InputError("an approval takes no reason")
    for c in body.categories or ():
        if not _is_id(c):
            raise InputError(f"bad category id {c!r}")
    return await provider.decide_pending(
        request.app[CTX],
        request.app[SESSION],
        request.match_info["requester"],
        request.match_info["trace_id"],
        request[USER].name,
        approve=approve,
        categories=body.categories,
        reason=body.reason,
    )


def _is_id(value: str) -> bool:
    return re.fullmatch(ID_PATTERN, value) is not None


@roles("liaison")
async def get_liaison_inbox(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response(await ctx.read(lambda: provider.inbox(ctx)))


@roles("liaison")
async def post_liaison_approve(request: web.Request) -> web.Response:
    return web.json_response(await _decision(request, approve=True))


@roles("liaison")
async def post_liaison_deny(request: web.Request) -> web.Response:
    return web.json_response(await _decision(request, approve=False))


_REQUEST = "/api/v1/liaison/requests/{requester}/{trace_id}"

ROUTES: list[web.RouteDef] = [
    web.post(DETAIL_PATH, peer_detail),
    web.post(DETAIL_POLL_PATH, peer_detail_poll),
    web.post(HIT_NOTICE_PATH, peer_hit_notice),
    web.get("/api/v1/liaison/inbox", get_liaison_inbox),
    web.post(_REQUEST + "/approve", post_liaison_approve),
    web.post(_REQUEST + "/deny", post_liaison_deny),
]
