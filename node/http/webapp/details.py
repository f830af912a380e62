"""Detail after a hit (docs/webapp.md "Vraag details", "Detailverzoek"): choose the
categories, see per category what became of them, read a delivered text.

The choice form offers exactly the categories §7.4 lets the partner give this node for
the round's purpose and the user's role (``detail_asking.detail_offer``, the rules of
node/policy/detail.py the partner itself runs), each with the convenant's rule in words;
sending runs ``ask_details``, the flow POST /api/v1/details runs. The request page reads
through ``detail_asking.view``, as GET /api/v1/details/{trace_id} does, so every text
shown is shown only to the roles its rule names and every view is logged
(``detail.viewed``); "Nu opnieuw ophalen" runs ``poll``.

A hit is named in the form body by round trace id, partner and subject index, a detail
request by its trace id: random numbers, never an identifier. The request page is a GET
(``/app/details/{trace_id}``) so it can reload itself while something is pending (no
script: the HTTP ``Refresh`` header, which browsers process as ``<meta
http-equiv="refresh">``; CSP governs neither) and be bookmarked; a control ahead of
it turns the reloading off (WCAG 2.2.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.errors import (
    Forbidden,
    InputError,
    Refusal,
    UnknownDetailRequest,
    UnknownRound,
    VhnodeError,
)
from node.flows import detail_asking as requester
from node.flows.context import NodeContext
from node.http.plumbing import SESSION, roles
from node.http.webapp.common import WEB_SESSION, ctx_of, page
from node.http.webapp.sessions import COOKIE_PATH, secure_cookies
from node.http.webapp.words import (
    REASON_WORDS,
    ROLE_WORDS,
    STATUS_MEANING,
    STATUS_WORDS,
    reason_words,
    rule_words,
)
from node.protocol.convenant import Convenant
from node.protocol.detail import MAX_CATEGORIES
from node.protocol.models import NODE_ID_PATTERN, rfc3339

ASKERS = ("coordinator", "liaison", "privacy_officer")  # as the API's detail routes
MAX_SUBJECT = 63  # a round asks at most 64 subjects
RECENT = 100  # detail requests listed at once; the API lists them all
# Seconds between the request page's own reloads while a category is pending: the
# partner's decision notice makes this node fetch the answer at once (§14.6), the page
# only has to look again. A module constant, so a test can shorten it.
REFRESH_SECONDS = 30
# A reload every half minute disturbs a screen reader (it starts at the top again):
# WCAG 2.2.1 asks that a person can turn it off before it happens. The choice is kept
# in this cookie (no personal data; gone when the browser closes).
REFRESH_COOKIE = "vhnode_verversen"
_TRACE = re.compile("[0-9a-f]{32}")

# What becomes of a category, for the person who asked (docs/protocol.md §14.3.1).
CATEGORY_WORDS = {
    "delivered": "Geleverd",
    "pending": "In behandeling",
    "denied": "Geweigerd",
    "unavailable": "Niet beschikbaar",
    "unanswered": "Nog geen antwoord",
    "purged": "Verwijderd",
}
CATEGORY_MEANING = {
    "delivered": "De partner heeft de tekst gegeven. Deze node bewaart hem versleuteld tot "
    "het einde van de bewaartermijn en toont hem alleen aan de rollen die de regel noemt.",
    "pending": "De contactpersoon van de partner moet nog besluiten. Deze pagina ververst "
    "zichzelf; het besluit wordt opgehaald zodra de partner het meldt.",
    "denied": "De partner geeft deze categorie niet; de reden staat erbij.",
    "unavailable": "De partner mocht het geven, maar heeft er niets over (of het bronsysteem "
    "gaf het niet); de reden staat erbij.",
    "unanswered": "Er kwam (nog) geen ondertekend antwoord van de partner. Haal het "
    "opnieuw op; een categorie wordt nooit als geweigerd beschouwd omdat de partner "
    "niet antwoordde.",
    "purged": "De bewaartermijn is verstreken en de tekst is gewist; het logboek houdt "
    "vast dat hij er was.",
}
# Why a partner refused a whole detail request (§8.2, §14.3), beside the round's reasons.
REQUEST_REASON_WORDS = REASON_WORDS | {
    "unknown_round": "de partner kent deze bevraging niet (meer)",
    "round_purpose_mismatch": "het doel verschilt van dat van de bevraging",
    "unknown_subject": "de partner kent deze betrokkene niet (meer)",
    "bad_hit_proof": "het bewijs van de hit klopt niet",
    "duplicate_request": "dit verzoek is al eerder ontvangen",
    "unknown_request": "de partner kent dit detailverzoek niet",
}


@dataclass(frozen=True)
class Hit:
    round_trace_id: str
    partner: str
    subject: int

    def fields(self) -> dict[str, str]:
        return {
            "ronde": self.round_trace_id,
            "partner": self.partner,
            "betrokkene": str(self.subject),
        }


def _hit_of(data: MultiDictProxy[Any]) -> Hit | None:
    """The hit a form names, or None when the form names none."""
    round_trace_id = str(data.get("ronde", ""))
    partner = str(data.get("partner", ""))
    subject = str(data.get("betrokkene", ""))
    if not (
        _TRACE.fullmatch(round_trace_id)
        and re.fullmatch(NODE_ID_PATTERN, partner)
        and subject.isascii()
        and subject.isdigit()
        and int(subject) <= MAX_SUBJECT
    ):
        return None
    return Hit(round_trace_id, partner, int(subject))


def _offer_refused(ctx: NodeContext, e: VhnodeError) -> str:
    """Why no detail can be asked for this hit, in words."""
    if isinstance(e, Forbidden):
        return "Uw rol mag geen details vragen."
    if isinstance(e, UnknownRound):
        hours = ctx.cfg.details.hit_validity_hours
        return (
            "Voor deze betrokkene en partner is hier geen bruikbare hit (meer): de hits "
            f"van een bevraging kunnen {hours:g} uur worden gebruikt. Doe een nieuwe bevraging."
        )
    words = REQUEST_REASON_WORDS.get(e.code) or reason_words(e.code)
    return f"Deze node kan hierover nu geen details vragen: {words}."


def _offer_view(ctx: NodeContext, offer: requester.DetailOffer, hit: Hit) -> dict[str, Any]:
    conv = offer.conv
    catalogue = {c.id: c.description for c in conv.categories}
    party = conv.party(hit.partner)
    purposes = {p.id: p.description for p in conv.purposes}
    return {
        "title": conv.title,
        "version": conv.version,
        "purpose": purposes.get(offer.hit.purpose, offer.hit.purpose),
        "case_ref": offer.hit.case_ref,
        "asked_at": rfc3339(offer.hit.asked_at),
        "expires_at": rfc3339(offer.hit.expires_at),
        "organisation": party.organisation if party else hit.partner,
        "categories": [
            {
                "id": d.category,
                "description": catalogue.get(d.category, d.category),
                "outcome": d.outcome,
                "rule_words": rule_words(conv, hit.partner, d.category),
                "reason": reason_words(d.reason),
            }
            for d in offer.decisions
        ],
    }


async def _choice_page(
    request: web.Request,
    hit: Hit | None,
    *,
    chosen: list[str] | None = None,
    errors: list[tuple[str, str]] | None = None,
    status: int = 200,
) -> web.Response:
    """The category choice for ``hit``; when no detail can be asked, why not."""
    ctx, session = ctx_of(request), request[WEB_SESSION]
    errors = list(errors or [])
    view = None
    if hit is None:
        errors.append(("categorieen", "Kies eerst een hit uit de uitkomst van een bevraging."))
        status = 400
    else:
        try:
            offer = await ctx.read(
                lambda: requester.detail_offer(
                    ctx, hit.round_trace_id, hit.partner, hit.subject, session.role
                )
            )
        except (Refusal, Forbidden) as e:
            errors.append(("categorieen", _offer_refused(ctx, e)))
            status = max(status, 403 if isinstance(e, Forbidden) else 409)
        else:
            view = _offer_view(ctx, offer, hit)
    return page(
        request,
        "detail_vragen.html",
        {
            "hit": hit,
            "offer": view,
            "chosen": chosen or [],
            "errors": errors,
            "role_words": ROLE_WORDS.get(session.role, session.role),
        },
        status,
    )


@roles(*ASKERS)
async def choose(request: web.Request) -> web.StreamResponse:
    """From a hit in a result grid: the categories that may be asked, to tick."""
    return await _choice_page(request, _hit_of(await request.post()))


@roles(*ASKERS)
async def send(request: web.Request) -> web.StreamResponse:
    """Ask the ticked categories (``ask_details``), then the request's page. A category
    the rules would refuse, or nothing ticked, gives the form back and sends nothing."""
    data = await request.post()
    hit = _hit_of(data)
    chosen = [str(c) for c in data.getall("categorie", [])]
    if hit is None:
        return await _choice_page(request, None)
    ctx, session = ctx_of(request), request[WEB_SESSION]
    try:
        offer = await ctx.read(
            lambda: requester.detail_offer(
                ctx, hit.round_trace_id, hit.partner, hit.subject, session.role
            )
        )
    except (Refusal, Forbidden):
        return await _choice_page(request, hit, chosen=chosen)  # says why
    decisions = {d.category: d for d in offer.decisions}
    if not chosen:
        return await _choice_page(
            request,
            hit,
            errors=[("categorieen", "Vink ten minste één categorie aan.")],
            status=400,
        )
    if len(chosen) > MAX_CATEGORIES or len(set(chosen)) != len(chosen):
        return await _choice_page(
            request,
            hit,
            chosen=chosen,
            errors=[("categorieen", "Vink elke categorie hoogstens één keer aan.")],
            status=400,
        )
    refused = []
    for c in chosen:
        d = decisions.get(c)
        if d is None:
            refused.append(f"{c[:64]}: deze categorie staat niet in het convenant.")
        elif d.outcome == "deny":
            refused.append(f"{c}: {reason_words(d.reason)}.")
    if refused:
        return await _choice_page(
            request,
            hit,
            chosen=[c for c in chosen if c in decisions],
            errors=[("categorieen", "U kunt dit niet vragen. " + r) for r in refused],
            status=403,
        )
    try:
        result = await requester.ask_details(
            ctx,
            request.config_dict[SESSION],
            round_trace_id=hit.round_trace_id,
            partner=hit.partner,
            subject=hit.subject,
            categories=chosen,
            purpose=offer.hit.purpose,
            case_ref=None,  # the round's
            user=session.user,
            role=session.role,
        )
    except (Refusal, Forbidden, InputError) as e:
        # Changed between the form and now (hits expired, the convenant ended, a party
        # withdrew): nothing was sent.
        return await _choice_page(
            request,
            hit,
            chosen=chosen,
            errors=[("categorieen", _offer_refused(ctx, e))],
            status=409,
        )
    raise web.HTTPSeeOther(f"/app/details/{result['trace_id']}")


# --- the request page -------------------------------------------------------------------


def _trace_of(request: web.Request) -> str | None:
    trace_id = request.match_info.get("trace_id", "")
    return trace_id if _TRACE.fullmatch(trace_id) else None


def _state(c: dict[str, Any]) -> str:
    if c["purged_at"] is not None:
        return "purged"
    return str(c["status"]) if c["status"] is not None else "unanswered"


def _text_message(c: dict[str, Any], role: str, now: str) -> str | None:
    """Why a delivered category's text is not shown to ``role``, or None (it is shown)."""
    if c["visible"] or c["status"] != "delivered" or c["purged_at"] is not None:
        return None
    roles = c["recipient_roles"] or []
    if role not in roles:
        names = ", ".join(ROLE_WORDS.get(r, r) for r in roles) or "geen enkele rol"
        return (
            f"U ziet deze tekst niet: het convenant geeft hem alleen aan de rol {names}, "
            f"niet aan uw rol ({ROLE_WORDS.get(role, role)})."
        )
    if c["retain_until"] is None or c["retain_until"] <= now:
        return "De bewaartermijn is verstreken; de tekst wordt gewist."
    return "De tekst is hier niet (leesbaar) bewaard; meld het aan de beheerder."


def request_view(ctx: NodeContext, doc: dict[str, Any], role: str) -> dict[str, Any]:
    """The flow's answer with what a person needs beside it: convenant title, purpose and
    category descriptions, each category's state in words and why a text is not shown."""
    inst = ctx.trust().version(str(doc["convenant_id"]), int(doc["convenant_version"]))
    conv: Convenant | None = inst.convenant if inst else None
    catalogue = {c.id: c.description for c in conv.categories} if conv else {}
    purposes = {p.id: p.description for p in conv.purposes} if conv else {}
    now = rfc3339(ctx.clock.now())
    categories = []
    for c in doc["categories"]:
        state = _state(c)
        reason = None
        if state == "denied" and c["reason"] == "denied_by_liaison":
            reason = f"reden van de contactpersoon: {c['reason_detail'] or 'geen reden gegeven'}"
        elif state in ("denied", "unavailable"):
            reason = reason_words(c["reason"])
        categories.append(
            c
            | {
                "description": catalogue.get(c["category"], c["category"]),
                "state": state,
                "words": CATEGORY_WORDS[state],
                "reason_words": reason,
                "message": _text_message(c, role, now),
                "rule_words": rule_words(conv, str(doc["partner"]), c["category"]),
            }
        )
    outcome = str(doc["outcome"])
    outcome_words = None
    if outcome == "refused":
        outcome_words = "De partner weigerde het hele verzoek: " + str(
            REQUEST_REASON_WORDS.get(str(doc["reason"]), doc["reason"])
        )
    elif outcome in STATUS_WORDS:
        outcome_words = f"{STATUS_WORDS[outcome]}: {STATUS_MEANING[outcome]}"
    return doc | {
        "title": conv.title if conv else doc["convenant_id"],
        "purpose_words": purposes.get(str(doc["purpose"]), doc["purpose"]),
        "categories": categories,
        "outcome_words": outcome_words,
        "pending": any(c["state"] == "pending" for c in categories),
        "now": now,
    }


async def _request_page(request: web.Request, trace_id: str | None) -> web.Response:
    ctx, session = ctx_of(request), request[WEB_SESSION]
    if trace_id is None:
        return page(
            request,
            "fout.html",
            {"title": "Geen detailverzoek", "text": "Dit is geen trace-id.", "status": 400},
            400,
        )
    try:
        # A read that logs who read which text (detail.viewed): a write job, as the API.
        doc = await ctx.write(lambda: requester.view(ctx, trace_id, session.user, session.role))
    except UnknownDetailRequest:
        return page(
            request,
            "fout.html",
            {
                "title": "Detailverzoek niet gevonden",
                "text": "Deze node heeft geen detailverzoek met dit trace-id verstuurd.",
                "status": 404,
            },
            404,
        )
    view = request_view(ctx, doc, session.role)
    reloading = bool(doc["open"]) and request.cookies.get(REFRESH_COOKIE) != "uit"
    response = page(
        request,
        "detailverzoek.html",
        {
            "req": view,
            "refresh": REFRESH_SECONDS,
            "reloading": reloading,
            "meanings": [(CATEGORY_WORDS[s], CATEGORY_MEANING[s]) for s in CATEGORY_WORDS],
        },
    )
    if reloading:
        # The header rather than the <meta> element: the same reload (HTML's "Refresh"
        # processing), and the page's markup says in words what happens and how to stop.
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response


@roles(*ASKERS)
async def detail_request(request: web.Request) -> web.StreamResponse:
    return await _request_page(request, _trace_of(request))


@roles(*ASKERS)
async def fetch_again(request: web.Request) -> web.StreamResponse:
    """ "Nu opnieuw ophalen": ask the partner for the current state (``poll``), then the
    request's page again (a redirect, so reloading it does not ask again)."""
    trace_id = _trace_of(request)
    if trace_id is None:
        return await _request_page(request, None)
    ctx = ctx_of(request)
    try:
        await requester.poll(ctx, request.config_dict[SESSION], trace_id, request[WEB_SESSION].user)
    except UnknownDetailRequest:
        return await _request_page(request, trace_id)  # its 404 page
    raise web.HTTPSeeOther(f"/app/details/{trace_id}")


@roles(*ASKERS)
async def set_reloading(request: web.Request) -> web.StreamResponse:
    """Turn the request pages' own reloading off or on again, then the page again."""
    trace_id = _trace_of(request)
    if trace_id is None:
        return await _request_page(request, None)
    on = str((await request.post()).get("verversen", "")) == "aan"
    response = web.HTTPSeeOther(f"/app/details/{trace_id}")
    if on:
        response.del_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    else:
        response.set_cookie(
            REFRESH_COOKIE,
            "uit",
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=secure_cookies(ctx_of(request)),
        )
    raise response


def _summary(categories: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for c in categories:
        state = _state(c)
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(
        f"{n} {CATEGORY_WORDS[s].lower()}" for s in CATEGORY_WORDS if (n := counts.get(s))
    )


def list_view_of(ctx: NodeContext, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Detail requests as the flow gives them, each with its state in a few words."""
    out = []
    for doc in docs:
        inst = ctx.trust().version(str(doc["convenant_id"]), int(doc["convenant_version"]))
        conv = inst.convenant if inst else None
        purposes = {p.id: p.description for p in conv.purposes} if conv else {}
        out.append(
            doc
            | {
                "title": conv.title if conv else doc["convenant_id"],
                "purpose_words": purposes.get(str(doc["purpose"]), doc["purpose"]),
                "summary": _summary(doc["categories"]),
            }
        )
    return out


def list_view(ctx: NodeContext) -> list[dict[str, Any]]:
    """This node's newest detail requests."""
    return list_view_of(ctx, requester.recent_asks(ctx, RECENT))


@roles(*ASKERS)
async def detail_requests(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    asks = await ctx.read(lambda: list_view(ctx))
    return page(request, "detailverzoeken.html", {"asks": asks, "recent": RECENT})
