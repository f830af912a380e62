"""Sessions of the web application and the gate every page passes (docs/webapp.md).

``NodeSessionStorage`` is aiohttp-session's storage over the node's SQLite: the cookie
holds a random id, the row (node/store/web_sessions.py) who it is, and it is read and
written only through ``ctx.read`` / ``ctx.write`` (node/flows/signin.py), never on the
event loop. ``gate`` then decides, per request: signed in or sent to the sign-in page,
the form token of a POST, and the role, by the same ``permits`` as the local API.
Bearer tokens mean nothing here: only the session cookie signs a browser in.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_session import AbstractStorage, Session, get_session

from node.flows import signin
from node.flows.context import NodeContext
from node.http.plumbing import Handler, permits
from node.http.webapp import csrf, forms
from node.http.webapp.common import FORM_TOKEN, SESSION_ENDED, WEB_SESSION, is_public, page
from node.http.webapp.signin import EXPIRED

COOKIE = "vhnode_sessie"
COOKIE_PATH = "/app/"
SIGN_IN_PATH = "/app/aanmelden"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def secure_cookies(ctx: NodeContext) -> bool:
    """``[web] secure_cookie``; unset: Secure when the endpoint is https and the node has
    no [tls] — the web app behind the TLS-terminating proxy of that endpoint. A node with
    [tls] serves the web app on its plain loopback listener (the peer listener serves
    /peer/ only), where a Secure cookie would never come back."""
    configured = ctx.cfg.web.secure_cookie
    if configured is not None:
        return configured
    return ctx.cfg.endpoint.scheme == "https" and ctx.cfg.tls is None


class NodeSessionStorage(AbstractStorage):
    """Server-side sessions in the node's database; the browser holds only an id."""

    def __init__(self, ctx: NodeContext) -> None:
        super().__init__(
            cookie_name=COOKIE,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=secure_cookies(ctx),
            max_age=None,  # a browser session's cookie: gone when the browser closes
        )
        self.ctx = ctx

    async def load_session(self, request: web.Request) -> Session:
        session_id = self.load_cookie(request)
        if not session_id or len(session_id) > 100:
            return Session(None, data=None, new=True, max_age=None)
        state = await signin.current_session(self.ctx, session_id)
        if state.session is None:
            request[SESSION_ENDED] = state.expired
            stale = Session(None, data=None, new=True, max_age=None)
            stale.invalidate()  # the browser's cookie names nothing: remove it
            return stale
        request[WEB_SESSION] = state.session
        return Session(
            session_id,
            data={"session": {"user": state.session.user}},
            new=False,
            max_age=None,
        )

    async def save_session(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        # The row is written by the sign-in flow itself (with its log entry); here only
        # the cookie follows what happened to the session.
        if session.empty or session.identity is None:
            self.save_cookie(response, "", max_age=None)
        else:
            self.save_cookie(response, str(session.identity), max_age=None)


def make_gate(ctx: NodeContext) -> Middleware:
    form_key = ctx.keys.web_form_key()
    secure = secure_cookies(ctx)

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        session = await get_session(request)
        signed_in = request.get(WEB_SESSION)
        new_pre = None
        if signed_in is not None and session.identity is not None:
            binding = "session|" + str(session.identity)
        else:
            pre, is_new = csrf.pre_session(request)
            binding, new_pre = "pre|" + pre, (pre if is_new else None)
        request[FORM_TOKEN] = csrf.token(form_key, binding)
        response = await _decide(request, handler, signed_in is not None, form_key, binding)
        if new_pre is not None:
            response.set_cookie(
                csrf.PRE_SESSION_COOKIE,
                new_pre,
                path=COOKIE_PATH,
                httponly=True,
                samesite="Strict",
                secure=secure,
            )
        return response

    return gate


async def _decide(
    request: web.Request, handler: Handler, signed_in: bool, form_key: bytes, binding: str
) -> web.StreamResponse:
    route = request.match_info
    if route.http_exception is not None:
        raise route.http_exception  # an unknown page is 404 for everyone alike
    target = route.handler
    if isinstance(route.route.resource, web.StaticResource):
        return await handler(request)  # the stylesheets, also for the sign-in page
    if not is_public(target) and not signed_in:
        if request.get(SESSION_ENDED) and request.method in SAFE_METHODS:
            # Said here, where the browser's cookie showed it: after a redirect it is gone.
            return page(
                request,
                "aanmelden.html",
                {"notice": EXPIRED, "name": ""},
                status=401,
            )
        if request.method in SAFE_METHODS:
            raise web.HTTPSeeOther(SIGN_IN_PATH)
        raise web.HTTPUnauthorized(text="niet aangemeld")
    if request.method not in SAFE_METHODS:
        form = await forms.form(request)  # urlencoded or multipart (a file upload)
        if not csrf.valid(form_key, binding, form.get(csrf.FIELD)):
            raise web.HTTPForbidden(text="formulier_verlopen")
    session = request.get(WEB_SESSION)
    if session is not None and not is_public(target) and not permits(session.role, target):
        raise web.HTTPForbidden(text="rol_niet_toegestaan")
    return await handler(request)
