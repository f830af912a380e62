"""The admin's pages (docs/webapp.md "Beheer") over real HTTP against a real federation:
the status page says what ``admin.status`` says; a partner's card is shown with its
fingerprint and added only on confirmation, a tampered one refused; a partner revoked
after confirmation; a convenant installed by upload is in force, a bad one refused with
nothing changed; users added, reset and revoked, after which sign-in works with the
new secret. Every change is logged as the CLI logs it."""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from node.flows import admin
from node.protocol import jws
from node.protocol.convenant import draft_from_toml
from node.protocol.peer_card import verify_card
from node.store import convenants, credentials, peers
from tests.federation import (
    DEFAULT_PARTIES,
    Federation,
    convenant_toml,
    log_entries,
)
from tests.webclient import PASSWORD, Browser, enrol

VH = "vh-test"
ME = "admin-vh-test"  # the admin the tests sign in as


@pytest.fixture
async def beheerder(federation: Federation) -> AsyncIterator[Browser]:
    """vh-test's admin, signed in."""
    node = federation.nodes[VH]
    secret = enrol(node, ("admin",))["admin"]
    b = Browser(node)
    await b.sign_in_as("admin", secret)
    yield b
    await b.close()


def figures(text: str) -> dict[str, str]:
    """The page's ``data-figure`` values (first of each), as text."""
    found: dict[str, str] = {}
    for name, value in re.findall(r'data-figure="([a-z_]+)"[^>]*>(.*?)</', text, re.S):
        found.setdefault(name, html.unescape(value).strip())
    return found


def hidden(text: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', text)
    assert found, name
    return html.unescape(found.group(1))


def alert(text: str) -> str:
    found = re.search(r'role="alert".*?</div>\s*</div>', text, re.S)
    assert found, text[:2000]
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(0)))


def card_file(card: Any) -> dict[str, tuple[str, bytes]]:
    return {"kaart": ("card.json", json.dumps(card, indent=2).encode())}


def tampered(card: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``card`` with its payload changed and its signature left as it was."""
    payload = json.loads(base64.urlsafe_b64decode(card["payload"] + "=="))
    payload.update(changes)
    raw = jws.canonical(payload)
    return {**card, "payload": base64.urlsafe_b64encode(raw).decode().rstrip("=")}


# --- status ----------------------------------------------------------------------------


async def test_the_status_page_shows_what_admin_status_says(
    federation: Federation, beheerder: Browser
) -> None:
    federation.register(
        VH,
        {"ref": "VH-1", "themes": ["casus"], "identifiers": [{"kind": "bsn", "bsn": "111222333"}]},
    )
    node = federation.nodes[VH]
    status, text, _ = await beheerder.get("/app/beheer")
    assert status == 200
    st = admin.status(node.ctx)
    shown = figures(text)
    assert shown["node_id"] == st["node_id"]
    assert shown["organisation"] == st["organisation"]
    assert shown["org_type"] == st["org_type"]
    assert shown["signing_key_fingerprint"] == st["signing_key_fingerprint"]
    card, _ = node.ctx.own_card()
    assert shown["encryption_key_fingerprint"] == card.encryption_fingerprint
    assert shown["endpoint"] == card.endpoint_url
    assert shown["registrations"] == str(st["registrations"]) == "1"
    assert shown["peers"] == str(len(st["peers"])) == "3"
    assert shown["log_size"] == f"{st['log_size']} vermeldingen"
    assert "(nu geldig)" in shown["card_validity"]
    assert shown["self_check"].startswith("Ja, in ")  # its own endpoint answered
    assert "geen grens ingesteld" in shown["database_size"]
    assert shown["last_verification"].startswith("Nog niet gecontroleerd")
    assert " door test: 1 toegevoegd of gewijzigd" in shown["last_change"]
    rows = re.findall(
        r'<tr class="utrecht-table__row" data-convenant="([^"]+)">(.*?)</tr>', text, re.S
    )
    assert [r[0] for r in rows] == list(st["convenants"])
    for convenant_id, row in rows:
        want = st["convenants"][convenant_id]
        got = figures(row)
        assert got["version"] == str(want["version"])
        assert got["tag_set_version"] == str(want["tag_set_version"])
        assert got["tag_set_count"] == str(want["tag_set_count"]) == "1"


async def test_the_status_page_sets_the_database_size_against_its_bound(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    node.ctx.cfg = node.ctx.cfg.model_copy(
        update={"database": node.ctx.cfg.database.model_copy(update={"max_size_mib": 64})}
    )
    _, text, _ = await beheerder.get("/app/beheer")
    size = admin.database_size(node.ctx)
    share = round(100 * size.used_bytes / (64 * 1024 * 1024))
    assert figures(text)["database_size"] == (
        f"{size.used_bytes / 1024 / 1024:.1f} MiB van ten hoogste 64.0 MiB ({share}%)"
    )


async def test_the_status_page_shows_the_last_verify_without_running_one(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    status, report = await federation.api(VH, "GET", "/api/v1/audit/verify", role="privacy_officer")
    assert status == 200
    assert report["ok"]
    verified = log_entries(node, "audit.verified")
    assert len(verified) == 1
    _, text, _ = await beheerder.get("/app/beheer")
    _, text, _ = await beheerder.get("/app/beheer")
    shown = figures(text)["last_verification"]
    assert f"door privacy_officer-vh-test: in orde, {report['entries']} vermeldingen" in shown
    assert len(log_entries(node, "audit.verified")) == 1  # viewing verified nothing


# --- partners ---------------------------------------------------------------------------


async def test_a_card_is_shown_with_its_fingerprint_and_added_only_after_confirmation(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    newcomer = federation.add_node("reclassering-test", "reclassering")
    card, _ = newcomer.ctx.own_card()
    entries_before = len(log_entries(node))

    status, text, _ = await beheerder.upload(
        "/app/beheer/partners/kaart", card_file(newcomer.card_json())
    )
    assert status == 200, text[:2000]
    shown = figures(text)
    assert shown["node_id"] == "reclassering-test"
    assert shown["organisation"] == f"{card.organisation} (reclassering)"
    assert shown["endpoint"] == card.endpoint_url
    assert shown["fingerprint"] == card.signing_fingerprint
    assert shown["tls_fingerprint"] == (card.tls_key_fingerprint or "geen (kaart zonder TLS)")
    assert "Dit is een nieuwe partner" in text
    # Shown, not added: no card held, nothing logged.
    assert peers.by_id(node.ctx.conn, "reclassering-test") is None
    assert len(log_entries(node)) == entries_before

    status, text, _ = await beheerder.post(
        "/app/beheer/partners/toevoegen",
        {"kaart": hidden(text, "kaart"), "vingerafdruk": hidden(text, "vingerafdruk")},
    )
    assert status == 200, text[:2000]
    assert "Kaart van " + card.organisation + " (reclassering-test) toegevoegd" in html.unescape(
        text
    )
    held = peers.by_id(node.ctx.conn, "reclassering-test")
    assert held is not None
    assert held.card.signing_fingerprint == card.signing_fingerprint
    added = log_entries(node, "peer.added")
    assert added[-1]["counterparty"] == "reclassering-test"
    # Who added it: the admin signed in (the CLI's entry has no "by": the host's records).
    assert added[-1]["data"] == {"signing_key_fingerprint": card.signing_fingerprint, "by": ME}
    assert 'data-peer="reclassering-test" data-state="active"' in text


async def test_a_tls_card_is_shown_with_its_tls_key_fingerprint(
    federation: Federation, beheerder: Browser
) -> None:
    newcomer = federation.add_node("jeugdzorg-test", "jeugdzorg", tls=True)
    card, _ = newcomer.ctx.own_card()
    assert card.tls_key_fingerprint is not None
    status, text, _ = await beheerder.upload(
        "/app/beheer/partners/kaart", card_file(newcomer.card_json())
    )
    assert status == 200, text[:2000]
    assert figures(text)["tls_fingerprint"] == card.tls_key_fingerprint


async def test_a_tampered_card_is_refused_and_nothing_is_added(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    newcomer = federation.add_node("reclassering-test", "reclassering")
    genuine = newcomer.card_json()
    before = len(log_entries(node))

    # Changed on the way: the endpoint points elsewhere, the signature is the card's own.
    forged = tampered(genuine, endpoint="http://127.0.0.1:1")
    status, text, _ = await beheerder.upload("/app/beheer/partners/kaart", card_file(forged))
    assert status == 400
    assert "klopt niet" in alert(text)
    assert 'href="#kaart"' in text

    # Not JSON at all, and no file: the form says so.
    status, text, _ = await beheerder.upload(
        "/app/beheer/partners/kaart", {"kaart": ("card.json", b"dit is geen kaart")}
    )
    assert status == 400
    assert "geen JSON" in alert(text)
    status, text, _ = await beheerder.post("/app/beheer/partners/kaart", {})
    assert status == 400
    assert "Kies een bestand" in alert(text)

    # The confirmation step is checked again: a card swapped in the hidden field, or one
    # whose fingerprint is not the one shown, is refused as well.
    status, text, _ = await beheerder.upload("/app/beheer/partners/kaart", card_file(genuine))
    assert status == 200
    shown = hidden(text, "vingerafdruk")
    status, text, _ = await beheerder.post(
        "/app/beheer/partners/toevoegen",
        {"kaart": json.dumps(forged), "vingerafdruk": shown},
    )
    assert status == 400
    assert "klopt niet" in alert(text)
    other = federation.add_node("jeugd-test", "gemeente").card_json()
    status, text, _ = await beheerder.post(
        "/app/beheer/partners/toevoegen",
        {"kaart": json.dumps(other), "vingerafdruk": shown},
    )
    assert status == 400
    assert "niet de kaart die u zag" in alert(text)

    assert peers.by_id(node.ctx.conn, "reclassering-test") is None
    assert peers.by_id(node.ctx.conn, "jeugd-test") is None
    assert len(log_entries(node)) == before


async def test_the_gate_reads_the_form_token_from_a_multipart_form(
    federation: Federation, beheerder: Browser
) -> None:
    newcomer = federation.add_node("reclassering-test", "reclassering")
    status, text, _ = await beheerder.upload(
        "/app/beheer/partners/kaart", card_file(newcomer.card_json()), token=False
    )
    assert status == 403
    assert "Formulier verlopen" in text
    beheerder.token = "0" * 64
    status, text, _ = await beheerder.upload(
        "/app/beheer/partners/kaart", card_file(newcomer.card_json())
    )
    assert status == 403


async def test_a_partner_is_revoked_after_confirmation(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    await beheerder.get("/app/beheer/partners")
    status, text, _ = await beheerder.post("/app/beheer/partners/intrekken", {"partner": "om-test"})
    assert status == 200
    assert "Partner om-test intrekken?" in text
    held = peers.by_id(node.ctx.conn, "om-test")
    assert held is not None
    assert held.revoked_at is None
    assert log_entries(node, "peer.revoked") == []

    status, text, _ = await beheerder.post(
        "/app/beheer/partners/intrekken", {"partner": "om-test", "bevestigd": "ja"}
    )
    assert status == 200
    assert 'data-peer="om-test" data-state="revoked"' in text
    held = peers.by_id(node.ctx.conn, "om-test")
    assert held is not None
    assert held.revoked_at is not None
    assert [(e["counterparty"], e["data"]) for e in log_entries(node, "peer.revoked")] == [
        ("om-test", {"by": ME})
    ]

    status, text, _ = await beheerder.post(
        "/app/beheer/partners/intrekken", {"partner": "onbekend", "bevestigd": "ja"}
    )
    assert status == 400
    assert "Kies een partner" in alert(text)


# --- convenants -------------------------------------------------------------------------

SECOND = "vh-test-jeugd"


def second_convenant(
    fed: Federation,
    *,
    signers: tuple[str, ...] | None = None,
    valid_until: str = "2099-01-01T00:00:00Z",
    cards: dict[str, Any] | None = None,
    parties: tuple[tuple[str, str, tuple[str, ...], bool], ...] = DEFAULT_PARTIES,
) -> dict[str, Any]:
    """A second convenant among ``parties``, signed by ``signers`` (default all)."""
    toml = convenant_toml(parties, convenant_id=SECOND, valid_until=valid_until)
    if cards is None:
        doc = admin.draft_convenant(fed.nodes[VH].ctx, toml)
    else:
        doc = draft_from_toml(toml, cards)
    for node_id, *_ in parties:
        if signers is None or node_id in signers:
            doc = admin.sign_convenant(fed.nodes[node_id].ctx, doc.to_json())
    return doc.to_json()


def document_file(doc: Any) -> dict[str, tuple[str, bytes]]:
    return {"document": ("convenant.json", json.dumps(doc).encode())}


async def test_a_convenant_installed_by_upload_is_in_force(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    doc = second_convenant(federation)
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren", document_file(doc)
    )
    assert status == 200, alert(text) if 'role="alert"' in text else text[:1000]
    assert f"({SECOND} versie 1) geïnstalleerd" in html.unescape(text)
    assert f'data-convenant="{SECOND}" data-in-force="ja"' in text
    installed = convenants.latest(node.ctx.conn, SECOND)
    assert installed is not None
    _, rows, why_not = admin.convenant_status(node.ctx, installed.document.to_json())
    assert why_not is None
    assert {r.signature for r in rows} == {"signed"}
    installed_entry = log_entries(node, "convenant.installed")[-1]
    assert installed_entry["convenant"] == {"id": SECOND, "version": 1}
    assert installed_entry["data"]["by"] == ME
    # Our tag set under it is published in the same install, as the CLI's install does.
    assert admin.status(node.ctx)["convenants"][SECOND]["tag_set_version"] >= 1


async def test_bad_convenant_documents_are_refused_and_change_nothing(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]

    def state() -> tuple[int, int, int]:
        conn = node.ctx.conn
        return (
            conn.execute("SELECT count(*) FROM convenants").fetchone()[0],
            conn.execute("SELECT count(*) FROM convenant_withdrawals").fetchone()[0],
            len(log_entries(node)),
        )

    before = state()
    unsigned = second_convenant(federation, signers=(VH, "politie-test", "om-test"))
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren", document_file(unsigned)
    )
    assert status == 400
    assert "niet (geldig) ondertekend door: Ggz testregio (ggz-test)" in alert(text)

    full = second_convenant(federation)
    bad = {**full, "signatures": [dict(s) for s in full["signatures"]]}
    sig = bad["signatures"][1]["signature"]
    bad["signatures"][1]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren", document_file(bad)
    )
    assert status == 400
    assert "niet (geldig) ondertekend door" in alert(text)

    expired = second_convenant(federation, valid_until="2021-01-01T00:00:00Z")
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren", document_file(expired)
    )
    assert status == 400
    assert "verlopen op 2021-01-01 00:00 UTC" in alert(text)

    # A party this node holds no card of: its signature cannot be checked.
    stranger = federation.add_node("onbekend-test", "gemeente")
    cards = {}
    for sim in (*federation.nodes.values(),):
        if sim.node_id in (VH, "politie-test", "onbekend-test"):
            c, _ = sim.ctx.own_card()
            cards[c.node_id] = {
                "organisation": c.organisation,
                "org_type": c.org_type,
                "signing_fingerprint": c.signing_fingerprint,
                "encryption_fingerprint": c.encryption_fingerprint,
            }
    three = (
        (VH, "veiligheidshuis", ("casus",), True),
        ("politie-test", "politie", ("veelplegers",), True),
        ("onbekend-test", "gemeente", ("zorg",), False),
    )
    admin.add_peer(stranger.ctx, federation.nodes[VH].card_json())
    admin.add_peer(stranger.ctx, federation.nodes["politie-test"].card_json())
    admin.add_peer(federation.nodes["politie-test"].ctx, stranger.card_json())
    unknown = second_convenant(federation, cards=cards, parties=three)
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren", document_file(unknown)
    )
    assert status == 400
    assert "Onbekende partij" in alert(text)
    assert "(onbekend-test)" in alert(text)

    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren", document_file(federation.nodes[VH].card_json())
    )
    assert status == 400
    assert "geen ondertekend convenant" in alert(text)
    assert state() == before
    assert convenants.latest(node.ctx.conn, SECOND) is None


async def test_a_withdrawal_is_installed_by_upload(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    doc = admin.withdraw_from_convenant(
        federation.nodes["ggz-test"].ctx, "vh-test-veelplegers", "Wij stoppen met dit overleg"
    ).to_json()
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren",
        {"document": ("terugtrekking.json", json.dumps(doc).encode())},
    )
    assert status == 200, text[:1000]
    assert "Terugtrekking van ggz-test" in text
    assert 'data-withdrawal="ggz-test"' in text
    assert "Wij stoppen met dit overleg" in text
    entries = log_entries(node, "convenant.withdrawal_installed")
    assert [e["counterparty"] for e in entries] == ["ggz-test"]
    # The same document again changes nothing.
    status, text, _ = await beheerder.upload(
        "/app/beheer/convenanten/installeren",
        {"document": ("terugtrekking.json", json.dumps(doc).encode())},
    )
    assert status == 200
    assert "was al geïnstalleerd" in text
    assert len(log_entries(node, "convenant.withdrawal_installed")) == 1


# --- users ------------------------------------------------------------------------------


async def test_users_are_added_reset_and_revoked_and_sign_in_with_the_new_secret(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    await beheerder.get("/app/beheer/gebruikers")

    # Bad input first: the form comes back with the name kept, nobody added.
    status, text, _ = await beheerder.post(
        "/app/beheer/gebruikers/toevoegen",
        {"naam": "anna", "rol": "coordinator", "wachtwoord": PASSWORD, "wachtwoord-herhaal": "x"},
    )
    assert status == 400
    assert "niet gelijk" in alert(text)
    assert 'value="anna"' in text
    assert credentials.find(node.ctx.conn, node.ctx.keys.second_factor_key(), "anna") is None

    status, text, resp = await beheerder.post(
        "/app/beheer/gebruikers/toevoegen",
        {
            "naam": "anna",
            "rol": "coordinator",
            "wachtwoord": PASSWORD,
            "wachtwoord-herhaal": PASSWORD,
        },
    )
    assert status == 200, alert(text)
    assert resp.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="geheim">([A-Z2-7]+)<', text).group(1)  # type: ignore[union-attr]
    uri = html.unescape(re.search(r'id="otpauth">([^<]+)<', text).group(1))  # type: ignore[union-attr]
    assert uri.startswith("otpauth://totp/")
    assert f"secret={secret}" in uri
    assert 'src="data:image/svg+xml' in text
    assert re.search(r'id="token">vhn_', text)
    created = log_entries(node, "user.created")[-1]
    assert (created["actor"], created["data"]) == ("anna", {"role": "coordinator", "by": ME})
    assert log_entries(node, "user.credentials_set")[-1]["data"] == {
        "password": True,
        "second_factor": True,
        "by": ME,
    }

    anna = Browser(node)
    try:
        await anna.sign_in("anna", pyotp.TOTP(secret).at(node.clock.now()))
        status, text, resp = await anna.get("/app/")
        assert resp.url.path == "/app/"
        assert "Welkom, anna" in text

        # A new second factor only: anna's session ends, the old code app stops working.
        status, text, _ = await beheerder.post(
            "/app/beheer/gebruikers/inloggegevens",
            {"gebruiker-herstel": "anna", "nieuwe-tweede-factor": "ja"},
        )
        assert status == 200, alert(text)
        new_secret = re.search(r'id="geheim">([A-Z2-7]+)<', text).group(1)  # type: ignore[union-attr]
        assert new_secret != secret
        assert log_entries(node, "user.credentials_set")[-1]["data"] == {
            "password": False,
            "second_factor": True,
            "by": ME,
        }
        _, _, resp = await anna.get("/app/")
        assert resp.url.path == "/app/aanmelden"
        node.clock.advance(pyotp.TOTP(secret).interval * 2 * timedelta(seconds=1))
        status, _, _ = await anna.sign_in("anna", pyotp.TOTP(secret).at(node.clock.now()))
        assert status == 401
        await anna.sign_in("anna", pyotp.TOTP(new_secret).at(node.clock.now()))
        _, text, resp = await anna.get("/app/")
        assert resp.url.path == "/app/"

        # A new password only: the second factor stays.
        new_password = "een heel ander wachtwoord"
        status, text, _ = await beheerder.post(
            "/app/beheer/gebruikers/inloggegevens",
            {
                "gebruiker-herstel": "anna",
                "nieuw-wachtwoord": new_password,
                "nieuw-wachtwoord-herhaal": new_password,
            },
        )
        assert status == 200
        assert 'id="tweede-factor-ongewijzigd"' in text
        assert 'id="geheim"' not in text
        node.clock.advance(timedelta(seconds=60))
        status, _, _ = await anna.sign_in(
            "anna", pyotp.TOTP(new_secret).at(node.clock.now()), password=new_password
        )
        assert status == 200

        # Revoked, after confirmation: anna's session ends and she cannot sign in again.
        status, text, _ = await beheerder.post(
            "/app/beheer/gebruikers/intrekken", {"gebruiker": "anna"}
        )
        assert status == 200
        assert "Gebruiker anna intrekken?" in text
        assert log_entries(node, "user.revoked") == []
        status, text, _ = await beheerder.post(
            "/app/beheer/gebruikers/intrekken", {"gebruiker": "anna", "bevestigd": "ja"}
        )
        assert status == 200
        assert "Gebruiker anna is ingetrokken" in text
        assert [(e["actor"], e["data"]) for e in log_entries(node, "user.revoked")] == [
            ("anna", {"by": ME})
        ]
        _, _, resp = await anna.get("/app/")
        assert resp.url.path == "/app/aanmelden"
        node.clock.advance(timedelta(seconds=60))
        status, _, _ = await anna.sign_in(
            "anna", pyotp.TOTP(new_secret).at(node.clock.now()), password=new_password
        )
        assert status == 401
        assert log_entries(node, "web.sign_in_failed")[-1]["reason"] == "revoked"
    finally:
        await anna.close()


async def test_the_admin_cannot_revoke_or_reset_itself_here(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    me = ME
    status, text, _ = await beheerder.get("/app/beheer/gebruikers")
    row = re.search(rf'data-user="{me}">(.*?)</tr>', text, re.S).group(1)  # type: ignore[union-attr]
    assert "Intrekken" not in row
    assert "(uzelf)" in row
    before = len(log_entries(node))
    status, text, _ = await beheerder.post(
        "/app/beheer/gebruikers/intrekken", {"gebruiker": me, "bevestigd": "ja"}
    )
    assert status == 400
    assert "eigen account" in alert(text)
    status, text, _ = await beheerder.post(
        "/app/beheer/gebruikers/inloggegevens",
        {"gebruiker-herstel": me, "nieuwe-tweede-factor": "ja"},
    )
    assert status == 400
    assert "eigen account" in alert(text)
    assert len(log_entries(node)) == before
    _, _, resp = await beheerder.get("/app/beheer")
    assert resp.url.path == "/app/beheer"  # still signed in


async def test_the_user_list_shows_credentials_and_lock_outs(
    federation: Federation, beheerder: Browser
) -> None:
    node = federation.nodes[VH]
    enrol(node, ("coordinator",))
    for _ in range(node.ctx.cfg.web.max_failed_sign_ins):
        other = Browser(node)
        try:
            await other.sign_in("coordinator-vh-test", "000000", "wrong password!")
        finally:
            await other.close()
    _, text, _ = await beheerder.get("/app/beheer/gebruikers")
    rows = {
        name: figures(row)
        for name, row in re.findall(r'data-user="([^"]+)">(.*?)</tr>', text, re.S)
    }
    assert rows["coordinator-vh-test"]["password"] == "ja"
    assert rows["coordinator-vh-test"]["second_factor"] == "ja"
    assert rows["coordinator-vh-test"]["locked_until"].endswith("UTC")
    assert rows["source-vh-test"]["password"] == "nee"
    assert rows["source-vh-test"]["locked_until"] == "—"
    assert rows["liaison-vh-test"]["revoked_at"] == "—"


async def test_a_new_key_for_a_known_partner_needs_its_own_confirmation(
    federation: Federation, beheerder: Browser, tmp_path: Path
) -> None:
    node = federation.nodes[VH]
    old = peers.by_id(node.ctx.conn, "om-test")
    assert old is not None
    # om-test again, with new keys: what a key rotation (or an attacker) sends.
    cfg = federation.nodes["om-test"].ctx.cfg
    rotated = admin.init_node(tmp_path / "om-nieuw", cfg, node.clock.now()).to_json()
    new_fp = verify_card(rotated)[0].signing_fingerprint

    status, text, _ = await beheerder.upload("/app/beheer/partners/kaart", card_file(rotated))
    assert status == 200
    assert "bekend met een andere sleutel" in html.unescape(text)
    assert old.card.signing_fingerprint in text
    fields = {"kaart": hidden(text, "kaart"), "vingerafdruk": hidden(text, "vingerafdruk")}
    status, text, _ = await beheerder.post("/app/beheer/partners/toevoegen", fields)
    assert status == 409
    held = peers.by_id(node.ctx.conn, "om-test")
    assert held is not None
    assert held.card.signing_fingerprint == old.card.signing_fingerprint
    assert log_entries(node, "peer.rotated") == []

    status, text, _ = await beheerder.post(
        "/app/beheer/partners/toevoegen", {**fields, "sleutelwissel": "ja"}
    )
    assert status == 200
    held = peers.by_id(node.ctx.conn, "om-test")
    assert held is not None
    assert held.card.signing_fingerprint == new_fp
    assert [e["counterparty"] for e in log_entries(node, "peer.rotated")] == ["om-test"]
