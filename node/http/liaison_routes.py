"""The partner's routes of the detail exchange: peer endpoints (docs/protocol.md §14.3,
§14.5, §14.9) and the liaison's local API (§14.7, docs/api.md "Liaison")."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.errors import InputError
from node.flows import detail_answering as provider
from node.http.plumbing import CTX, SESSION, USER, jose, json_object, peer_transport, roles
from node.protocol.convenant import ID_PATTERN
from node.protocol.detail import DETAIL_PATH, DETAIL_POLL_PATH, HIT_NOTICE_PATH
from node.protocol.models import rfc3339
from node.store.details import NoticeFilter


async def peer_detail(request: web.Request) -> web.Response:
    answer = await provider.answer_detail(
        request.app[CTX], request.app[SESSION], await request.read(), peer_transport(request)
    )
    return jose(answer)


async def peer_detail_poll(request: web.Request) -> web.Response:
    answer = await provider.answer_poll(
        request.app[CTX], request.app[SESSION], await request.read(), peer_transport(request)
    )
    return jose(answer)


async def peer_hit_notice(request: web.Request) -> web.Response:
    ctx, body, transport = request.app[CTX], await request.read(), peer_transport(request)
    return jose(await ctx.write(lambda: provider.answer_hit_notice(ctx, body, transport)))


class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[str] | None = Field(None, min_length=1, max_length=32)
    reason: str | None = Field(None, min_length=1, max_length=500)


async def _decision(request: web.Request, *, approve: bool) -> dict[str, Any]:
    data = await json_object(request) if request.body_exists else {}
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


_INBOX_PARAMS = frozenset(
    {"notices", "requester", "convenant", "case_ref", "round", "since", "limit", "before"}
)
_NOTICE_STATES = ("open", "acknowledged", "all")


def _inbox_query(request: web.Request) -> tuple[NoticeFilter, int, int | None]:
    """The inbox's query parameters (docs/api.md "GET /api/v1/liaison/inbox")."""
    q = request.query
    unknown = sorted(set(q) - _INBOX_PARAMS)
    if unknown:
        raise InputError(f"unknown query parameter(s): {', '.join(unknown)}")
    for name in q:
        if len(q.getall(name)) > 1:
            raise InputError(f"query parameter {name} given twice")
    state = q.get("notices", "open")
    if state not in _NOTICE_STATES:
        raise InputError(f"notices must be one of {', '.join(_NOTICE_STATES)}")
    round_ = q.get("round")
    if round_ is not None and not re.fullmatch("[0-9a-f]{32}", round_):
        raise InputError("round must be a round's trace id (32 lowercase hex)")
    since = q.get("since")
    if since is not None:
        since = _since(since)
    where = NoticeFilter(
        state=state,  # type: ignore[arg-type]  # checked against _NOTICE_STATES above
        requester=q.get("requester"),
        convenant_id=q.get("convenant"),
        case_ref=q.get("case_ref"),
        round_trace_id=round_,
        since=since,
    )
    return where, _whole("limit", q.get("limit", "50")), _optional_whole("before", q)


def _since(value: str) -> str:
    """A day (``YYYY-MM-DD``, from its start, UTC) or an RFC 3339 time, as stored."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return rfc3339(datetime.combine(date.fromisoformat(value), time(), UTC))
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError("since must be YYYY-MM-DD or an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise InputError("since needs a time zone (Z or +hh:mm)")
    return rfc3339(moment.astimezone(UTC))


def _whole(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise InputError(f"{name} must be a whole number")
    return int(value)


def _optional_whole(name: str, q: Any) -> int | None:
    value = q.get(name)
    return None if value is None else _whole(name, value)


@roles("liaison")
async def get_liaison_inbox(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    where, limit, before = _inbox_query(request)
    return web.json_response(
        await ctx.read(lambda: provider.inbox(ctx, where, limit=limit, before=before))
    )


class _Acknowledge(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ids: list[int] | None = Field(None, min_length=1, max_length=provider.MAX_NOTICE_PAGE)
    through: int | None = Field(None, ge=1)


@roles("liaison")
async def post_liaison_acknowledge(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    try:
        body = _Acknowledge.model_validate(await json_object(request))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InputError(f"{where}: {first['msg']}") from e
    user = request[USER].name
    return web.json_response(
        await ctx.write(
            lambda: provider.acknowledge_notices(ctx, user, ids=body.ids, through=body.through)
        )
    )


@roles("liaison")
async def get_liaison_request(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    requester, trace_id = request.match_info["requester"], request.match_info["trace_id"]
    return web.json_response(await ctx.read(lambda: provider.one_request(ctx, requester, trace_id)))


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
    web.post("/api/v1/liaison/notices/acknowledge", post_liaison_acknowledge),
    web.get(_REQUEST, get_liaison_request),
    web.post(_REQUEST + "/approve", post_liaison_approve),
    web.post(_REQUEST + "/deny", post_liaison_deny),
]
