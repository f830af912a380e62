"""The privacy officer's pages (docs/webapp.md "Toezicht", "Rapport", "Inzageverzoek").

They call what the API's audit routes call: ``verification.verify_and_record`` (the log
recomputed in a worker process, and the verify recorded as ``audit.verified``),
``cross_check`` (§9.4), ``report.report_for`` (through ``ctx.long_read``) and
``inzage.answer`` (looked up, and the lookup logged). The dashboard's "last verified" and
the peers' last verdicts are read back from the log, so they survive a restart and are
as tamper-evident as the log itself. Every form posts: the report's filters and a
person's identifiers travel only in the body, and each answer is a no-store page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.errors import InputError
from node.flows.audit import inzage, render, report, verification
from node.flows.audit.kinds import STATUSES
from node.flows.context import NodeContext
from node.flows.cross_check import cross_check
from node.http.plumbing import SESSION, roles
from node.http.webapp import charts
from node.http.webapp.common import WEB_SESSION, ctx_of, page
from node.http.webapp.subject_rows import (
    FIELDS,
    MAX_ROWS,
    Row,
    blank_rows,
    identifiers_of_rows,
    read_rows,
)
from node.http.webapp.words import REASON_WORDS, STATUS_WORDS
from node.protocol.convenant import ID_PATTERN
from node.protocol.identifiers import amsterdam_date

# --- words ---------------------------------------------------------------------------------

PROBLEM_WORDS = {
    "edited": "regel gewijzigd",
    "missing": "regel ontbreekt",
    "reordered": "regels van plaats verwisseld",
    "truncated": "logboek ingekort",
    "bad_signature": "handtekening klopt niet",
    "bad_head": "boomkop klopt niet",
    "inconsistent_columns": "afgeleide kolommen kloppen niet",
    "bad_node": "opgeslagen deelboom klopt niet",
}
VERDICT_WORDS = {
    "consistent": "In orde: het logboek van de partner bouwt voort op wat wij hebben",
    "inconsistent": "Niet in orde: geen geldig bewijs, het logboek is herschreven",
    "truncated": "Niet in orde: het logboek van de partner is ingekort",
    "forked": "Niet in orde: de partner tekende twee verschillende logboeken",
    "restored": (
        "Hersteld: de partner zette een back-up terug en verklaarde getekend welke"
        " regels verloren gingen; het logboek gaat verder in een nieuw tijdvak"
    ),
    "no_heads": "Nog niets te vergelijken: geen boomkop van deze partner ontvangen",
    "refused": "Geweigerd door de partner",
    "unreachable": "Partner niet bereikbaar",
    "timeout": "Geen antwoord op tijd",
    "invalid": "Ongeldig antwoord",
}
BAD_VERDICTS = frozenset({"inconsistent", "truncated", "forked"})
RULE_WORDS = {
    "many_subjects": "Veel betrokkenen op één dag",
    "burst": "Veel vragen binnen een minuut",
    "rate_limited": "Geweigerd wegens te veel vragen",
    "suspect_requester": "Verzoek van een onbekende of ingetrokken partij",
    "unauthenticated_requests": "Niet-geauthenticeerde verzoeken",
    "detail_probe": "Detailverzoek zonder eigen treffer",
    "forked_peer_log": "Partner tekende twee logboeken",
    "oprf_key_conflict": "Partner toonde twee OPRF-sleutels voor één periode",
    "restored_log": "Logboek teruggezet uit een back-up (getekende verklaring)",
}
KIND_WORDS = {
    "bekendheid.round": "Bevraging gestart",
    "bekendheid.asked": "Partner bevraagd",
    "registry.changed": "Registratie gewijzigd",
    "audit.inzage": "Eerder inzageverzoek",
    "detail.asked": "Details gevraagd",
    "detail.received": "Details ontvangen",
    "detail.viewed": "Details bekeken",
    "detail.purged": "Details verwijderd",
    "detail.requested": "Detailverzoek ontvangen",
    "detail.disclosed": "Details verstrekt",
    "detail.pending": "Detailverzoek wacht op besluit",
    "detail.approved": "Detailverzoek goedgekeurd",
    "detail.denied": "Detailverzoek geweigerd",
    "detail.unavailable": "Details niet beschikbaar",
    "hit_notice.sent": "Melding van treffer verstuurd",
    "hit_notice.received": "Melding van treffer ontvangen",
}
NOTES_NL = (
    "Alleen verwerkingen die in het logboek van deze node staan, zijn opgenomen. Een node "
    "die een vraag van een partner beantwoordde, weet niet over wie die vraag ging (het "
    "protocol is blind); zulke vragen staan in het logboek van de vragende partner, onder "
    "hetzelfde trace-id.",
    "Waar één verwerking meerdere personen betrof (een gezin, een groep, een reeks "
    "registratiewijzigingen), staat alleen hoeveel identificerende gegevens zij noemde, "
    "nooit wie de anderen waren.",
    "Een naam wordt gezocht op achternaam zonder tussenvoegsel, eerste voorletter en "
    "geboortedatum: een verwerking die via de naam is gevonden, kan een andere persoon "
    "met dezelfde sleutel betreffen.",
)

# --- the dashboard -------------------------------------------------------------------------


def _dashboard_view(ctx: NodeContext) -> dict[str, Any]:
    """What the dashboard reads from the log (a reader's job)."""
    conn = ctx.conn
    last = verification.last_verification(conn)
    size = verification.log_size(conn)
    held = {
        r[0]
        for r in conn.execute("SELECT DISTINCT peer FROM peer_tree_heads")
        if r[0] != ctx.node_id
    }
    return {
        "last": last,
        "since": None if last is None else size - last.seq - 1,
        "size": size,
        "checks": verification.last_cross_checks(conn),
        "held": held,
    }


def _peers(ctx: NodeContext, view: dict[str, Any], fresh: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for peer_id, peer in sorted(ctx.trust().peers_by_id.items()):
        if peer_id == ctx.node_id:
            continue
        logged = view["checks"].get(peer_id)
        now = fresh.get(peer_id)
        verdict = now.verdict if now else logged.verdict if logged else None
        rows.append(
            {
                "id": peer_id,
                "organisation": peer.card.organisation,
                "revoked": peer.revoked_at is not None,
                "verdict": verdict,
                "words": VERDICT_WORDS.get(verdict or "", verdict),
                "bad": verdict in BAD_VERDICTS,
                "good": verdict == "consistent",
                "time": logged.time if logged else None,
                "held_size": now.held_size if now else logged.held_size if logged else None,
                "current_size": (
                    now.current_size if now else logged.current_size if logged else None
                ),
                "detail": now.detail if now else "",
                "heads_held": peer_id in view["held"],
            }
        )
    return rows


async def _dashboard(
    request: web.Request,
    *,
    verified: dict[str, Any] | None = None,
    fresh: dict[str, Any] | None = None,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    ctx = ctx_of(request)
    view = await ctx.read(lambda: _dashboard_view(ctx))
    return page(
        request,
        "toezicht.html",
        {
            "view": view,
            "peers": _peers(ctx, view, fresh or {}),
            "problem_words": PROBLEM_WORDS,
            "verified": verified,
            "errors": errors or [],
            "notice": notice,
        },
        status,
    )


@roles("privacy_officer")
async def dashboard(request: web.Request) -> web.StreamResponse:
    return await _dashboard(request)


@roles("privacy_officer")
async def verify_now(request: web.Request) -> web.StreamResponse:
    """Verify the log now (in a worker process) and record it, as the API does."""
    rep, recorded = await verification.verify_and_record(ctx_of(request), request[WEB_SESSION].user)
    verified = {
        "ok": rep.ok,
        "entries": rep.entries,
        "heads": rep.heads,
        "problems": [
            {"seq": p.seq, "kind": p.kind, "words": PROBLEM_WORDS.get(p.kind, p.kind)}
            for p in rep.problems
        ],
        "recorded": recorded,
    }
    return await _dashboard(request, verified=verified)


@roles("privacy_officer")
async def cross_check_now(request: web.Request) -> web.StreamResponse:
    """Cross-check every peer we hold heads of, or the one named in the form."""
    ctx = ctx_of(request)
    data = await request.post()
    named = str(data.get("partner", "")).strip()
    if named and (
        re.fullmatch(ID_PATTERN, named) is None
        or named not in ctx.trust().peers_by_id
        or named == ctx.node_id
    ):
        return await _dashboard(
            request, errors=[("kruiscontrole", "Deze partner is niet bekend.")], status=400
        )
    results = await cross_check(ctx, request.config_dict[SESSION], [named] if named else None)
    fresh = {r.peer: r for r in results}
    bad = [r.peer for r in results if r.verdict in BAD_VERDICTS]
    if not results:
        notice = "Er is nog van geen enkele partner een boomkop ontvangen: niets te controleren."
    elif bad:
        notice = f"Kruiscontrole uitgevoerd: niet in orde bij {', '.join(bad)}."
    else:
        notice = f"Kruiscontrole uitgevoerd bij {len(results)} partner(s)."
    return await _dashboard(request, fresh=fresh, notice=notice)


# --- the report ----------------------------------------------------------------------------

REPORT_FIELDS = (
    # (form field, its keyword in report.parse_filters / parse_thresholds)
    ("van", "start"),
    ("tot", "end"),
    ("convenant", "convenant"),
    ("doel", "purpose"),
    ("partij", "party"),
    ("gebruiker", "user"),
    ("betrokkenen_per_dag", "subjects_per_day"),
    ("verzoeken_per_minuut", "requests_per_minute"),
)
_FIELD_ERRORS = {
    "van": "Vul een geldige datum in (JJJJ-MM-DD).",
    "tot": "Vul een geldige datum in (JJJJ-MM-DD).",
    "convenant": "Ten hoogste 128 leesbare tekens.",
    "doel": "Ten hoogste 128 leesbare tekens.",
    "partij": "Ten hoogste 128 leesbare tekens.",
    "gebruiker": "Ten hoogste 128 leesbare tekens.",
    "betrokkenen_per_dag": "Vul een heel getal van 1 tot 1000000000 in.",
    "verzoeken_per_minuut": "Vul een heel getal van 1 tot 1000000000 in.",
}


@dataclass
class ReportForm:
    values: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _read_report_form(data: MultiDictProxy[Any]) -> ReportForm:
    return ReportForm({f: str(data.get(f, "")).strip()[:200] for f, _ in REPORT_FIELDS})


def _parse_report_form(
    form: ReportForm,
) -> tuple[report.Filters, report.Thresholds] | None:
    """The form as the API's filters and thresholds; None with the form's errors set."""
    v = form.values
    # Each field alone first, so every bad one is named beside its field.
    for f, keyword in REPORT_FIELDS:
        try:
            if f in ("betrokkenen_per_dag", "verzoeken_per_minuut"):
                report.parse_thresholds(**{keyword: v[f]})
            else:
                report.parse_filters(**{keyword: v[f]})
        except InputError:
            form.errors.append((f, _FIELD_ERRORS[f]))
    if form.errors:
        return None
    try:
        filters = report.parse_filters(
            start=v["van"],
            end=v["tot"],
            convenant=v["convenant"],
            purpose=v["doel"],
            party=v["partij"],
            user=v["gebruiker"],
        )
    except InputError:
        form.errors.append(("tot", "De einddatum ligt vóór de begindatum."))
        return None
    return filters, report.parse_thresholds(v["betrokkenen_per_dag"], v["verzoeken_per_minuut"])


def _report_page(
    request: web.Request,
    form: ReportForm,
    rep: report.Report | None = None,
    status: int = 200,
) -> web.Response:
    ctx = ctx_of(request)
    context: dict[str, Any] = {
        "form": form,
        "errors": form.errors,
        "defaults": report.Thresholds(),
        "convenants": sorted(ctx.trust().convenants),
        "parties": sorted({ctx.node_id, *ctx.trust().peers_by_id}),
        "rep": None,
    }
    if rep is not None:
        doc = rep.as_json()
        context.update(
            rep=doc,
            statuses=[(s, STATUS_WORDS.get(s, s)) for s in STATUSES],
            reason_words=REASON_WORDS,
            rule_words=RULE_WORDS,
            charts=charts.report_charts(doc, STATUS_WORDS),
            admin_rows=[(k, n) for k, n in doc["admin"].items()],
            detail_rows=[(k, n) for k, n in doc["details"].items()],
        )
    return page(request, "rapport.html", context, status)


@roles("privacy_officer")
async def report_form(request: web.Request) -> web.StreamResponse:
    defaults = report.Thresholds()
    values = {f: "" for f, _ in REPORT_FIELDS}
    values["betrokkenen_per_dag"] = str(defaults.subjects_per_day)
    values["verzoeken_per_minuut"] = str(defaults.requests_per_minute)
    return _report_page(request, ReportForm(values))


async def _run_report(request: web.Request) -> tuple[ReportForm, report.Report | None]:
    form = _read_report_form(await request.post())
    parsed = _parse_report_form(form)
    if parsed is None:
        return form, None
    filters, thresholds = parsed
    ctx = ctx_of(request)
    rep = await ctx.long_read(report.report_for, ctx.node_id, ctx.clock.now(), filters, thresholds)
    return form, rep


@roles("privacy_officer")
async def report_page(request: web.Request) -> web.StreamResponse:
    form, rep = await _run_report(request)
    if rep is None:
        return _report_page(request, form, status=400)
    return _report_page(request, form, rep)


@roles("privacy_officer")
async def report_download(request: web.Request) -> web.StreamResponse:
    """The same report as the API gives it, CSV or JSON, as a file to save."""
    data = await request.post()
    fmt = str(data.get("formaat", ""))
    form, rep = await _run_report(request)
    if fmt not in ("csv", "json"):
        form.errors.append(("formaat", "Kies CSV of JSON."))
    if rep is None or form.errors:
        return _report_page(request, form, status=400)
    if fmt == "csv":
        body, content_type = render.csv_text(rep), "text/csv"
    else:
        # As aiohttp's json_response writes the API's answer: the same bytes.
        body, content_type = json.dumps(rep.as_json()), "application/json"
    span = "-".join(x for x in (form.values["van"], form.values["tot"]) if x) or "alles"
    name = f"auditrapport-{ctx_of(request).node_id}-{span}.{fmt}"
    return web.Response(
        text=body,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- the access request (inzage) -----------------------------------------------------------

START_ROWS = 2  # a person is looked up by one or two identifiers, not a family
REF_MAX = inzage.MAX_REQUEST_REF_CHARS


@dataclass
class InzageForm:
    reference: str = ""
    rows: list[Row] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _inzage_form_page(request: web.Request, form: InzageForm, status: int = 200) -> web.Response:
    return page(
        request,
        "inzage.html",
        {"form": form, "fields": FIELDS, "errors": form.errors, "ref_max": REF_MAX},
        status,
    )


@roles("privacy_officer")
async def inzage_form(request: web.Request) -> web.StreamResponse:
    return _inzage_form_page(request, InzageForm(rows=blank_rows(START_ROWS)))


def _read_inzage_form(data: MultiDictProxy[Any]) -> InzageForm:
    return InzageForm(reference=str(data.get("kenmerk", "")).strip(), rows=read_rows(data))


def _groups(entries: list[inzage.FoundEntry]) -> list[dict[str, Any]]:
    """One block per processing: the entries of one round (one per partner) together."""
    blocks: list[dict[str, Any]] = []
    for e in entries:
        last = blocks[-1] if blocks else None
        if (
            last
            and e.trace_id is not None
            and (last["kind"], last["trace_id"])
            == (
                e.kind,
                e.trace_id,
            )
        ):
            last["outcomes"].append(e)
            continue
        blocks.append(
            {
                "kind": e.kind,
                "words": KIND_WORDS.get(e.kind, e.kind),
                "trace_id": e.trace_id,
                "first": e,
                "outcomes": [e],
                "found_by": list(dict.fromkeys(m.identifier for m in e.matched)),
            }
        )
    return blocks


@roles("privacy_officer")
async def inzage_answer(request: web.Request) -> web.StreamResponse:
    """Look the person up in this node's log and registry; the lookup itself is logged."""
    data = await request.post()
    form = _read_inzage_form(data)
    if data.get("actie") == "rij":  # one more identifier row, nothing looked up yet
        if len(form.rows) < MAX_ROWS:
            form.rows.extend(blank_rows(1))
        return _inzage_form_page(request, form)
    subjects, row_errors = identifiers_of_rows(form.rows, "Gegeven")
    form.errors.extend(row_errors)
    if not subjects and not form.errors:
        form.errors.append(("bsn-0", "Vul ten minste één gegeven van de persoon in."))
    if len(form.reference) > REF_MAX or not form.reference.isprintable():
        form.errors.append(("kenmerk", f"Het kenmerk is langer dan {REF_MAX} tekens."))
    if form.errors:
        return _inzage_form_page(request, form, status=400)
    ctx = ctx_of(request)
    rep = await inzage.answer(ctx, subjects, request[WEB_SESSION].user, form.reference or None)
    blocks = _groups(rep.entries)
    for b in blocks:
        for e in b["outcomes"]:
            e_words = STATUS_WORDS.get(e.outcome or "", e.outcome or "-")
            b.setdefault("outcome_words", []).append(
                (e.counterparty, e_words, REASON_WORDS.get(e.reason or "", e.reason))
            )
    return page(
        request,
        "inzage_rapport.html",
        {
            "rep": rep,
            "blocks": blocks,
            "notes": NOTES_NL,
            "date": amsterdam_date(ctx.clock.now()).isoformat(),
        },
    )
