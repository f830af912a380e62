"""HTTP routes of the asking side of the detail exchange (docs/protocol.md §14, docs/api.md
"Details (requester)"): the decision-notice peer endpoint and the local API."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from node.errors import InputError
from node.flows import detail_asking as requester
from node.http.plumbing import CTX, SESSION, USER, json_object, peer_transport, roles
from node.protocol.convenant import ID_PATTERN
from node.protocol.detail import DETAIL_NOTICE_PATH, MAX_CATEGORIES, TRACE_ID
from node.protocol.models import NODE_ID_PATTERN

ASKERS = ("coordinator", "liaison", "privacy_officer")


class DetailAskBody(BaseModel):
    """Body of POST /api/v1/details."""

    model_config = ConfigDict(extra="forbid")
    round_trace_id: str = Field(pattern=TRACE_ID)
    partner: str = Field(pattern=NODE_ID_PATTERN)
    subject: Annotated[int, Strict()] = Field(0, ge=0)
    categories: list[str] = Field(min_length=1, max_length=MAX_CATEGORIES)
    purpose: str = Field(pattern=ID_PATTERN)
    case_ref: str | None = Field(None, min_length=1, max_length=128)


def _parse(data: Any) -> DetailAskBody:
    try:
        return DetailAskBody.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from e


def _trace_id(request: web.Request) -> str:
    trace_id = request.match_info["trace_id"]
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id):
        raise InputError("trace id must be 32 lowercase hex digits")
    return trace_id


async def peer_detail_notice(request: web.Request) -> web.Response:
    """§14.6: a partner's liaison decided; check the notice, answer 202 and poll."""
    ctx = request.app[CTX]
    body, transport = await request.read(), peer_transport(request)
    trace_id = await ctx.write(lambda: requester.receive_notice(ctx, body, transport))
    ctx.spawn(requester.poll_after_notice(ctx, request.app[SESSION], trace_id))
    return web.json_response({"status": "accepted"}, status=202)


@roles(*ASKERS)
async def post_details(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = _parse(await json_object(request))
    user = request[USER]
    result = await requester.ask_details(
        ctx,
        request.app[SESSION],
        round_trace_id=body.round_trace_id,
        partner=body.partner,
        subject=body.subject,
        categories=body.categories,
        purpose=body.purpose,
        case_ref=body.case_ref,
        user=user.name,
        role=user.role,
    )
    return web.json_response(result)


@roles(*ASKERS)
async def get_details(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response({"details": await ctx.read(lambda: requester.list_asks(ctx))})


@roles(*ASKERS)
async def get_detail(request: web.Request) -> web.Response:
    ctx, user, trace_id = request.app[CTX], request[USER], _trace_id(request)
    # A read that logs who read (detail.viewed): a write job.
    view = await ctx.write(lambda: requester.view(ctx, trace_id, user.name, user.role))
    return web.json_response(view)


@roles(*ASKERS)
async def post_detail_poll(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    result = await requester.poll(ctx, request.app[SESSION], _trace_id(request), request[USER].name)
    return web.json_response(result)


ROUTES: list[web.RouteDef] = [
    web.post(DETAIL_NOTICE_PATH, peer_detail_notice),
    web.post("/api/v1/details", post_details),
    web.get("/api/v1/details", get_details),
    web.get("/api/v1/details/{trace_id}", get_detail),
    web.post("/api/v1/details/{trace_id}/poll", post_detail_poll),
]
