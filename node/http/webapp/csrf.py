"""CSRF tokens on every form of the web application (docs/webapp.md "Forms").

A token is HMAC-SHA-256 under the node's form key of what the request is bound to: the
session id when someone is signed in, else a random pre-session cookie. A form posted
from another site carries no valid token (it cannot read ours), and SameSite=Strict
keeps our cookies off such a post besides. Tokens need no server state, so anonymous
visitors cost the database nothing.
"""

from __future__ import annotations

import hmac
import secrets
from hashlib import sha256

from aiohttp import web

FIELD = "form_token"
PRE_SESSION_COOKIE = "vhnode_formulier"


def token(key: bytes, binding: str) -> str:
    return hmac.new(key, b"vhnode/v1 form|" + binding.encode(), sha256).hexdigest()


def valid(key: bytes, binding: str, offered: object) -> bool:
    return isinstance(offered, str) and hmac.compare_digest(token(key, binding), offered)


def pre_session(request: web.Request) -> tuple[str, bool]:
    """The pre-session binding of an anonymous visitor, and whether it is new (to set)."""
    value = request.cookies.get(PRE_SESSION_COOKIE, "")
    if 20 <= len(value) <= 100:
        return value, False
    return secrets.token_urlsafe(32), True
