"""What every page of the web application shares: request keys, public marks, rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from node.flows.context import NodeContext
from node.http.plumbing import CTX, Handler, permits
from node.store.web_sessions import WebSession

# The signed-in user's session (absent: nobody is signed in).
WEB_SESSION = web.RequestKey("web_session", WebSession)
# The CSRF token of this request's forms (node/http/webapp/csrf.py).
FORM_TOKEN = web.RequestKey("form_token", str)
# Set when the request came with a session that a timeout had just ended.
SESSION_ENDED = web.RequestKey("session_ended", bool)

ROLE_NAMES = {
    "admin": "beheerder",
    "source": "bronsysteem",
    "coordinator": "coördinator",
    "liaison": "contactpersoon",
    "privacy_officer": "functionaris gegevensbescherming",
    "monitor": "monitoring",
}

# The menu: every page a role starts from, in the header and on the start page, in this
# order. A page module's entry goes here; who sees it is decided by the role marked on
# the GET handler of its path (node.http.plumbing.permits, looked up in make_webapp), so
# the menu never offers a page the gate would refuse.
MENU: tuple[tuple[str, str, str], ...] = (
    # (path under /app, label, what it is for)
    ("/bevraging", "Nieuwe bevraging", "Vraag partners of zij een persoon, gezin of adres kennen."),
    ("/zaak", "Zaak opzoeken", "Alle bevragingen en detailverzoeken onder één zaaknummer."),
    (
        "/details",
        "Detailverzoeken",
        "De details die deze node na een hit heeft gevraagd, en wat ervan is geworden.",
    ),
    ("/inbox", "Inbox", "Besluit over detailverzoeken en lees de meldingen van bevragingen."),
    ("/toezicht", "Toezicht", "Controleer het logboek en de logboeken van de partners."),
    ("/toezicht/rapport", "Rapport", "Wie vroeg wat, onder welk convenant, en wat opvalt."),
    ("/inzage", "Inzageverzoek", "Beantwoord het inzageverzoek van een betrokkene (AVG art. 15)."),
    (
        "/beheer",
        "Beheer",
        "De status van de node, de kaarten van partners, convenanten en gebruikers.",
    ),
)


@dataclass(frozen=True)
class MenuItem:
    href: str
    label: str
    text: str
    handler: object


# The menu with each entry's handler, for the app (set by make_webapp).
MENU_ITEMS = web.AppKey("menu_items", tuple[MenuItem, ...])

_PUBLIC: set[str] = set()


def _key(handler: object) -> str:
    return f"{getattr(handler, '__module__', '')}.{getattr(handler, '__qualname__', '')}"


def public(handler: Handler) -> Handler:
    """Mark a page that needs no sign-in (the sign-in page itself)."""
    _PUBLIC.add(_key(handler))
    return handler


def is_public(handler: object) -> bool:
    return _key(handler) in _PUBLIC


def ctx_of(request: web.Request) -> NodeContext:
    return request.config_dict[CTX]


def page(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> web.Response:
    """``template`` rendered with what the layout needs: the user, the node, the form token."""
    ctx = ctx_of(request)
    session = request.get(WEB_SESSION)
    menu = [
        m for m in request.config_dict[MENU_ITEMS] if session and permits(session.role, m.handler)
    ]
    values: dict[str, Any] = {
        "user": session,
        "menu": menu,
        "role_name": ROLE_NAMES.get(session.role, session.role) if session else None,
        "organisation": ctx.cfg.organisation,
        "node_id": ctx.node_id,
        "form_token": request.get(FORM_TOKEN, ""),
        "errors": [],
        "notice": None,
    }
    values.update(context or {})
    return aiohttp_jinja2.render_template(template, request, values, status=status)
