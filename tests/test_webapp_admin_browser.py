"""The admin's pages in a real headless Chromium against a real federation (docs/webapp.md
"Beheer"): status, a partner's card uploaded through the file field and added after
its fingerprint is shown, a partner revoked, the convenants, a user added with the QR
code of its second factor. axe on every page, a screenshot of each step in
``test-artefacts/webapp/`` (the browser, axe and screenshots of tests/browser.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
from playwright.async_api import Browser

from node.store import peers
from tests.browser import Visit, sign_in
from tests.federation import Federation, log_entries
from tests.webclient import PASSWORD, enrol

VH = "vh-test"


async def test_the_admin_checks_status_adds_a_partner_and_a_user(
    federation: Federation, chromium: Browser, tmp_path: Path
) -> None:
    node = federation.nodes[VH]
    secret = enrol(node, ("admin",))["admin"]
    newcomer = federation.add_node("reclassering-test", "reclassering")
    card, _ = newcomer.ctx.own_card()
    card_path = tmp_path / "card.json"
    card_path.write_text(json.dumps(newcomer.card_json(), indent=2))

    page = await chromium.new_page()
    visit = Visit(page, "beheerder")
    await sign_in(visit, node.url, "admin-vh-test", pyotp.TOTP(secret).at(node.clock.now()))
    menu = page.get_by_role("navigation", name="Hoofdmenu")
    sections = page.get_by_role("navigation", name="Beheer")
    await menu.get_by_role("link", name="Beheer").click()
    await page.wait_for_url(node.url + "/app/beheer")
    fingerprint = page.locator('[data-figure="signing_key_fingerprint"]')
    assert await fingerprint.inner_text() == node.ctx.keys.signing_fingerprint
    assert (await page.locator('[data-figure="self_check"]').inner_text()).startswith("Ja")
    await visit.check("status")

    # Partners, reached with the keyboard through the section menu.
    await sections.get_by_role("link", name="Partners").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(node.url + "/app/beheer/partners")
    await visit.check("partners")
    await page.get_by_label("Kaartbestand van de partner").set_input_files(str(card_path))
    await page.get_by_role("button", name="Kaart controleren").click()
    await page.wait_for_selector("#kaart-gegevens")
    shown = await page.locator('[data-figure="fingerprint"]').inner_text()
    assert shown == card.signing_fingerprint
    assert peers.by_id(node.ctx.conn, "reclassering-test") is None  # shown, not added
    await visit.check("kaart-controleren")
    await page.get_by_role("button", name="Toevoegen").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#melding")
    assert "toegevoegd" in await page.locator("#melding").inner_text()
    assert peers.by_id(node.ctx.conn, "reclassering-test") is not None
    await visit.check("kaart-toegevoegd")

    await page.get_by_role("button", name="om-test intrekken").click()
    await page.wait_for_selector("#gevolg")
    await visit.check("partner-intrekken")
    await page.get_by_role("button", name="Partner intrekken").click()
    await page.wait_for_selector('[data-peer="om-test"][data-state="revoked"]')
    assert [e["counterparty"] for e in log_entries(node, "peer.revoked")] == ["om-test"]

    # Convenants: a file that is no convenant gives the form back with the message.
    await (
        page.get_by_role("navigation", name="Beheer")
        .get_by_role("link", name="Convenanten")
        .click()
    )
    await page.wait_for_url(node.url + "/app/beheer/convenanten")
    assert (
        await page.locator('[data-convenant="vh-test-veelplegers"]').get_attribute("data-in-force")
        == "ja"
    )
    await visit.check("convenanten")
    await page.get_by_label("Ondertekend convenant of terugtrekking").set_input_files(
        str(card_path)
    )
    await page.get_by_role("button", name="Installeren").click()
    await page.wait_for_selector(".vh-error-summary")
    assert "geen ondertekend convenant" in await page.get_by_role("alert").inner_text()
    await visit.check("convenant-geweigerd")

    # Users: a coordinator with a password; its second factor shown once, as a QR code.
    await sections.get_by_role("link", name="Gebruikers").click()
    await page.wait_for_url(node.url + "/app/beheer/gebruikers")
    await visit.check("gebruikers")
    await page.get_by_label("Gebruikersnaam", exact=True).fill("bram")
    await page.get_by_label("Rol", exact=True).select_option("coordinator")
    await page.get_by_label("Wachtwoord voor de webapplicatie", exact=True).fill(PASSWORD)
    await page.get_by_label("Wachtwoord nogmaals", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Gebruiker toevoegen").click()
    await page.wait_for_selector("#geheim")
    qr = page.get_by_role(
        "img", name="QR-code met de geheime sleutel voor de authenticator-app van bram"
    )
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    await visit.check("inloggegevens")
    new_secret = await page.locator("#geheim").inner_text()

    # bram signs in with it in a browser of his own.
    other = Visit(await chromium.new_page(), "beheerder-nieuwe-gebruiker")
    await sign_in(other, node.url, "bram", pyotp.TOTP(new_secret).at(node.clock.now()))
    assert "Welkom, bram" in await other.page.locator("h1").inner_text()
    assert [u for u in visit.urls + other.urls if "?" in u] == []
