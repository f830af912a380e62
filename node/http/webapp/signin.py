"""Signing in and out (docs/webapp.md "Signing in").

One form: name, password and the six-digit code of the authenticator app. Whatever
failed, the page says the same (a name is not confirmed to exist); the log says what it
was (node/flows/signin.py). A sign-in starts a fresh session: an id that was in the
browser before is never promoted (session fixation).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session, new_session

from node.flows import signin
from node.http.plumbing import roles
from node.http.webapp.common import SESSION_ENDED, WEB_SESSION, ctx_of, page, public

START_PATH = "/app/"
EXPIRED = "Uw sessie is verlopen. Meld u opnieuw aan."
FAILED = (
    "Aanmelden is niet gelukt. Controleer uw gebruikersnaam, wachtwoord en code. Na "
    "herhaalde mislukte pogingen wordt uw account tijdelijk geblokkeerd."
)


@public
async def sign_in_form(request: web.Request) -> web.StreamResponse:
    if request.get(WEB_SESSION) is not None:
        raise web.HTTPSeeOther(START_PATH)
    notice = None
    if request.get(SESSION_ENDED):
        notice = EXPIRED
    return page(request, "aanmelden.html", {"notice": notice, "name": ""})


@public
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("gebruikersnaam", ""))[:64]
    password = str(form.get("wachtwoord", ""))[:1024]
    code = str(form.get("code", ""))[:16]
    errors = []
    if not name.strip():
        errors.append(("gebruikersnaam", "Vul uw gebruikersnaam in."))
    if not password:
        errors.append(("wachtwoord", "Vul uw wachtwoord in."))
    if not code.strip():
        errors.append(("code", "Vul de code uit uw authenticator-app in."))
    if errors:
        return page(request, "aanmelden.html", {"errors": errors, "name": name}, status=400)
    try:
        signed = await signin.sign_in(ctx_of(request), name, password, code)
    except signin.SignInFailed:
        return page(
            request,
            "aanmelden.html",
            {"errors": [("gebruikersnaam", FAILED)], "name": name},
            status=401,
        )
    session = await new_session(request)
    session.set_new_identity(signed.session_id)
    session["user"] = signed.user
    raise web.HTTPSeeOther(START_PATH)


@roles("coordinator", "liaison", "privacy_officer", "source")
async def sign_out(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    if session.identity is not None:
        await signin.sign_out(ctx_of(request), str(session.identity))
    session.invalidate()
    return page(request, "afgemeld.html", {"user": None})
