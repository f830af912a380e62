"""The liaison's inbox (docs/webapp.md "Inbox"): pending detail requests to approve or
deny, with the convenant's rule beside each category, and hit notices to acknowledge;
filtered and paged as the API's inbox is, and one request's page, decided or not.

It calls what the local API calls (``detail_answering.inbox``, ``decide_pending``,
``acknowledge_notices``), so a decision here is the API's decision: all or nothing, the
§7.4 rules run again on approval, logged, and the requester sent a decision notice. A
request is named in the form body by requester and trace id (no identifier of a person);
nothing is read from the URL: the filters and the page shown travel as form fields
(``InboxView``), repeated as hidden fields in every form of the page, so deciding or
acknowledging on page 3 of a filtered inbox gives that page back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from aiohttp import web
from multidict import MultiDictProxy

from node.errors import AlreadyDecided, InputError, UnknownDetailRequest, VhnodeError
from node.flows import detail_answering as provider
from node.flows.context import NodeContext
from node.http.plumbing import SESSION, roles
from node.http.webapp.common import WEB_SESSION, ctx_of, page
from node.http.webapp.words import rule_words
from node.protocol.convenant import ID_PATTERN
from node.protocol.fields import MAX_CASE_REF
from node.protocol.models import rfc3339
from node.store.details import NoticeFilter

NOTICE_PAGE = 100  # hit notices per page
REQUEST_PAGE = 100  # pending detail requests per page
REASON_MAX = 500  # the API's bound on a denial's reason
MAX_PAGES_BACK = 1000  # the "vorige" trail of a paged notice list, bounded
NOTICE_STATES: dict[str, Literal["open", "acknowledged", "all"]] = {
    "open": "open",
    "gelezen": "acknowledged",
    "alle": "all",
}

STATUS_WORDS = {
    "pending": "Wacht op uw besluit",
    "delivered": "Goedgekeurd",
    "denied": "Geweigerd",
    "unavailable": "Niet beschikbaar",
}


@dataclass
class InboxView:
    """Which part of the inbox is shown: the API's filters (docs/api.md "GET
    /api/v1/liaison/inbox") and the page of each list, as typed into the page's forms."""

    notices: str = "open"  # a key of NOTICE_STATES
    requester: str = ""
    convenant: str = ""
    case_ref: str = ""
    round_: str = ""
    since: str = ""  # YYYY-MM-DD
    before: int | None = None  # the notice page: notices with a smaller id
    trail: list[int] = field(default_factory=list)  # the ``before`` of the pages back
    offset: int = 0  # the first pending request shown

    def where(self) -> NoticeFilter:
        since = None
        if self.since:
            since = rfc3339(datetime.combine(date.fromisoformat(self.since), time(), UTC))
        return NoticeFilter(
            state=NOTICE_STATES[self.notices],
            requester=self.requester or None,
            convenant_id=self.convenant or None,
            case_ref=self.case_ref or None,
            round_trace_id=self.round_ or None,
            since=since,
        )

    @property
    def filtered(self) -> bool:
        return self != InboxView(before=self.before, trail=self.trail, offset=self.offset)

    def fields(self) -> list[tuple[str, str]]:
        """The view as hidden form fields."""
        return [
            ("toon", self.notices),
            ("partner", self.requester),
            ("convenant", self.convenant),
            ("zaaknummer", self.case_ref),
            ("ronde", self.round_),
            ("vanaf", self.since),
            ("voor", "" if self.before is None else str(self.before)),
            ("eerder", ",".join(str(b) for b in self.trail)),
            ("verzoeken_vanaf", str(self.offset)),
        ]


def _whole(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else None


def read_view(data: MultiDictProxy[Any]) -> tuple[InboxView, list[tuple[str, str]]]:
    """The view a form asks for, and what is wrong with what was typed (then the view is
    the default one, and the typed values are kept in ``typed``)."""
    text = {k: str(data.get(k, "")).strip() for k, _ in InboxView().fields()}
    errors: list[tuple[str, str]] = []
    view = InboxView()
    if text["toon"] and text["toon"] not in NOTICE_STATES:
        errors.append(("toon", "Kies welke meldingen u wilt zien."))
    else:
        view.notices = text["toon"] or "open"
    for key, attr, what in (
        ("partner", "requester", "partner"),
        ("convenant", "convenant", "convenant"),
    ):
        value = text[key]
        if value and re.fullmatch(ID_PATTERN, value) is None:
            errors.append((key, f"Kies een {what} uit de lijst."))
        else:
            setattr(view, attr, value)
    if len(text["zaaknummer"]) > MAX_CASE_REF:
        errors.append(("zaaknummer", f"Het zaaknummer is langer dan {MAX_CASE_REF} tekens."))
    else:
        view.case_ref = text["zaaknummer"]
    ronde = text["ronde"].lower()
    if ronde and re.fullmatch("[0-9a-f]{32}", ronde) is None:
        errors.append(("ronde", "Een trace-id van een bevraging is 32 tekens 0-9 en a-f."))
    else:
        view.round_ = ronde
    try:
        if text["vanaf"]:
            date.fromisoformat(text["vanaf"])
        view.since = text["vanaf"]
    except ValueError:
        errors.append(("vanaf", "Geef de datum als JJJJ-MM-DD, bijvoorbeeld 2026-12-01."))
    before = _whole(text["voor"]) if text["voor"] else None
    trail = [_whole(b) for b in text["eerder"].split(",")] if text["eerder"] else []
    offset = _whole(text["verzoeken_vanaf"] or "0")
    if (
        (text["voor"] and before is None)
        or any(b is None for b in trail)
        or len(trail) > MAX_PAGES_BACK
        or offset is None
    ):
        errors.append(("inbox", "Deze pagina van de inbox bestaat niet."))
    else:
        view.before, view.trail, view.offset = before, [b or 0 for b in trail], offset or 0
    return (InboxView(), errors) if errors else (view, [])


def _with_words(ctx: NodeContext, req: dict[str, Any]) -> None:
    """A request or notice of the API with the convenant's title, the purpose and category
    descriptions, and each category's rule in words."""
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
    req["pending"] = [c["category"] for c in req.get("categories", ()) if c["status"] == "pending"]


def _choices(ctx: NodeContext) -> dict[str, list[tuple[str, str]]]:
    """The partners and convenants the filter offers: those of the installed convenants."""
    convenants = [versions[0].convenant for versions in ctx.trust().convenants.values() if versions]
    partners = {
        p.node_id: p.organisation for c in convenants for p in c.parties if p.node_id != ctx.node_id
    }
    return {
        "partners": sorted(partners.items(), key=lambda kv: kv[1]),
        "convenants": sorted((c.id, c.title) for c in convenants),
    }


def inbox_view(ctx: NodeContext, view: InboxView | None = None) -> dict[str, Any]:
    """The inbox as the page shows it: one page of each list, through the API's flow."""
    view = view or InboxView()
    doc = provider.inbox(ctx, view.where(), limit=NOTICE_PAGE, before=view.before)
    requests = doc["requests"]
    doc["requests_total"] = len(requests)
    doc["requests"] = requests[view.offset : view.offset + REQUEST_PAGE]
    doc["requests_next"] = (
        view.offset + REQUEST_PAGE if view.offset + REQUEST_PAGE < len(requests) else None
    )
    doc["requests_previous"] = max(0, view.offset - REQUEST_PAGE) if view.offset else None
    for req in [*doc["requests"], *doc["hit_notices"]]:
        _with_words(ctx, req)
    doc.update(_choices(ctx))
    return doc


async def _inbox_page(
    request: web.Request,
    view: InboxView | None = None,
    *,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    decided: tuple[str, str] | None = None,
    status: int = 200,
    typed: MultiDictProxy[Any] | None = None,
) -> web.Response:
    ctx = ctx_of(request)
    view = view or InboxView()
    doc = await ctx.read(lambda: inbox_view(ctx, view))
    shown = dict(view.fields())
    # Each paging button posts the whole view of the page it leads to. The notices are
    # paged by key (``before``): the trail of where each earlier page began (0: the
    # first) lets "vorige" go back without a query string.
    paging: dict[str, list[tuple[str, str]]] = {}
    if doc["requests_next"] is not None:
        paging["verzoeken-volgende"] = replace(view, offset=doc["requests_next"]).fields()
    if doc["requests_previous"] is not None:
        paging["verzoeken-vorige"] = replace(view, offset=doc["requests_previous"]).fields()
    if doc["next_before"] is not None:
        trail = [*view.trail, view.before or 0][-MAX_PAGES_BACK:]
        paging["meldingen-volgende"] = replace(
            view, before=doc["next_before"], trail=trail
        ).fields()
    if view.before is not None:
        back = view.trail[-1] if view.trail else 0
        paging["meldingen-vorige"] = replace(
            view, before=back or None, trail=view.trail[:-1]
        ).fields()
        paging["meldingen-eerste"] = replace(view, before=None, trail=[]).fields()
    if typed is not None:  # a filter with a mistake: what was typed stays in the fields
        shown.update({k: str(typed.get(k, "")) for k in shown})
    return page(
        request,
        "inbox.html",
        {
            "inbox": doc,
            "view": view,
            "view_fields": view.fields(),
            "paging": paging,
            "shown": shown,
            "errors": errors or [],
            "notice": notice,
            "decided": decided,
            "reason_max": REASON_MAX,
            "notice_page": NOTICE_PAGE,
            "request_page": REQUEST_PAGE,
        },
        status,
    )


@roles("liaison")
async def inbox(request: web.Request) -> web.StreamResponse:
    return await _inbox_page(request)


@roles("liaison")
async def inbox_filtered(request: web.Request) -> web.StreamResponse:
    """The inbox filtered or on another page: the filter form and the paging buttons post
    here. A mistake in a filter gives the unfiltered inbox with the message and what was
    typed."""
    data = await request.post()
    view, errors = read_view(data)
    if errors:
        return await _inbox_page(request, errors=errors, status=400, typed=data)
    action = str(data.get("pagina", ""))
    if action == "wissen":
        view = InboxView()
    elif action == "filteren":  # new filters: both lists from their first page
        view = replace(view, before=None, trail=[], offset=0)
    return await _inbox_page(request, view)  # a paging button posts the page it shows


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
    view, _ = read_view(data)
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
        return await _inbox_page(request, view, errors=errors, status=400)
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
        return await _inbox_page(request, view, errors=[(field, message)], status=409)
    except UnknownDetailRequest:
        message = "Dit verzoek bestaat niet (meer); er is niets gewijzigd."
        return await _inbox_page(request, view, errors=[(field, message)], status=404)
    except InputError:
        message = "Deze categorie is in dit verzoek niet gevraagd; er is niets gewijzigd."
        return await _inbox_page(request, view, errors=[(field, message)], status=400)
    done = "geweigerd" if action == "weigeren" else "goedgekeurd"
    return await _inbox_page(
        request, view, notice=f"Besluit vastgelegd: {done}.", decided=(requester, trace_id)
    )


@roles("liaison")
async def acknowledge(request: web.Request) -> web.StreamResponse:
    """Mark the ticked hit notices read; they leave the inbox, and are kept as before."""
    data = await request.post()
    view, _ = read_view(data)
    raw = [str(v) for v in data.getall("melding", [])]
    if not raw:
        return await _inbox_page(
            request, view, errors=[("meldingen", "Vink ten minste één melding aan.")], status=400
        )
    if not all(v.isascii() and v.isdigit() and len(v) <= 12 for v in raw):
        return await _inbox_page(
            request, view, errors=[("meldingen", "Deze melding bestaat niet.")], status=400
        )
    ids = sorted({int(v) for v in raw})
    ctx, user = ctx_of(request), request[WEB_SESSION].user
    try:
        await ctx.write(lambda: provider.acknowledge_notices(ctx, user, ids=ids, through=None))
    except VhnodeError:
        return await _inbox_page(
            request, view, errors=[("meldingen", "Deze melding bestaat niet.")], status=404
        )
    return await _inbox_page(
        request, view, notice=f"{len(ids)} melding(en) als gelezen gemarkeerd."
    )


@roles("liaison")
async def one_request(request: web.Request) -> web.StreamResponse:
    """One detail request, decided or not (``vhnode liaison show``): per category what it
    became, by whom and when, the reason of a denial, and whether the text went out.
    Named by requester and trace id, typed or from a button."""
    data = await request.post()
    ctx = ctx_of(request)
    requester = str(data.get("aanvrager", "")).strip()
    trace_id = str(data.get("trace", "")).strip().lower()
    named = _request_of(data.get("verzoek")) or _request_of(f"{requester}|{trace_id}")
    if named is None:
        errors = []
        if re.fullmatch(ID_PATTERN, requester) is None:
            errors.append(("aanvrager", "Geef de node-id van de partner die het vroeg."))
        if re.fullmatch("[0-9a-f]{32}", trace_id) is None:
            errors.append(("trace", "Een trace-id is 32 tekens 0-9 en a-f."))
        return page(
            request,
            "verzoek.html",
            {"req": None, "errors": errors, "typed": {"aanvrager": requester, "trace": trace_id}},
            400,
        )

    def read() -> dict[str, Any]:
        req = provider.one_request(ctx, *named)
        _with_words(ctx, req)
        return req

    try:
        req = await ctx.read(read)
    except UnknownDetailRequest:
        return page(
            request,
            "verzoek.html",
            {
                "req": None,
                "errors": [("trace", "Dit verzoek bestaat niet (meer).")],
                "typed": {"aanvrager": named[0], "trace": named[1]},
            },
            404,
        )
    return page(request, "verzoek.html", {"req": req, "typed": {}})
