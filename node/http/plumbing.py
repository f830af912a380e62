"""HTTP plumbing shared by every route module: app keys, role marks, bodies, JWS answers.

``node.http.app`` builds the application; route modules elsewhere (``node.details``) import
only this module, so they never import the app that gathers them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from node.errors import InputError
from node.flows.answering import Answer
from node.flows.context import NodeContext
from node.http.statuses import answer_status
from node.store.users import User
from node.tls import PeerTransport

CTX = web.AppKey("ctx", NodeContext)
SESSION = web.AppKey("session", aiohttp.ClientSession)
USER = web.RequestKey("user", User)
# Set on a peer answer refused at §6.6 steps 3–6: the peer guard counts it as bad.
UNAUTHENTICATED = web.ResponseKey("unauthenticated", bool)
# Set on a peer answer that is a signed, logged refusal: its reason, for the metrics.
REFUSED = web.ResponseKey("refused", str)
JOSE = "application/jose+json"
PROBLEM = "application/problem+json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Handler (module-qualified name) → the roles that may call it; admin may call anything.
_ROUTE_ROLES: dict[str, frozenset[str]] = {}


def _key(handler: object) -> str:
    return f"{getattr(handler, '__module__', '')}.{getattr(handler, '__qualname__', '')}"


def roles(*allowed: str) -> Callable[[Handler], Handler]:
    """Mark an ``/api/`` handler with the local roles that may call it (docs/api.md)."""

    def mark(handler: Handler) -> Handler:
        _ROUTE_ROLES[_key(handler)] = frozenset(allowed)
        return handler

    return mark


def allowed_roles(handler: object) -> frozenset[str]:
    """The roles marked on ``handler``; none (admin only) when it carries no mark."""
    return _ROUTE_ROLES.get(_key(handler), frozenset())


def permits(role: str, handler: object) -> bool:
    """May a user of ``role`` use ``handler``? The one role decision of the API and the
    web application alike: the handler's marked roles, and admin everywhere."""
    return role == "admin" or role in allowed_roles(handler)


async def json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, RecursionError) as e:
        # ValueError: bad JSON, bad UTF-8, over-long numbers; RecursionError: deep nesting.
        raise InputError("body is not acceptable JSON") from e


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object: anything else (an array, a number) is refused here, in
    the API's words, before a model's validator would name its own class in the detail."""
    data = await json_body(request)
    if not isinstance(data, dict):
        raise InputError(f"body must be a JSON object, not {_json_kind(data)}")
    return data


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def jose(answer: Answer) -> web.Response:
    resp = web.Response(
        status=answer_status(answer.refusal),
        text=json.dumps(answer.document.to_json()),
        content_type=JOSE,
    )
    resp[UNAUTHENTICATED] = answer.unauthenticated
    if answer.refusal is not None and not answer.unauthenticated:
        resp[REFUSED] = answer.refusal.code
    return resp


def peer_transport(request: web.Request) -> PeerTransport:
    """How this peer request came (docs/protocol.md §6.6 step 3a): the key of the TLS
    client certificate of its connection, if any."""
    transport = request.transport
    return PeerTransport.of(None if transport is None else transport.get_extra_info("ssl_object"))
