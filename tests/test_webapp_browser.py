"""The web application in a real headless Chromium against real nodes (docs/webapp.md):
the coordinator's round, the pages a liaison meets, the liaison's inbox, detail after a
hit by keyboard. The browser, axe and screenshots as in tests/browser.py.
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser
from structlog.testing import capture_logs

from tests.browser import Visit, chromium_path, sign_in, tab_to
from tests.detail_fixtures import ANTECEDENTS, JAN_ANTECEDENTS, JAN_BSN, detail_federation
from tests.federation import PURPOSE, Federation, log_entries
from tests.webclient import enrol

VH = "vh-test"


def _register_family(fed: Federation) -> dict[str, Any]:
    """The synthetic ground truth: who knows which member of the family."""
    jan = {
        "kind": "person",
        "surname": "Berg",
        "tussenvoegsel": "van der",
        "first_names": "Jan Pieter",
        "birth_date": "1990-01-31",
    }
    fed.register(
        "politie-test",
        {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [jan]},
        {
            "ref": "BPS-2",
            "themes": ["huiselijk_geweld"],
            "identifiers": [{"kind": "bsn", "bsn": "111222333"}],
        },
    )
    fed.register(
        "ggz-test",
        {
            "ref": "GGZ-1",
            "themes": ["zorg"],
            "identifiers": [{"kind": "address", "postcode": "4811 AB", "house_number": 12}],
        },
    )
    return {
        "rows": ["bsn", "person", "address"],
        "truth": [
            {"vh-test": "no_hit", "politie-test": "hit", "om-test": "no_hit", "ggz-test": "no_hit"},
            {"vh-test": "no_hit", "politie-test": "hit", "om-test": "no_hit", "ggz-test": "no_hit"},
            {"vh-test": "no_hit", "politie-test": "no_hit", "om-test": "no_hit", "ggz-test": "hit"},
        ],
    }


IDENTIFIER_PARTS = ("111222333", "111222334", "Berg", "berg", "1990-01-31", "4811", "31-01")


async def test_a_coordinator_signs_in_and_asks_a_family(
    federation: Federation, chromium: Browser
) -> None:
    node = federation.nodes[VH]
    family = _register_family(federation)
    secret = enrol(node, ("coordinator",))["coordinator"]
    page = await chromium.new_page()
    visit = Visit(page, "coordinator")

    # Keyboard first: the first Tab reaches the skip link, which shows when focused.
    await page.goto(node.url + "/app/aanmelden")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Naar de inhoud")
    assert await skip.evaluate("e => e === document.activeElement")
    assert await skip.is_visible()

    await sign_in(visit, node.url, "coordinator-vh-test", pyotp.TOTP(secret).at(node.clock.now()))
    await visit.check("start")
    await page.get_by_role("link", name="Nieuwe bevraging").first.click()
    await page.wait_for_url(node.url + "/app/bevraging")
    await visit.check("bevraging")

    await page.get_by_label("Convenant en doel").select_option(
        "vh-test-veelplegers|casusoverleg-veelplegers"
    )
    await page.get_by_label("Zaaknummer (casusreferentie)").fill("CASUS-2026-0142")
    # A BSN that fails the 11-proef first: the form comes back with an error summary.
    await page.locator("#bsn-0").fill("111222334")
    await page.get_by_role("button", name="Bevraging versturen").click()
    await page.wait_for_load_state()
    summary = page.get_by_role("alert")
    assert "elfproef" in (await summary.inner_text())
    await visit.check("bevraging-fout")
    assert log_entries(node, "bekendheid.round") == []

    await page.get_by_role("button", name="Betrokkene toevoegen").click()
    await page.wait_for_load_state()
    assert await page.locator("#bsn-3").count() == 1
    await page.locator("#bsn-0").fill("111222333")
    await page.locator("#achternaam-1").fill("van der Berg")
    await page.locator("#voornamen-1").fill("J.")
    await page.locator("#geboortedatum-1").fill("1990-01-31")
    await page.locator("#postcode-2").fill("4811AB")
    await page.locator("#huisnummer-2").fill("12")
    await page.get_by_role("button", name="Bevraging versturen").click()
    await page.wait_for_selector("#resultaat")
    await visit.check("resultaat")

    cells = await page.locator("#resultaat td").evaluate_all(
        "tds => tds.map(t => [t.dataset.partner, t.dataset.status,"
        " t.querySelector('.vh-cell-words').innerText])"
    )
    columns = len(family["truth"][0])
    grid = [
        {p: s for p, s, _ in cells[r * columns : (r + 1) * columns]}
        for r in range(len(family["rows"]))
    ]
    assert grid == family["truth"]
    assert len(cells) == columns * len(family["rows"])  # the empty fourth row asked nothing
    # Text outside a component (the round's description list) is in the theme's text font,
    # not the browser's serif fallback.
    font = await page.locator("main dd").first.evaluate("d => getComputedStyle(d).fontFamily")
    assert "Noto Sans" in font
    words = {s: w for _, s, w in cells}
    assert words == {"hit": "Bekend", "no_hit": "Niet bekend"}
    trace = await page.locator("#trace-id").inner_text()
    assert re.fullmatch(r"[0-9a-f]{32}", trace)
    assert [e["trace_id"] for e in log_entries(node, "bekendheid.round")] == [trace]

    # Nothing the coordinator typed went into any URL the browser requested.
    assert visit.urls
    leaked = [u for u in visit.urls for part in IDENTIFIER_PARTS if part in u]
    assert leaked == []

    await page.get_by_role("button", name="Afmelden").click()
    await page.wait_for_load_state()
    assert "afgemeld" in await page.locator("h1").inner_text()
    await visit.check("afgemeld")
    assert [e["outcome"] for e in log_entries(node, "web.signed_out")] == ["sign_out"]


async def test_every_other_page_passes_the_accessibility_check(
    federation: Federation, chromium: Browser
) -> None:
    """The pages a liaison meets today: start, a refused page, an unknown page, a failed
    sign-in, an expired session; each checked with axe and its headers as the browser
    got them."""
    node = federation.nodes[VH]
    secret = enrol(node, ("liaison",))["liaison"]
    page = await chromium.new_page()
    visit = Visit(page, "liaison")
    await page.goto(node.url + "/app/aanmelden")
    await page.get_by_label("Gebruikersnaam").fill("liaison-vh-test")
    await page.get_by_label("Wachtwoord").fill("not the password")
    await page.get_by_label("Code uit uw authenticator-app").fill("123456")
    await page.get_by_role("button", name="Aanmelden").click()
    await page.wait_for_load_state()
    assert "niet gelukt" in await page.get_by_role("alert").inner_text()
    await visit.check("aanmelden-mislukt")

    await sign_in(visit, node.url, "liaison-vh-test", pyotp.TOTP(secret).at(node.clock.now()))
    await visit.check("start")
    assert await page.get_by_role("link", name="Nieuwe bevraging").count() == 0

    response = await page.goto(node.url + "/app/bevraging")
    assert response is not None
    assert response.status == 403
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    await visit.check("geen-toegang")

    response = await page.goto(node.url + "/app/bestaat-niet")
    assert response is not None
    assert response.status == 404
    await visit.check("niet-gevonden")

    node.clock.advance(timedelta(minutes=node.ctx.cfg.web.session_idle_minutes + 1))
    response = await page.goto(node.url + "/app/")
    assert response is not None
    assert response.status == 401
    assert "verlopen" in await page.get_by_role("status").inner_text()
    await visit.check("sessie-verlopen")


async def test_a_liaison_approves_one_request_and_denies_another(
    tmp_path: Path, chromium: Browser
) -> None:
    """On the partner's node: the inbox with the convenant's rule beside each category;
    one request approved, one denied with a reason, the hit notice marked read; the
    requester then holds the approved text and the reason."""
    with capture_logs():
        fed = await detail_federation(tmp_path)
        try:
            await _liaison_in_the_inbox(fed, chromium)
        finally:
            await fed.close()


async def _ask_antecedents(fed: Federation) -> str:
    round_ = await fed.query(VH, [JAN_BSN], partners=["politie-test"])
    status, ask = await fed.api(
        VH,
        "POST",
        "/api/v1/details",
        json={
            "round_trace_id": round_["trace_id"],
            "partner": "politie-test",
            "categories": [ANTECEDENTS],
            "purpose": PURPOSE,
        },
    )
    assert status == 200, ask
    return str(ask["trace_id"])


async def _liaison_in_the_inbox(fed: Federation, chromium: Browser) -> None:
    approved, denied = await _ask_antecedents(fed), await _ask_antecedents(fed)
    node = fed.nodes["politie-test"]
    secret = enrol(node, ("liaison",))["liaison"]
    page = await chromium.new_page()
    visit = Visit(page, "liaison-inbox")
    await sign_in(visit, node.url, "liaison-politie-test", pyotp.TOTP(secret).at(node.clock.now()))
    await page.get_by_role("link", name="Inbox").first.click()
    await page.wait_for_url(node.url + "/app/inbox")
    await visit.check("inbox")
    rule = page.locator(f'[data-trace="{approved}"] .vh-rule')
    assert "na goedkeuring door de contactpersoon" in await rule.inner_text()

    await page.locator(f"#cat-{approved}-{ANTECEDENTS}").check()
    await (
        page.locator(f'[data-trace="{approved}"]')
        .get_by_role("button", name="Aangevinkte goedkeuren")
        .click()
    )
    await page.wait_for_selector("#melding-besluit")
    await visit.check("goedgekeurd")

    # A denial without a reason first: the form says so at the field, nothing decided.
    section = page.locator(f'[data-trace="{denied}"]')
    await page.locator(f"#cat-{denied}-{ANTECEDENTS}").check()
    await section.get_by_role("button", name="Aangevinkte weigeren").click()
    await page.wait_for_load_state()
    assert "Geef een reden" in await page.get_by_role("alert").inner_text()
    await visit.check("weigeren-zonder-reden")
    await page.locator(f"#cat-{denied}-{ANTECEDENTS}").check()
    await page.get_by_label("Reden bij weigeren").fill("Lopend onderzoek")
    await (
        page.locator(f'[data-trace="{denied}"]')
        .get_by_role("button", name="Aangevinkte weigeren")
        .click()
    )
    await page.wait_for_selector("#geen-verzoeken")
    await visit.check("geweigerd")

    boxes = page.locator("[data-notice] input[type=checkbox]")
    assert await boxes.count() == 2  # one notice per round
    for i in range(2):
        await boxes.nth(i).check()
    await page.get_by_role("button", name="Aangevinkte meldingen als gelezen markeren").click()
    await page.wait_for_selector("#geen-meldingen")
    await visit.check("meldingen-gelezen")

    # The read notices through the filter, submitted with Enter from a text field.
    await page.get_by_label("Meldingen", exact=True).select_option("gelezen")
    await page.get_by_label("Zaaknummer").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#meldingen-bereik")
    assert await page.locator("[data-notice]").count() == 2
    assert "gelezen door liaison-politie-test" in await page.locator("#meldingen").inner_text()
    await visit.check("inbox-gefilterd")

    # The denied request's page, looked up by requester and trace id with the keyboard.
    await page.get_by_label("Node-id van de partner die het vroeg").fill(VH)
    await page.get_by_label("Trace-id van het verzoek").fill(denied)
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f'[data-category="{ANTECEDENTS}"][data-status="denied"]')
    row = await page.locator(f'[data-category="{ANTECEDENTS}"]').inner_text()
    assert "Lopend onderzoek" in row
    assert "liaison-politie-test" in row
    await visit.check("verzoek-besloten")
    assert [u for u in visit.urls if "?" in u] == []

    for trace, status in ((approved, "delivered"), (denied, "denied")):
        code, _ = await fed.api(VH, "POST", f"/api/v1/details/{trace}/poll")
        assert code == 200
        _, view = await fed.api(VH, "GET", f"/api/v1/details/{trace}")
        category = {c["category"]: c for c in view["categories"]}[ANTECEDENTS]
        assert category["status"] == status, view
        if status == "delivered":
            assert category["entries"] == [JAN_ANTECEDENTS]
        else:
            assert "Lopend onderzoek" in str(category)


def test_in_ci_a_missing_browser_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.browser.CHROMIUM_CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("VHNODE_CHROMIUM", raising=False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_path()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        chromium_path()


async def test_a_coordinator_asks_detail_after_a_hit_with_the_keyboard(
    tmp_path: Path, chromium: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the hit in the result grid through "Vraag details" to the request page with
    the keyboard only; the page reloads itself (the Refresh header, no script, CSP
    silent) until the partner's liaison has approved, then shows the text; the case page
    and the list of detail requests; axe on each."""
    with capture_logs():
        fed = await detail_federation(tmp_path)
        try:
            await _detail_by_keyboard(fed, chromium, monkeypatch)
        finally:
            await fed.close()


async def _detail_by_keyboard(
    fed: Federation, chromium: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = fed.nodes[VH]
    secret = enrol(node, ("coordinator",))["coordinator"]
    page = await chromium.new_page()
    visit = Visit(page, "coordinator-details")
    # The page's own loads, with the Refresh header each carried.
    loads: list[tuple[str, str | None]] = []
    page.on(
        "response",
        lambda r: (
            loads.append((r.url, r.headers.get("refresh")))
            if r.request.resource_type == "document"
            else None
        ),
    )
    await sign_in(visit, node.url, "coordinator-vh-test", pyotp.TOTP(secret).at(node.clock.now()))
    await page.goto(node.url + "/app/bevraging")
    await page.get_by_label("Convenant en doel").select_option(
        "vh-test-veelplegers|casusoverleg-veelplegers"
    )
    await page.get_by_label("Zaaknummer (casusreferentie)").fill("CASUS-2026-0200")
    await page.locator("#bsn-0").fill(JAN_BSN["bsn"])
    await page.get_by_role("button", name="Bevraging versturen").click()
    await page.wait_for_selector("#resultaat")
    await visit.check("resultaat-met-hits")

    # The politie cell's button, by its full accessible name, reached with Tab.
    ask = page.get_by_role("button", name="Vraag details bij Politie testregio over betrokkene 1")
    await tab_to(page, ask)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#categorieen")
    assert page.url == node.url + "/app/details/vragen"
    await visit.check("details-kiezen")
    box = page.get_by_label("Testcategorie samenvatting_antecedenten")
    await tab_to(page, box)
    await page.keyboard.press("Space")
    assert await box.is_checked()
    await tab_to(page, page.get_by_role("button", name="Details vragen"))
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#trace-id")
    trace = await page.locator("#trace-id").inner_text()
    assert page.url == f"{node.url}/app/details/{trace}"
    state = page.locator(f'[data-category="{ANTECEDENTS}"]')
    assert await state.get_attribute("data-state") == "pending"
    assert loads[-1] == (page.url, "30")
    assert "ververst zichzelf elke 30 seconden" in await page.locator("#ververst").inner_text()
    await visit.check("detailverzoek-in-behandeling")

    # "Nu opnieuw ophalen" by keyboard; from now on the page reloads every second.
    monkeypatch.setattr("node.http.webapp.details.REFRESH_SECONDS", 1)
    await tab_to(page, page.get_by_role("button", name="Nu opnieuw ophalen"))
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=elke 1 seconden")
    assert loads[-1] == (page.url, "1")
    reloads = len(loads)
    status, doc = await fed.api(
        "politie-test",
        "POST",
        f"/api/v1/liaison/requests/{VH}/{trace}/approve",
        role="liaison",
        json={"categories": [ANTECEDENTS]},
    )
    assert status == 200, doc
    # No click, no script: the page's own refresh brings the approved text.
    await page.wait_for_selector(f'[data-category="{ANTECEDENTS}"][data-state="delivered"]')
    assert len(loads) > reloads
    assert loads[-1] == (page.url, None)  # answered: no more reloading
    assert JAN_ANTECEDENTS in await page.locator(f"#tekst-{ANTECEDENTS}").inner_text()
    await visit.check("detailverzoek-geleverd")
    viewed = log_entries(node, "detail.viewed")
    assert viewed
    assert viewed[-1]["data"]["categories"] == [ANTECEDENTS]

    await page.get_by_role("link", name="Zaak opzoeken").first.click()
    await page.wait_for_url(node.url + "/app/zaak")
    await visit.check("zaak-formulier")
    await page.get_by_label("Zaaknummer (casusreferentie)").fill("CASUS-2026-0200")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#zaak-resultaat")
    assert await page.locator("[data-round]").count() == 1
    await visit.check("zaak")
    await page.get_by_role("link", name="Detailverzoeken").first.click()
    await page.wait_for_url(node.url + "/app/details")
    assert await page.locator("[data-trace]").count() == 1
    await visit.check("detailverzoeken")

    leaked = [u for u in visit.urls if JAN_BSN["bsn"] in u or "CASUS-2026-0200" in u]
    assert leaked == []
    assert [u for u in visit.urls if "?" in u] == []
