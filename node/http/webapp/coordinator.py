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

from node.errors import Refusal, VhnodeError
from node.flows.asking import QueryResult, ask_bekendheid
from node.flows.standing import askable
from node.http.plumbing import SESSION, roles
from node.http.webapp.common import WEB_SESSION, ctx_of, page
from node.http.webapp.subject_rows import (
    FIELDS,
    MAX_ROWS,
    Row,
    blank_rows,
    identifiers_of_rows,
    read_rows,
)
from node.http.webapp.words import KIND_WORDS, REASON_WORDS, STATUS_MEANING, STATUS_WORDS
from node.protocol.identifiers import SubjectIdentifier
from node.protocol.masking import masked
from node.protocol.models import rfc3339

CASE_REF_MAX = 128


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
    return _form_page(request, Form(rows=blank_rows()))


def _read_form(data: MultiDictProxy[Any]) -> Form:
    return Form(
        choice=str(data.get("convenant_doel", "")),
        case_ref=str(data.get("zaak", "")).strip(),
        rows=read_rows(data),
    )


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
            form.rows.extend(blank_rows(1))
        return _form_page(request, form)
    choices = {p["value"]: (c, p) for c in _choices(request) for p in c["purposes"]}
    if form.choice not in choices:
        form.errors.append(("convenant_doel", "Kies een convenant en een doel."))
    if not form.case_ref:
        form.errors.append(("zaak", "Vul het zaaknummer (casusreferentie) in."))
    elif len(form.case_ref) > CASE_REF_MAX:
        form.errors.append(("zaak", f"Het zaaknummer is langer dan {CASE_REF_MAX} tekens."))
    subjects, row_errors = identifiers_of_rows(form.rows, "Betrokkene")
    form.errors.extend(row_errors)
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
