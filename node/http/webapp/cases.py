"""The case page (docs/webapp.md "Zaak opzoeken"): the rounds and detail requests of one
case reference, newest first.

The case reference is whatever the coordinator typed at the round (it may hold a name),
so it travels only in a POST body: the form posts, the page answers the post. Rounds
are read off the log (``flows.cases``); a past round names its subjects by position,
since the node keeps no identifier of them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.flows import cases
from node.flows.context import NodeContext
from node.http.plumbing import roles
from node.http.webapp.common import ctx_of, page
from node.http.webapp.coordinator import CASE_REF_MAX
from node.http.webapp.details import list_view_of
from node.http.webapp.words import REASON_WORDS, STATUS_WORDS

NO_ANSWER = "Geen antwoord vastgelegd"


def _partner_view(conv: Any, p: cases.PartnerOutcome, askable: set[tuple[str, int]]) -> Any:
    party = conv.party(p.partner) if conv else None
    counts: dict[str, int] = {}
    for s in p.subjects:
        counts[s] = counts.get(s, 0) + 1
    return {
        "id": p.partner,
        "organisation": party.organisation if party else p.partner,
        "status": p.status or "none",
        "words": STATUS_WORDS.get(p.status, p.status) if p.status else NO_ANSWER,
        "reason": REASON_WORDS.get(p.reason, p.reason) if p.reason else None,
        "summary": ", ".join(f"{n} {STATUS_WORDS.get(s, s).lower()}" for s, n in counts.items()),
        "subjects": [
            {
                "index": i,
                "status": s,
                "words": STATUS_WORDS.get(s, s),
                "askable": s == "hit" and (p.partner, i) in askable,
            }
            for i, s in enumerate(p.subjects)
        ],
    }


def case_view(ctx: NodeContext, case_ref: str) -> dict[str, Any]:
    found = cases.case(ctx, case_ref)
    rounds = []
    for r in found.rounds:
        inst = (
            ctx.trust().version(r.convenant_id, r.convenant_version)
            if r.convenant_id and r.convenant_version is not None
            else None
        )
        conv = inst.convenant if inst else None
        purposes = {p.id: p.description for p in conv.purposes} if conv else {}
        rounds.append(
            {
                "trace_id": r.trace_id,
                "time": r.time,
                "title": conv.title if conv else r.convenant_id,
                "version": r.convenant_version,
                "purpose": purposes.get(r.purpose or "", r.purpose),
                "user": r.user,
                "subject_count": r.subject_count,
                "partners": [_partner_view(conv, p, r.askable) for p in r.partners],
                "asks": list_view_of(ctx, r.asks),
            }
        )
    return {
        "case_ref": found.case_ref,
        "rounds": rounds,
        "other_asks": list_view_of(ctx, found.other_asks),
        "more": found.more,
        "max": cases.MAX_ROUNDS,
    }


@roles("coordinator")
async def case_form(request: web.Request) -> web.StreamResponse:
    return page(request, "zaak.html", {"case_ref": "", "case": None})


@roles("coordinator")
async def case_page(request: web.Request) -> web.StreamResponse:
    case_ref = str((await request.post()).get("zaak", "")).strip()
    error = None
    if not case_ref:
        error = "Vul het zaaknummer (casusreferentie) in."
    elif len(case_ref) > CASE_REF_MAX:
        error = f"Het zaaknummer is langer dan {CASE_REF_MAX} tekens."
    if error is not None:
        return page(
            request,
            "zaak.html",
            {"case_ref": case_ref[: CASE_REF_MAX * 2], "case": None, "errors": [("zaak", error)]},
            400,
        )
    ctx = ctx_of(request)
    view = await ctx.read(lambda: case_view(ctx, case_ref))
    return page(request, "zaak.html", {"case_ref": case_ref, "case": view})
