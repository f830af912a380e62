"""The web application, built as an aiohttp sub-application mounted at ``/app/``.

Middlewares, outermost first: security headers (node/http/webapp/headers.py) on every
response; errors as Dutch pages, never a traceback; aiohttp-session over the node's
SQLite; the gate (signed in, form token, role: node/http/webapp/sessions.py).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import aiohttp_jinja2
import aiohttp_session
import jinja2
import structlog
from aiohttp import web

from node.errors import VhnodeError
from node.flows.context import NodeContext
from node.http.plumbing import CTX, Handler, roles
from node.http.statuses import http_status
from node.http.webapp import (
    beheer,
    cases,
    coordinator,
    details,
    liaison,
    privacy_officer,
    signin,
)
from node.http.webapp.common import MENU, MENU_ITEMS, ROLE_NAMES, MenuItem, page
from node.http.webapp.headers import security_headers
from node.http.webapp.sessions import NodeSessionStorage, make_gate

logger = structlog.get_logger("vhnode.webapp")

PREFIX = "/app"
PACKAGE = "node.http.webapp"

# What each kind of refusal tells the person who met it.
_FORBIDDEN = {
    "formulier_verlopen": (
        "Formulier verlopen",
        "Het formulier is verlopen of kwam niet van deze pagina. Laad de pagina opnieuw "
        "en probeer het nog eens.",
    ),
    "rol_niet_toegestaan": (
        "Geen toegang",
        "Uw rol geeft geen toegang tot deze pagina.",
    ),
}
_STATUS_PAGES = {
    401: ("Niet aangemeld", "Meld u eerst aan."),
    404: ("Pagina niet gevonden", "Deze pagina bestaat niet."),
    405: ("Niet toegestaan", "Deze pagina kan zo niet worden gebruikt."),
}


@roles("coordinator", "liaison", "privacy_officer", "source")
async def start(request: web.Request) -> web.StreamResponse:
    return page(request, "start.html", {"roles": ROLE_NAMES})


def _error_page(request: web.Request, status: int, title: str, text: str) -> web.Response:
    return page(request, "fout.html", {"title": title, "text": text, "status": status}, status)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a page in Dutch with its status; nothing half-done shows."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        if e.status == 403:
            title, text = _FORBIDDEN.get(e.text or "", _FORBIDDEN["rol_niet_toegestaan"])
        else:
            title, text = _STATUS_PAGES.get(
                e.status, ("Fout", "Het verzoek kon niet worden verwerkt.")
            )
        resp = _error_page(request, e.status, title, text)
        if "Allow" in e.headers:
            resp.headers["Allow"] = e.headers["Allow"]
        return resp
    except VhnodeError as e:
        logger.info("page_failed", code=e.code)
        return _error_page(
            request, http_status(e), "Niet gelukt", "Het verzoek kon niet worden uitgevoerd."
        )
    except Exception:  # the one place an unexpected error is caught: log it, leak nothing
        logger.exception("page_unhandled_error")
        return _error_page(
            request, 500, "Er ging iets mis", "De node kon dit verzoek niet afhandelen."
        )


def static_dir() -> Path:
    return Path(str(files(PACKAGE).joinpath("static")))


def make_webapp(ctx: NodeContext) -> web.Application:
    app = web.Application(
        middlewares=[
            security_headers,
            error_pages,
            aiohttp_session.session_middleware(NodeSessionStorage(ctx)),
            make_gate(ctx),
        ]
    )
    app[CTX] = ctx
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader(PACKAGE, "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_static("/static", static_dir(), follow_symlinks=False)
    app.router.add_routes(
        [
            web.get("/", start),
            web.get("/aanmelden", signin.sign_in_form),
            web.post("/aanmelden", signin.sign_in),
            web.post("/afmelden", signin.sign_out),
            web.get("/bevraging", coordinator.new_round_form),
            web.post("/bevraging", coordinator.new_round),
            web.get("/zaak", cases.case_form),
            web.post("/zaak", cases.case_page),
            web.post("/details/vragen", details.choose),
            web.post("/details/versturen", details.send),
            web.get("/details", details.detail_requests),
            web.get("/details/{trace_id}", details.detail_request),
            web.post("/details/{trace_id}/ophalen", details.fetch_again),
            web.post("/details/{trace_id}/verversen", details.set_reloading),
            web.get("/inbox", liaison.inbox),
            web.post("/inbox", liaison.inbox_filtered),
            web.post("/inbox/verzoek", liaison.one_request),
            web.post("/inbox/besluit", liaison.decide),
            web.post("/inbox/gelezen", liaison.acknowledge),
            web.get("/toezicht", privacy_officer.dashboard),
            web.post("/toezicht/controleren", privacy_officer.verify_now),
            web.post("/toezicht/kruiscontrole", privacy_officer.cross_check_now),
            web.get("/toezicht/rapport", privacy_officer.report_form),
            web.post("/toezicht/rapport", privacy_officer.report_page),
            web.post("/toezicht/rapport/download", privacy_officer.report_download),
            web.get("/inzage", privacy_officer.inzage_form),
            web.post("/inzage", privacy_officer.inzage_answer),
            web.get("/beheer", beheer.status),
            web.get("/beheer/partners", beheer.partners),
            web.post("/beheer/partners/kaart", beheer.card_upload),
            web.post("/beheer/partners/toevoegen", beheer.card_add),
            web.post("/beheer/partners/intrekken", beheer.partner_revoke),
            web.get("/beheer/convenanten", beheer.convenant_list),
            web.post("/beheer/convenanten/installeren", beheer.convenant_install),
            web.get("/beheer/gebruikers", beheer.user_list),
            web.post("/beheer/gebruikers/toevoegen", beheer.user_add),
            web.post("/beheer/gebruikers/intrekken", beheer.user_revoke),
            web.post("/beheer/gebruikers/inloggegevens", beheer.user_credentials),
        ]
    )
    app[MENU_ITEMS] = _menu_items(app)
    return app


def _menu_items(app: web.Application) -> tuple[MenuItem, ...]:
    pages = {
        route.resource.canonical: route.handler
        for route in app.router.routes()
        if route.method == "GET" and route.resource is not None
    }
    return tuple(MenuItem(PREFIX + path, label, text, pages[path]) for path, label, text in MENU)
