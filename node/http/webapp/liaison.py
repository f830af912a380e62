"""The liaison's inbox (docs/webapp.md "Inbox"): pending detail requests to approve or
deny, with the convenant's rule beside each category, and hit notices to acknowledge.

It calls what the local API calls (``detail_answering.inbox``, ``decide_pending``,
``acknowledge_notices``), so a decision here is the API's decision: all or nothing, the
§7.4 rules run again on approval, logged, and the requester sent a decision notice. A
request is named in the form body by requester and trace id (no identifier of a person);
nothing is read from the URL.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from node.errors import AlreadyDecided, InputError, UnknownDetailRequest, VhnodeError
from node.flows import detail_answering as provider
from node.flows.context import NodeContext
from node.http.plumbing import SESSION, roles
from node.http.webapp.common import WEB_SESSION, ctx_of, page
from node.http.webapp.words import rule_words
from node.protocol.convenant import ID_PATTERN
from node.store.details import NoticeFilter

NOTICE_PAGE = 100  # open notices shown at once; the API pages further
REASON_MAX = 500  # the API's bound on a denial's reason

STATUS_WORDS = {
    "pending": "Wacht op uw besluit",
    "delivered": "Goedgekeurd",
    "denied": "Geweigerd",
    "unavailable": "Niet beschikbaar",
}


def inbox_view(ctx: NodeContext) -> dict[str, Any]:
    """The inbox with what a person needs beside the API's answer: the convenant's title,
    the purpose and category descriptions, and each category's rule in words."""
    doc = provider.inbox(ctx, NoticeFilter(state="open"), limit=NOTICE_PAGE)
    for req in [*doc["requests"], *doc["hit_notices"]]:
        inst = ctx.trust().version(str(req["convenant_id"]), int(req["convenant_version"]))
        conv = inst.convenant if inst else None
        req["title"] = conv.title if conv else req["convenant_id"]
        purposes = {p.id: p.description for p in conv.purposes} if conv else {}
        req["purpose_words"] = purposes.get(str(req["purpose"]), req["purpose"])
        catalogue = {c.id: c.description for c in conv.categories} if conv else {}
        for c in req.get("categories", ()):
            c["description"] = catalogue.get(c["category"], c["category"])
            c["words"] = STATUS_WORDS.get(c["status"], c["status"])
            c["rule_words"] = rule_words(conv, ctx.node_id, c["category"])
        req["pending"] = [
            c["category"] for c in req.get("categories", ()) if c["status"] == "pending"
        ]
    return doc


async def _inbox_page(
    request: web.Request,
    *,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    ctx = ctx_of(request)
    doc = await ctx.read(lambda: inbox_view(ctx))
    return page(
        request,
        "inbox.html",
        {"inbox": doc, "errors": errors or [], "notice": notice, "reason_max": REASON_MAX},
        status,
    )


@roles("liaison")
async def inbox(request: web.Request) -> web.StreamResponse:
    return await _inbox_page(request)


def _request_of(value: object) -> tuple[str, str] | None:
    """``requester|trace_id`` from the form, or None when it is not one."""
    requester, _, trace_id = str(value or "").partition("|")
    if re.fullmatch(ID_PATTERN, requester) and re.fullmatch("[0-9a-f]{32}", trace_id):
        return requester, trace_id
    return None


@roles("liaison")
async def decide(request: web.Request) -> web.StreamResponse:
    """Approve all pending categories, approve or deny the ones ticked (a denial with a
    reason). Bad input gives the inbox back with the reason and changes nothing."""
    data = await request.post()
    named = _request_of(data.get("verzoek"))
    action = str(data.get("actie", ""))
    chosen = [str(c) for c in data.getall("categorie", [])]
    reason = str(data.get("reden", "")).strip()
    field = f"verzoek-{named[1]}" if named else "inbox"
    errors: list[tuple[str, str]] = []
    if named is None:
        errors.append(("inbox", "Kies een verzoek uit de inbox."))
    elif action not in ("alles", "goedkeuren", "weigeren"):
        errors.append((field, "Kies wat u met het verzoek wilt doen."))
    elif action != "alles" and not chosen:
        errors.append((field, "Vink ten minste één categorie aan."))
    elif any(re.fullmatch(ID_PATTERN, c) is None for c in chosen):
        errors.append((field, "Deze categorie bestaat niet."))
    elif action == "weigeren" and not reason:
        errors.append((f"reden-{named[1]}", "Geef een reden voor de weigering."))
    elif len(reason) > REASON_MAX:
        errors.append((f"reden-{named[1]}", f"De reden is langer dan {REASON_MAX} tekens."))
    if errors or named is None:
        return await _inbox_page(request, errors=errors, status=400)
    requester, trace_id = named
    try:
        await provider.decide_pending(
            ctx_of(request),
            request.config_dict[SESSION],
            requester,
            trace_id,
            request[WEB_SESSION].user,
            approve=action != "weigeren",
            categories=None if action == "alles" else chosen,
            reason=reason if action == "weigeren" else None,
        )
    except AlreadyDecided:
        message = "Over (een van) deze categorieën is al besloten; er is niets gewijzigd."
        return await _inbox_page(request, errors=[(field, message)], status=409)
    except UnknownDetailRequest:
        message = "Dit verzoek bestaat niet (meer); er is niets gewijzigd."
        return await _inbox_page(request, errors=[(field, message)], status=404)
    except InputError:
        message = "Deze categorie is in dit verzoek niet gevraagd; er is niets gewijzigd."
        return await _inbox_page(request, errors=[(field, message)], status=400)
    done = "geweigerd" if action == "weigeren" else "goedgekeurd"
    return await _inbox_page(request, notice=f"Besluit vastgelegd: {done}.")


@roles("liaison")
async def acknowledge(request: web.Request) -> web.StreamResponse:
    """Mark the ticked hit notices read; they leave the inbox, and are kept as before."""
    data = await request.post()
    raw = [str(v) for v in data.getall("melding", [])]
    if not raw:
        return await _inbox_page(
            request, errors=[("meldingen", "Vink ten minste één melding aan.")], status=400
        )
    if not all(v.isascii() and v.isdigit() and len(v) <= 12 for v in raw):
        return await _inbox_page(
            request, errors=[("meldingen", "Deze melding bestaat niet.")], status=400
        )
    ids = sorted({int(v) for v in raw})
    ctx, user = ctx_of(request), request[WEB_SESSION].user
    try:
        await ctx.write(lambda: provider.acknowledge_notices(ctx, user, ids=ids, through=None))
    except VhnodeError:
        return await _inbox_page(
            request, errors=[("meldingen", "Deze melding bestaat niet.")], status=404
        )
    return await _inbox_page(request, notice=f"{len(ids)} melding(en) als gelezen gemarkeerd.")
