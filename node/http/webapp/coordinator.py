"""The coordinator's pages: a new bekendheid round (docs/webapp.md "Nieuwe bevraging").

The form offers the convenants this node may ask under now and the purposes its party
entry lists; subjects are rows (BSN, name and date of birth, or address), several for a
family or group. Submitting runs one round through ``ask_bekendheid``, the flow the API
runs, and shows a grid subject × partner. Identifiers travel only in the POST body and
the page that answers it (no-store), never in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from node.errors import InputError, InvalidBsn, Refusal, VhnodeError
from node.flows.asking import QueryResult, ask_bekendheid
from node.flows.standing import askable
from node.http.plumbing import SESSION, roles
from node.http.webapp.common import WEB_SESSION, ctx_of, page
from node.protocol.identifiers import SubjectIdentifier, parse_identifier
from node.protocol.masking import masked
from node.protocol.models import rfc3339

MAX_ROWS = 64  # the API's bound on subjects per round
START_ROWS = 3
FIELDS = (
    "bsn",
    "achternaam",
    "tussenvoegsel",
    "voornamen",
    "geboortedatum",
    "postcode",
    "huisnummer",
    "toevoeging",
)
CASE_REF_MAX = 128

STATUS_WORDS = {
    "hit": "Bekend",
    "no_hit": "Niet bekend",
    "refused": "Geweigerd",
    "unreachable": "Niet bereikbaar",
    "timeout": "Geen antwoord op tijd",
    "invalid": "Ongeldig antwoord",
}
STATUS_MEANING = {
    "hit": "De partner kent de betrokkene binnen de reikwijdte van het convenant (ondertekend).",
    "no_hit": "De partner heeft ondertekend verklaard de betrokkene niet te kennen.",
    "refused": "De partner heeft de vraag ondertekend geweigerd; de reden staat erbij.",
    "unreachable": "De partner kon niet worden bereikt (verbinding geweigerd of serverfout).",
    "timeout": "De partner heeft niet binnen de termijn van de ronde geantwoord.",
    "invalid": "Er kwam een antwoord, maar de handtekening, het bewijs of de tagset klopt "
    "niet. Behandel het als onbekend en meld het aan de beheerder.",
}
REASON_WORDS = {
    "not_a_party": "deze node is geen partij bij het convenant",
    "not_a_provider": "de partner beantwoordt onder dit convenant geen vragen",
    "no_query_right": "geen vraagrecht voor dit doel",
    "rate_limited": "te veel vragen in korte tijd; probeer het later opnieuw",
    "convenant_not_in_force": "het convenant is niet (meer) van kracht",
    "unknown_convenant": "de partner heeft dit convenant niet geïnstalleerd",
    "party_withdrawn": "een partij heeft zich uit het convenant teruggetrokken",
    "unknown_requester": "de partner kent deze node niet",
    "revoked_requester": "de partner heeft deze node ingetrokken",
    "too_many_subjects": "te veel betrokkenen in één vraag",
    "stale_request": "de klokken lopen te ver uiteen",
    "replayed_request": "de vraag leek een herhaling",
    "round_deadline": "geen antwoord binnen de termijn van de ronde",
    "tag_set_timeout": "de tagset van de partner kwam niet op tijd",
}
KIND_WORDS = {"bsn": "BSN", "person": "Persoon", "address": "Adres"}


@dataclass
class Row:
    values: dict[str, str]
    error: str | None = None
    error_field: str = "bsn"

    def empty(self) -> bool:
        return not any(v.strip() for v in self.values.values())


@dataclass
class Form:
    choice: str = ""
    case_ref: str = ""
    rows: list[Row] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _choices(request: web.Request) -> list[dict[str, Any]]:
    """The convenants this node may ask under, each with its purposes (value ``id|purpose``)."""
    out = []
    for conv, purposes in askable(ctx_of(request)):
        described = {p.id: p.description for p in conv.purposes}
        out.append(
            {
                "title": conv.title,
                "id": conv.id,
                "version": conv.version,
                "purposes": [
                    {"value": f"{conv.id}|{p}", "id": p, "description": described.get(p, p)}
                    for p in purposes
                ],
            }
        )
    return out


def _form_page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    return page(
        request,
        "bevraging.html",
        {"form": form, "choices": _choices(request), "fields": FIELDS, "errors": form.errors},
        status=status,
    )


@roles("coordinator")
async def new_round_form(request: web.Request) -> web.StreamResponse:
    return _form_page(
        request, Form(rows=[Row(dict.fromkeys(FIELDS, "")) for _ in range(START_ROWS)])
    )


def _read_form(data: MultiDictProxy[Any]) -> Form:
    try:
        count = min(max(int(str(data.get("rijen", START_ROWS))), 1), MAX_ROWS)
    except ValueError:
        count = START_ROWS
    rows = [Row({f: str(data.get(f"{f}-{i}", ""))[:200] for f in FIELDS}) for i in range(count)]
    return Form(
        choice=str(data.get("convenant_doel", "")),
        case_ref=str(data.get("zaak", "")).strip(),
        rows=rows,
    )


def _identifier(row: Row) -> SubjectIdentifier:
    """One row as a subject; InputError (with a Dutch message on the row) otherwise."""
    v = {k: s.strip() for k, s in row.values.items()}
    person_fields = ("achternaam", "tussenvoegsel", "voornamen", "geboortedatum")
    kinds = [
        kind
        for kind, present in (
            ("bsn", bool(v["bsn"])),
            ("person", any(v[f] for f in person_fields)),
            ("address", any(v[f] for f in ("postcode", "huisnummer", "toevoeging"))),
        )
        if present
    ]
    if len(kinds) > 1:
        row.error = (
            "Vul per betrokkene één soort gegevens in: BSN, naam en geboortedatum, of adres."
        )
        raise InputError("mixed kinds")
    try:
        if kinds == ["bsn"]:
            return parse_identifier({"kind": "bsn", "bsn": v["bsn"]})
        if kinds == ["person"]:
            row.error_field = "achternaam"
            return parse_identifier(
                {
                    "kind": "person",
                    "surname": v["achternaam"],
                    "tussenvoegsel": v["tussenvoegsel"] or None,
                    "first_names": v["voornamen"],
                    "birth_date": v["geboortedatum"],
                }
            )
        row.error_field = "postcode"
        return parse_identifier(
            {
                "kind": "address",
                "postcode": v["postcode"],
                "house_number": int(v["huisnummer"]) if v["huisnummer"].isdigit() else -1,
                "addition": v["toevoeging"] or None,
            }
        )
    except InvalidBsn:
        row.error = "Dit BSN is niet geldig: het moet 9 cijfers hebben en de elfproef doorstaan."
        raise
    except InputError:
        row.error = {
            "achternaam": "Vul achternaam, voornamen en een geldige geboortedatum in.",
            "postcode": "Vul een geldige postcode (zoals 1234 AB) en een huisnummer in.",
        }.get(row.error_field, "Deze gegevens zijn niet geldig.")
        raise


def _grid(result: QueryResult, subjects: list[SubjectIdentifier]) -> dict[str, Any]:
    partners = [
        {
            "id": p.partner,
            "organisation": p.organisation,
            "status": p.status,
            "reason": REASON_WORDS.get(p.reason or "", p.reason) if p.reason else None,
        }
        for p in result.partners
    ]
    rows = []
    for i, subject in enumerate(subjects):
        cells = []
        for p in result.partners:
            status = p.subjects[i] if i < len(p.subjects) else p.status
            cells.append({"status": status, "words": STATUS_WORDS.get(status, status)})
        rows.append({"kind": KIND_WORDS[subject.kind], "label": masked(subject), "cells": cells})
    return {"partners": partners, "rows": rows}


@roles("coordinator")
async def new_round(request: web.Request) -> web.StreamResponse:
    data = await request.post()
    form = _read_form(data)
    if data.get("actie") == "rij":  # one more subject row, nothing asked yet
        if len(form.rows) < MAX_ROWS:
            form.rows.append(Row(dict.fromkeys(FIELDS, "")))
        return _form_page(request, form)
    choices = {p["value"]: (c, p) for c in _choices(request) for p in c["purposes"]}
    if form.choice not in choices:
        form.errors.append(("convenant_doel", "Kies een convenant en een doel."))
    if not form.case_ref:
        form.errors.append(("zaak", "Vul het zaaknummer (casusreferentie) in."))
    elif len(form.case_ref) > CASE_REF_MAX:
        form.errors.append(("zaak", f"Het zaaknummer is langer dan {CASE_REF_MAX} tekens."))
    subjects: list[SubjectIdentifier] = []
    for i, row in enumerate(form.rows):
        if row.empty():
            continue
        try:
            subjects.append(_identifier(row))
        except InputError:
            form.errors.append((f"{row.error_field}-{i}", f"Betrokkene {i + 1}: {row.error}"))
    if not subjects and all(where in ("convenant_doel", "zaak") for where, _ in form.errors):
        form.errors.append(("bsn-0", "Vul ten minste één betrokkene in."))
    if form.errors:
        return _form_page(request, form, status=400)
    conv, purpose = choices[form.choice]
    ctx = ctx_of(request)
    try:
        result = await ask_bekendheid(
            ctx,
            request.config_dict[SESSION],
            conv["id"],
            purpose["id"],
            form.case_ref,
            request[WEB_SESSION].user,
            subjects,
        )
    except Refusal as e:
        # This node itself may not ask (the convenant ended between form and submit).
        form.errors.append(("convenant_doel", _refusal_words(e)))
        return _form_page(request, form, status=403)
    return page(
        request,
        "resultaat.html",
        {
            "result": result,
            "convenant": conv,
            "purpose": purpose,
            "asked_at": rfc3339(ctx.clock.now()),
            "grid": _grid(result, subjects),
            "meanings": [(STATUS_WORDS[s], STATUS_MEANING[s]) for s in STATUS_WORDS],
        },
    )


def _refusal_words(e: VhnodeError) -> str:
    words = REASON_WORDS.get(e.code)
    return f"Deze node mag nu niet vragen: {words}." if words else "Deze node mag nu niet vragen."
