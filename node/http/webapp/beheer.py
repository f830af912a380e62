"""The admin's (beheerder's) pages (docs/webapp.md "Beheer"): node status, partners'
peer cards, convenants, users.

Every handler here carries no role mark, so only the admin may use it
(``node.http.plumbing.permits``), as with the API's admin operations. Each change goes
through the flow the CLI runs (``node/flows/admin.py``, ``node/flows/signin.py``), so it
is checked, done and logged exactly as ``vhnode peer add`` / ``convenant install`` /
``user add`` do it; SQLite only through ``ctx.read`` / ``ctx.write``.

Uploaded documents (a peer card, a signed convenant or withdrawal) come as
multipart/form-data, which the gate reads for its form token like any other form. A
peer card is never added on upload: the answer shows its node id, organisation,
endpoint and fingerprint, and carries the card back in a hidden field; "Toevoegen"
verifies it again and adds it only if it is still the card whose fingerprint was shown.
Revoking a partner or a user asks for confirmation first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import segno
from aiohttp import web
from multidict import MultiDictProxy

from node.errors import (
    CardNotYetValid,
    Conflict,
    ConvenantNotInForce,
    ExpiredDocument,
    InputError,
    KeyMismatch,
    NotAParty,
    NotFound,
    ProtocolError,
    UnknownConvenant,
    VhnodeError,
)
from node.flows import admin, signin
from node.flows.audit import verification
from node.flows.context import NodeContext
from node.http.plumbing import SESSION
from node.http.webapp import forms
from node.http.webapp.common import ROLE_NAMES, WEB_SESSION, ctx_of, page
from node.protocol import jws
from node.protocol.convenant import CONVENANT_TYP, Convenant, parse_convenant
from node.protocol.fields import check_user_name
from node.protocol.peer_card import PeerCard, verify_card
from node.protocol.withdrawal import WITHDRAWAL_TYP, parse_withdrawal
from node.store import convenants, credentials, peers, users

# A peer card is a few kilobytes, a convenant with its signatures some tens: the upload
# is refused well before the body limit of the node (http.max_body_bytes).
MAX_DOCUMENT_BYTES = 512 * 1024
# How long the status page waits for the node's own endpoint to answer.
SELF_CHECK_SECONDS = 3.0

SECTIONS = (
    ("/app/beheer", "Status"),
    ("/app/beheer/partners", "Partners"),
    ("/app/beheer/convenanten", "Convenanten"),
    ("/app/beheer/gebruikers", "Gebruikers"),
)
PEER_STATE_WORDS = {
    "active": "Geldig",
    "revoked": "Ingetrokken",
    "expired": "Verlopen",
    "not yet valid": "Nog niet geldig",
}
OUTCOME_WORDS = {
    "added": "toegevoegd",
    "updated": "bijgewerkt (een nieuwere kaart van een bekende partner)",
    "rotated": "toegevoegd met de nieuwe sleutel (sleutelwissel)",
    "unchanged": "ongewijzigd: deze kaart was er al",
}
SIGNATURE_WORDS = {
    "signed": "Ondertekend",
    "missing": "Nog niet ondertekend",
    "bad": "Handtekening klopt niet",
    "no_card": "Niet te controleren: geen partnerkaart",
}
CONVENANT_ROLE_WORDS = {"provider": "bron", "requester": "vraagt"}


def when(value: datetime | str | None) -> str:
    """A moment as people read it: ``2026-12-03 14:05 UTC``; empty for none."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def _render(
    request: web.Request,
    template: str,
    values: dict[str, Any],
    status: int = 200,
) -> web.Response:
    values.setdefault("sections", SECTIONS)
    values.setdefault("current", request.path)
    return page(request, template, values, status)


def _admin_name(request: web.Request) -> str:
    return request[WEB_SESSION].user


async def _read_upload(data: MultiDictProxy[Any], field: str) -> tuple[Any | None, str | None]:
    """The JSON document uploaded in ``field``, or why not (in Dutch)."""
    upload = data.get(field)
    if not isinstance(upload, web.FileField):
        return None, "Kies een bestand."
    raw = upload.file.read(MAX_DOCUMENT_BYTES + 1)
    if not raw:
        return None, "Het bestand is leeg."
    if len(raw) > MAX_DOCUMENT_BYTES:
        return None, f"Het bestand is groter dan {MAX_DOCUMENT_BYTES // 1024} KiB."
    try:
        return json.loads(raw), None
    except (ValueError, RecursionError):
        return None, "Het bestand is geen JSON: kies het bestand zoals de partner het stuurde."


# --- status ---------------------------------------------------------------------------


def status_view(ctx: NodeContext) -> dict[str, Any]:
    """What the status page shows, read in one go on a reader thread."""
    st = admin.status(ctx)
    card, _ = ctx.own_card()
    now = ctx.clock.now()
    known = peers.all_peers(ctx.conn)
    states = [admin.peer_state(p, now) for p in known]
    installed = []
    for inst in convenants.latest_versions(ctx.conn):
        _, _, why_not = admin.convenant_status(ctx, inst.document.to_json())
        figures = st["convenants"][inst.convenant.id]
        installed.append(
            {
                "id": inst.convenant.id,
                "title": inst.convenant.title,
                "version": inst.convenant.version,
                "in_force": why_not is None,
                "tag_set_version": figures["tag_set_version"],
                "tag_set_count": figures["tag_set_count"],
            }
        )
    size = admin.database_size(ctx)
    accounts = credentials.standings(ctx.conn)
    # The privacy officer's verify, as its audit.verified entry recorded it: a full
    # verify reads every entry, too much for a status page that anyone may reload.
    verified = verification.last_verification(ctx.conn)
    return {
        "verified": verified,
        "since_verified": st["log_size"] - verified.seq - 1 if verified else None,
        "st": st,
        "card": card,
        "card_valid": card.valid_at(now),
        "size": size,
        "size_share": round(100 * size.used_bytes / size.max_bytes) if size.max_bytes else None,
        "peer_counts": {w: states.count(s) for s, w in PEER_STATE_WORDS.items()},
        "installed": installed,
        "last_change": admin.last_registry_change(ctx),
        "users_active": sum(1 for a in accounts if a.revoked_at is None),
    }


@dataclass(frozen=True)
class SelfCheck:
    ok: bool
    detail: str
    millis: int


async def _self_check(request: web.Request, ctx: NodeContext) -> SelfCheck:
    """Does the node answer at its own endpoint, as a partner would reach it?"""
    url = ctx.cfg.endpoint.unicode_string().rstrip("/") + "/healthz"
    started = ctx.clock.monotonic()
    try:
        async with request.config_dict[SESSION].get(
            url, timeout=aiohttp.ClientTimeout(total=SELF_CHECK_SECONDS)
        ) as resp:
            body = await resp.json(content_type=None) if resp.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        spent = round(1000 * (ctx.clock.monotonic() - started))
        what = "geen antwoord binnen de tijd" if isinstance(e, TimeoutError) else "niet bereikt"
        return SelfCheck(False, what, spent)
    spent = round(1000 * (ctx.clock.monotonic() - started))
    if isinstance(body, dict) and body.get("node_id") == ctx.node_id:
        return SelfCheck(True, "antwoordt", spent)
    return SelfCheck(False, "een ander antwoord dan van deze node", spent)


async def status(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    started = ctx.clock.monotonic()
    view = await ctx.read(lambda: status_view(ctx))
    view["read_millis"] = round(1000 * (ctx.clock.monotonic() - started))
    view["self_check"] = await _self_check(request, ctx)
    view["when"] = when
    view["mib"] = mib
    return _render(request, "beheer_status.html", view)


# --- partners -------------------------------------------------------------------------


def _peer_rows(ctx: NodeContext) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    return [
        {
            "node_id": p.node_id,
            "organisation": p.card.organisation,
            "org_type": p.card.org_type,
            "endpoint": p.card.endpoint_url,
            "fingerprint": p.card.signing_fingerprint,
            "valid_until": when(p.card.valid_until),
            "state": admin.peer_state(p, now),
            "words": PEER_STATE_WORDS[admin.peer_state(p, now)],
            "revoked_at": when(p.revoked_at),
        }
        for p in peers.all_peers(ctx.conn)
    ]


async def _listing_page(
    request: web.Request,
    template: str,
    listing: tuple[str, Callable[[NodeContext], list[dict[str, Any]]]],
    *,
    errors: list[tuple[str, str]] | None,
    notice: str | None,
    status: int,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """One of the admin's lists (partners, convenants, users), read off the loop, with
    what was just done (``notice``) or why not (``errors``, the form kept)."""
    ctx = ctx_of(request)
    name, rows_of = listing
    rows = await ctx.read(lambda: rows_of(ctx))
    values = {name: rows, "errors": errors or [], "notice": notice, **(extra or {})}
    return _render(request, template, values, status)


async def _partners_page(
    request: web.Request,
    *,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    listing = ("peers", _peer_rows)
    return await _listing_page(
        request, "beheer_partners.html", listing, errors=errors, notice=notice, status=status
    )


async def partners(request: web.Request) -> web.StreamResponse:
    return await _partners_page(request)


def _card_problem(e: VhnodeError) -> str:
    """A refused peer card, in words an admin can act on."""
    if isinstance(e, ExpiredDocument):
        return (
            "Deze kaart is verlopen. Vraag de partner om een vernieuwde kaart (vhnode card renew)."
        )
    if isinstance(e, CardNotYetValid):
        return (
            "Deze kaart is pas later geldig dan de klok van deze node aangeeft. Controleer de "
            "klok van beide nodes."
        )
    if isinstance(e, KeyMismatch):
        return (
            "De ondertekeningssleutel van deze kaart hoort al bij een andere partner, of deze "
            "partner is bekend met een andere sleutel. Er is niets gewijzigd."
        )
    if isinstance(e, Conflict):
        return (
            "Deze kaart is ouder dan de kaart die de node van deze partner heeft; een oudere "
            "kaart vervangt geen nieuwere."
        )
    if isinstance(e, InputError) and "own card" in str(e):
        return "Dit is de kaart van deze node zelf."
    return (
        "De handtekening of de inhoud van deze kaart klopt niet: dit is geen geldige "
        "partnerkaart, of hij is onderweg gewijzigd. Er is niets toegevoegd."
    )


@dataclass(frozen=True)
class CardPreview:
    card: PeerCard
    text: str  # the card as it travels back in the hidden field
    prospect: str  # new, update, unchanged, rotation, own
    held_fingerprint: str | None
    held_revoked: bool


def _preview(ctx: NodeContext, card_json: Any) -> CardPreview:
    """The uploaded card verified now (§4.2 step 1), and what adding it would do."""
    card, doc = verify_card(card_json, ctx.clock.now())
    text = json.dumps(doc.to_json(), separators=(",", ":"))
    if card.node_id == ctx.node_id:
        return CardPreview(card, text, "own", None, False)
    held = peers.by_id(ctx.conn, card.node_id)
    if held is None:
        return CardPreview(card, text, "new", None, False)
    if held.card.signing_fingerprint != card.signing_fingerprint:
        prospect = "rotation"
    elif held.document.payload_b64 == doc.payload_b64:
        prospect = "unchanged"
    else:
        prospect = "update"
    return CardPreview(
        card, text, prospect, held.card.signing_fingerprint, held.revoked_at is not None
    )


def _card_facts(card: PeerCard) -> dict[str, str]:
    return {
        "node_id": card.node_id,
        "organisation": card.organisation,
        "org_type": card.org_type,
        "endpoint": card.endpoint_url,
        "fingerprint": card.signing_fingerprint,
        "encryption_fingerprint": card.encryption_fingerprint,
        # The TLS key the partner's connections must use (§12.3); a v1 card names none.
        "tls_fingerprint": card.tls_key_fingerprint or "geen (kaart zonder TLS)",
        "valid_from": when(card.valid_from),
        "valid_until": when(card.valid_until),
    }


async def card_upload(request: web.Request) -> web.StreamResponse:
    """Step one of adding a partner: the uploaded card, verified, shown; nothing added."""
    ctx = ctx_of(request)
    card_json, problem = await _read_upload(await forms.form(request), "kaart")
    if problem is None:
        try:
            preview = await ctx.read(lambda: _preview(ctx, card_json))
        except VhnodeError as e:
            problem = _card_problem(e)
    if problem is not None:
        return await _partners_page(request, errors=[("kaart", problem)], status=400)
    if preview.prospect == "own":
        return await _partners_page(
            request, errors=[("kaart", "Dit is de kaart van deze node zelf.")], status=400
        )
    return _render(
        request,
        "beheer_kaart.html",
        {
            "facts": _card_facts(preview.card),
            "card_text": preview.text,
            "prospect": preview.prospect,
            "held_fingerprint": preview.held_fingerprint,
            "held_revoked": preview.held_revoked,
        },
    )


async def card_add(request: web.Request) -> web.StreamResponse:
    """Step two: the card from the confirmation page, verified again and added (logged
    as ``vhnode peer add`` logs it) if it is still the card whose fingerprint was shown."""
    ctx = ctx_of(request)
    data = await forms.form(request)
    shown = str(data.get("vingerafdruk", ""))
    rotate = data.get("sleutelwissel") == "ja"
    try:
        card_json = json.loads(str(data.get("kaart", "")))
    except (ValueError, RecursionError):
        card_json = None
    if card_json is None:
        return await _partners_page(
            request, errors=[("kaart", "Upload de kaart opnieuw.")], status=400
        )
    by = _admin_name(request)

    def confirm() -> tuple[PeerCard, str] | VhnodeError | None:
        # On the writer, not the loop: the card's signature is checked here (and again by
        # add_peer, a few microseconds), and only the card whose fingerprint was shown.
        try:
            card, _ = verify_card(card_json, ctx.clock.now())
        except VhnodeError as e:
            return e
        if card.signing_fingerprint != shown:
            return None
        return admin.add_peer(ctx, card_json, rotate=rotate, by=by)

    try:
        confirmed = await ctx.write(confirm)
    except VhnodeError as e:
        return await _partners_page(request, errors=[("kaart", _card_problem(e))], status=409)
    if isinstance(confirmed, VhnodeError):
        errors = [("kaart", _card_problem(confirmed))]
        return await _partners_page(request, errors=errors, status=400)
    if confirmed is None:
        message = "Dit is niet de kaart die u zag; er is niets toegevoegd. Upload hem opnieuw."
        return await _partners_page(request, errors=[("kaart", message)], status=400)
    added, outcome = confirmed
    notice = f"Kaart van {added.organisation} ({added.node_id}) {OUTCOME_WORDS[outcome]}."
    if outcome in ("added", "rotated"):
        notice += " Bevestig de vingerafdruk telefonisch met de beheerder van de partner."
    return await _partners_page(request, notice=notice)


async def partner_revoke(request: web.Request) -> web.StreamResponse:
    """Revoke a partner's card, after a confirmation page (``vhnode peer revoke``)."""
    ctx = ctx_of(request)
    data = await forms.form(request)
    node_id = str(data.get("partner", ""))
    rows = {r["node_id"]: r for r in await ctx.read(lambda: _peer_rows(ctx))}
    peer = rows.get(node_id)
    if peer is None:
        return await _partners_page(
            request, errors=[("partners", "Kies een partner uit de lijst.")], status=400
        )
    if peer["state"] == "revoked":
        return await _partners_page(
            request, notice=f"De kaart van {node_id} was al ingetrokken; er is niets gewijzigd."
        )
    if data.get("bevestigd") != "ja":
        return _render(
            request,
            "beheer_bevestigen.html",
            {
                "title": f"Partner {node_id} intrekken?",
                "text": "Deze node vertrouwt de kaart van deze partner dan niet meer: zij "
                "beantwoordt geen vragen van deze partner meer en vraagt hem niets meer. Dit "
                "wordt vastgelegd in het logboek. Terugdraaien kan alleen met een nieuwe kaart "
                "van de partner.",
                "facts": [
                    ("Partner", f"{peer['organisation']} ({node_id})"),
                    ("Vingerafdruk", peer["fingerprint"]),
                ],
                "action": "/app/beheer/partners/intrekken",
                "fields": {"partner": node_id},
                "confirm": "Partner intrekken",
                "back": "/app/beheer/partners",
            },
        )
    by = _admin_name(request)
    await ctx.write(lambda: admin.revoke_peer(ctx, node_id, by=by))
    return await _partners_page(request, notice=f"De kaart van {node_id} is ingetrokken.")


# --- convenants -----------------------------------------------------------------------


def _not_in_force_words(
    conv: Convenant, rows: list[admin.PartyStatus], now: datetime
) -> str | None:
    """Why the convenant is not in force, in the order ``policy.convenant.in_force``
    decides it; None when it is."""
    if now < conv.valid_from:
        return f"Nog niet ingegaan: geldig vanaf {when(conv.valid_from)}."
    if now >= conv.valid_until:
        return f"Verlopen op {when(conv.valid_until)}."
    for r in rows:
        if r.signature == "no_card":
            return (
                f"Van {r.organisation} ({r.node_id}) is geen partnerkaart aanwezig, dus haar "
                "handtekening kan niet worden gecontroleerd."
            )
        if r.signature != "signed":
            return f"Een geldige handtekening van {r.organisation} ({r.node_id}) ontbreekt."
    return None


def _convenant_rows(ctx: NodeContext) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    out = []
    installed = convenants.latest_versions(ctx.conn)
    withdrawals = convenants.withdrawals(ctx.conn)
    for inst in installed:
        conv, rows, why_not = admin.convenant_status(ctx, inst.document.to_json())
        own = conv.party(ctx.node_id)
        reason = _not_in_force_words(conv, rows, now) if why_not is not None else None
        if why_not is not None and reason is None:
            reason = why_not  # a refusal this page has no words for: the policy's own
        out.append(
            {
                "id": conv.id,
                "version": conv.version,
                "title": conv.title,
                "valid_from": when(conv.valid_from),
                "valid_until": when(conv.valid_until),
                "installed_at": when(inst.installed_at),
                "own_roles": [CONVENANT_ROLE_WORDS.get(r, r) for r in own.roles] if own else [],
                "in_force": why_not is None,
                "reason": reason,
                "parties": [
                    {
                        "node_id": r.node_id,
                        "organisation": r.organisation,
                        "roles": [CONVENANT_ROLE_WORDS.get(x, x) for x in r.roles],
                        "signature": r.signature,
                        "signature_words": SIGNATURE_WORDS.get(r.signature, r.signature),
                        "withdrawn_at": when(r.withdrawn_at),
                    }
                    for r in rows
                ],
                "withdrawals": [
                    {
                        "party": w.withdrawal.party,
                        "version": w.withdrawal.convenant_version,
                        "withdrawn_at": when(w.withdrawal.withdrawn_at),
                        "in_effect": now >= w.withdrawal.withdrawn_at,
                        "reason": w.withdrawal.reason,
                        "installed_at": when(w.installed_at),
                    }
                    for w in withdrawals
                    if w.withdrawal.convenant_id == conv.id
                ],
            }
        )
    return out


async def _convenants_page(
    request: web.Request,
    *,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    listing = ("convenants", _convenant_rows)
    return await _listing_page(
        request, "beheer_convenanten.html", listing, errors=errors, notice=notice, status=status
    )


async def convenant_list(request: web.Request) -> web.StreamResponse:
    return await _convenants_page(request)


def _install_words(conv: Convenant, check: admin.InstallCheck) -> list[str]:
    names = {p.node_id: p.organisation for p in conv.parties}

    def who(ids: tuple[str, ...]) -> str:
        return ", ".join(f"{names.get(i, i)} ({i})" for i in ids)

    words = []
    if check.unsigned:
        words.append(
            f"Het convenant is niet (geldig) ondertekend door: {who(check.unsigned)}. "
            "Een handtekening die ontbreekt of niet klopt, maakt het convenant ongeldig."
        )
    if check.no_card:
        words.append(
            f"Onbekende partij: van {who(check.no_card)} heeft deze node geen partnerkaart, "
            "dus haar handtekening kan niet worden gecontroleerd. Voeg eerst de kaart toe "
            "(Partners)."
        )
    if check.other_key:
        words.append(
            f"De partnerkaart van {who(check.other_key)} heeft een andere sleutel dan het "
            "convenant noemt."
        )
    if check.expired:
        words.append(
            f"Dit convenant is verlopen op {when(conv.valid_until)}; een verlopen convenant "
            "wordt niet geïnstalleerd."
        )
    return words


async def _install_convenant(
    request: web.Request, ctx: NodeContext, doc_json: Any
) -> web.StreamResponse:
    conv, doc = parse_convenant(doc_json)
    if conv.party(ctx.node_id) is None:
        message = f"Deze node ({ctx.node_id}) is geen partij bij convenant {conv.id}."
        return await _convenants_page(request, errors=[("document", message)], status=400)
    check = await ctx.read(lambda: admin.check_install(ctx, conv, doc))
    if not check.ok:
        errors = [("document", w) for w in _install_words(conv, check)]
        return await _convenants_page(request, errors=errors, status=400)
    known = ctx.trust().version(conv.id, conv.version) is not None
    by = _admin_name(request)
    try:
        prepared = await ctx.read(lambda: admin.prepare_install(ctx, doc_json))
        await ctx.write(lambda: admin.apply_install(ctx, prepared, by=by))
    except Conflict:
        message = (
            f"Van convenant {conv.id} versie {conv.version} is hier een andere tekst "
            "geïnstalleerd; er is niets gewijzigd."
        )
        return await _convenants_page(request, errors=[("document", message)], status=409)
    except ConvenantNotInForce:
        # A peer card changed between the check and the install: say it as the check does.
        check = await ctx.read(lambda: admin.check_install(ctx, conv, doc))
        errors = [("document", w) for w in _install_words(conv, check)] or [
            ("document", "Het convenant kon niet worden geïnstalleerd; er is niets gewijzigd.")
        ]
        return await _convenants_page(request, errors=errors, status=409)
    done = "bijgewerkt (meer handtekeningen)" if known else "geïnstalleerd"
    return await _convenants_page(
        request, notice=f"Convenant {conv.title} ({conv.id} versie {conv.version}) {done}."
    )


async def _install_withdrawal(
    request: web.Request, ctx: NodeContext, doc_json: Any
) -> web.StreamResponse:
    w, _ = parse_withdrawal(doc_json)
    by = _admin_name(request)
    try:
        _, new = await ctx.write(lambda: admin.install_withdrawal(ctx, doc_json, by=by))
    except UnknownConvenant:
        message = (
            f"Convenant {w.convenant_id} versie {w.convenant_version}, waaruit deze "
            "terugtrekking komt, is hier niet geïnstalleerd."
        )
        return await _convenants_page(request, errors=[("document", message)], status=400)
    except NotAParty:
        message = f"{w.party} is geen partij bij convenant {w.convenant_id}."
        return await _convenants_page(request, errors=[("document", message)], status=400)
    except Conflict:
        message = (
            f"Van {w.party} is al een andere terugtrekking uit {w.convenant_id} "
            f"versie {w.convenant_version} geïnstalleerd; er is niets gewijzigd."
        )
        return await _convenants_page(request, errors=[("document", message)], status=409)
    except ProtocolError:
        message = (
            f"De handtekening van deze terugtrekking is niet die van {w.party} zoals het "
            "convenant die noemt: niet geïnstalleerd."
        )
        return await _convenants_page(request, errors=[("document", message)], status=400)
    state = "geïnstalleerd" if new else "was al geïnstalleerd"
    return await _convenants_page(
        request,
        notice=f"Terugtrekking van {w.party} uit {w.convenant_id} per "
        f"{when(w.withdrawn_at)} {state}.",
    )


async def convenant_install(request: web.Request) -> web.StreamResponse:
    """Install an uploaded convenant signed by every party, or a party's withdrawal,
    through the CLI's flows (``vhnode convenant install`` / ``install-withdrawal``)."""
    ctx = ctx_of(request)
    doc_json, problem = await _read_upload(await forms.form(request), "document")
    if problem is not None:
        return await _convenants_page(request, errors=[("document", problem)], status=400)
    try:
        typ = jws.parse(doc_json).typ
        if typ == WITHDRAWAL_TYP:
            return await _install_withdrawal(request, ctx, doc_json)
        if typ == CONVENANT_TYP:
            return await _install_convenant(request, ctx, doc_json)
    except VhnodeError:
        pass  # not a document of either kind, as below
    message = (
        "Dit bestand is geen ondertekend convenant of ondertekende terugtrekking (of het is "
        "onderweg gewijzigd): er is niets geïnstalleerd."
    )
    return await _convenants_page(request, errors=[("document", message)], status=400)


# --- users ----------------------------------------------------------------------------


def _user_rows(ctx: NodeContext) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    return [
        {
            "name": s.name,
            "role": s.role,
            "role_words": ROLE_NAMES.get(s.role, s.role),
            "created_at": when(s.created_at),
            "revoked_at": when(s.revoked_at),
            "has_password": s.has_password,
            "has_second_factor": s.has_second_factor,
            "locked_until": when(s.locked_until)
            if s.locked_until is not None and now < s.locked_until
            else "",
        }
        for s in credentials.standings(ctx.conn)
    ]


async def _users_page(
    request: web.Request,
    *,
    errors: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    extra = {
        "me": _admin_name(request),
        "roles": [(r, ROLE_NAMES.get(r, r)) for r in users.ROLES],
        "typed": typed or {},
    }
    return await _listing_page(
        request,
        "beheer_gebruikers.html",
        ("users", _user_rows),
        errors=errors,
        notice=notice,
        status=status,
        extra=extra,
    )


async def user_list(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


def _password_errors(
    password: str, again: str, field: str, required: bool
) -> list[tuple[str, str]]:
    if not password and not again:
        return [(field, "Vul een wachtwoord in.")] if required else []
    if password != again:
        return [(field + "-herhaal", "De twee wachtwoorden zijn niet gelijk.")]
    if len(password) < signin.MIN_PASSWORD_CHARS:
        return [(field, f"Een wachtwoord heeft ten minste {signin.MIN_PASSWORD_CHARS} tekens.")]
    if len(password) > signin.MAX_PASSWORD_CHARS:
        return [(field, f"Een wachtwoord heeft ten hoogste {signin.MAX_PASSWORD_CHARS} tekens.")]
    return []


def _enrolment_view(enrolment: signin.Enrolment | None) -> dict[str, str] | None:
    if enrolment is None:
        return None
    qr = segno.make(enrolment.uri, error="m")
    return {
        "secret": enrolment.secret,
        "uri": enrolment.uri,
        "qr": qr.svg_data_uri(scale=5, border=4),
    }


async def user_add(request: web.Request) -> web.StreamResponse:
    """A new user with a role (``vhnode user add``): its API token shown once; with a
    password also the web sign-in, whose new TOTP secret is shown once with a QR code."""
    ctx = ctx_of(request)
    data = await forms.form(request)
    name = str(data.get("naam", "")).strip()
    role = str(data.get("rol", ""))
    password, again = str(data.get("wachtwoord", "")), str(data.get("wachtwoord-herhaal", ""))
    errors: list[tuple[str, str]] = []
    try:
        check_user_name(name)
    except InputError:
        errors.append(
            (
                "naam",
                "Een gebruikersnaam heeft 1 tot 64 kleine letters, cijfers, '.', '_' of '-', "
                "en begint met een letter of cijfer.",
            )
        )
    if role not in users.ROLES:
        errors.append(("rol", "Kies een rol."))
    errors += _password_errors(password, again, "wachtwoord", required=False)
    typed = {"naam": name, "rol": role}
    if errors:
        return await _users_page(request, errors=errors, typed=typed, status=400)
    hashed = await signin.hash_password(password) if password else None
    by = _admin_name(request)

    def add() -> tuple[str, signin.Enrolment | None]:
        token = admin.create_user(ctx, name, role, by=by)
        enrolment = (
            signin.store_credentials(ctx, name, hashed, new_second_factor=True, by=by)
            if hashed is not None
            else None
        )
        return token, enrolment

    try:
        token, enrolment = await ctx.write(add)
    except Conflict:
        errors = [("naam", f"Er is al een gebruiker {name}.")]
        return await _users_page(request, errors=errors, typed=typed, status=409)
    return _render(
        request,
        "beheer_inloggegevens.html",
        {
            "name": name,
            "role_words": ROLE_NAMES.get(role, role),
            "token": token,
            "password_set": hashed is not None,
            "enrolment": _enrolment_view(enrolment),
        },
    )


def _self_refusal(request: web.Request, name: str, what: str) -> list[tuple[str, str]]:
    """An admin does not lock itself out here: its own account is changed only by another
    admin, or on the node's host with ``vhnode user``."""
    if name != _admin_name(request):
        return []
    return [
        (
            "gebruikers",
            f"U kunt uw eigen account hier niet {what}: vraag een andere beheerder, of gebruik "
            "vhnode user op de server van de node.",
        )
    ]


async def user_revoke(request: web.Request) -> web.StreamResponse:
    """Revoke a user after a confirmation page (``vhnode user revoke``): its token stops
    working and its web sessions end."""
    ctx = ctx_of(request)
    data = await forms.form(request)
    name = str(data.get("gebruiker", ""))
    rows = {r["name"]: r for r in await ctx.read(lambda: _user_rows(ctx))}
    user = rows.get(name)
    if user is None:
        return await _users_page(
            request, errors=[("gebruikers", "Kies een gebruiker uit de lijst.")], status=400
        )
    refused = _self_refusal(request, name, "intrekken")
    if refused:
        return await _users_page(request, errors=refused, status=400)
    if user["revoked_at"]:
        return await _users_page(
            request, notice=f"Gebruiker {name} was al ingetrokken; er is niets gewijzigd."
        )
    if data.get("bevestigd") != "ja":
        return _render(
            request,
            "beheer_bevestigen.html",
            {
                "title": f"Gebruiker {name} intrekken?",
                "text": "De gebruiker kan zich dan niet meer aanmelden, haar token voor de "
                "API werkt niet meer en haar sessies eindigen meteen. Dit wordt vastgelegd in "
                "het logboek en kan niet worden teruggedraaid: maak zo nodig een nieuwe "
                "gebruiker.",
                "facts": [("Gebruiker", name), ("Rol", user["role_words"])],
                "action": "/app/beheer/gebruikers/intrekken",
                "fields": {"gebruiker": name},
                "confirm": "Gebruiker intrekken",
                "back": "/app/beheer/gebruikers",
            },
        )
    by = _admin_name(request)
    try:
        await ctx.write(lambda: admin.revoke_user(ctx, name, by=by))
    except NotFound:
        return await _users_page(
            request, notice=f"Gebruiker {name} was al ingetrokken; er is niets gewijzigd."
        )
    return await _users_page(request, notice=f"Gebruiker {name} is ingetrokken.")


async def user_credentials(request: web.Request) -> web.StreamResponse:
    """A new password and/or a new second factor for a user (``vhnode user
    set-password [--new-second-factor]``): its sessions end; a new password lifts a
    lock-out; a new TOTP secret is shown once."""
    ctx = ctx_of(request)
    data = await forms.form(request)
    name = str(data.get("gebruiker-herstel", ""))
    password, again = (
        str(data.get("nieuw-wachtwoord", "")),
        str(data.get("nieuw-wachtwoord-herhaal", "")),
    )
    new_factor = data.get("nieuwe-tweede-factor") == "ja"
    rows = {r["name"]: r for r in await ctx.read(lambda: _user_rows(ctx))}
    typed = {"gebruiker-herstel": name}
    errors: list[tuple[str, str]] = []
    user = rows.get(name)
    if user is None or user["revoked_at"]:
        errors.append(("gebruiker-herstel", "Kies een gebruiker die niet is ingetrokken."))
    else:
        errors += _self_refusal(request, name, "opnieuw instellen")
    errors += _password_errors(password, again, "nieuw-wachtwoord", required=False)
    if not errors and not password and not new_factor:
        errors.append(
            (
                "nieuw-wachtwoord",
                "Vul een nieuw wachtwoord in, vink een nieuwe tweede factor aan, of beide.",
            )
        )
    if errors:
        return await _users_page(request, errors=errors, typed=typed, status=400)
    hashed = await signin.hash_password(password) if password else None
    by = _admin_name(request)
    try:
        enrolment = await ctx.write(
            lambda: signin.store_credentials(ctx, name, hashed, new_second_factor=new_factor, by=by)
        )
    except NotFound:
        errors = [("gebruiker-herstel", "Kies een gebruiker die niet is ingetrokken.")]
        return await _users_page(request, errors=errors, typed=typed, status=404)
    return _render(
        request,
        "beheer_inloggegevens.html",
        {
            "name": name,
            "role_words": rows[name]["role_words"],
            "token": None,
            "password_set": hashed is not None,
            "enrolment": _enrolment_view(enrolment),
        },
    )
