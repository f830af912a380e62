"""The privacy officer's pages in a real headless Chromium against a real federation
(docs/webapp.md "Toezicht", "Rapport", "Inzageverzoek"): verify and cross-check by
keyboard, the report with its charts, an access request and its printed form; axe on
every page (no serious or critical violation), a screenshot of each step in
``test-artefacts/webapp/``. The browser, axe and screenshots as in tests/browser.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser
from structlog.testing import capture_logs

from tests.browser import ARTEFACTS, Visit, sign_in
from tests.detail_fixtures import JAN_BSN, detail_federation
from tests.federation import Federation, log_entries
from tests.test_webapp_privacy_officer import scripted_rounds
from tests.webclient import enrol

VH = "vh-test"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    with capture_logs():
        f = await detail_federation(tmp_path)
        yield f
        await f.close()


async def test_the_privacy_officer_verifies_reports_and_answers_an_access_request(
    fed: Federation, chromium: Browser
) -> None:
    day0, day1 = await scripted_rounds(fed)
    node = fed.nodes[VH]
    secret = enrol(node, ("privacy_officer",))["privacy_officer"]
    page = await chromium.new_page()
    visit = Visit(page, "fg")
    code = pyotp.TOTP(secret).at(node.clock.now())
    await sign_in(visit, node.url, "privacy_officer-vh-test", code)
    await visit.check("start")

    # The dashboard: verify now, by keyboard.
    await page.get_by_role("navigation").get_by_role("link", name="Toezicht", exact=True).click()
    await page.wait_for_url(node.url + "/app/toezicht")
    assert await page.locator("#nooit-gecontroleerd").count() == 1
    await visit.check("toezicht")
    await page.get_by_role("button", name="Logboek nu controleren").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_load_state()
    assert await page.locator("#controle-nu").get_attribute("data-ok") == "ja"
    assert await page.locator("#laatste-controle").get_attribute("data-ok") == "ja"
    assert [e["actor"] for e in log_entries(node, "audit.verified")] == ["privacy_officer-vh-test"]
    await visit.check("toezicht-gecontroleerd")

    await page.get_by_role("button", name="Alle partners controleren").click()
    await page.wait_for_load_state()
    verdicts = await page.locator("#partners tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.verdict)"
    )
    assert verdicts == ["consistent"] * 3
    await visit.check("kruiscontrole")

    # The report: a period, a low burst threshold, the charts and the anomaly.
    await page.get_by_role("navigation").get_by_role("link", name="Rapport", exact=True).click()
    await page.wait_for_url(node.url + "/app/toezicht/rapport")
    await visit.check("rapport-formulier")
    await page.locator("#van").fill(day0)
    await page.locator("#tot").fill(day1)
    await page.locator("#verzoeken_per_minuut").fill("1")
    await page.get_by_role("button", name="Rapport tonen").click()
    await page.wait_for_load_state()
    assert await page.locator("#rondes").get_attribute("data-count") == "3"
    assert await page.locator("figure.vh-chart svg[role=img]").count() == 3
    assert await page.locator('#afwijkingen tr[data-rule="burst"]').count() == 1
    # The bars are drawn in colour by the stylesheet (no inline style), in proportion.
    heights = await page.locator("#grafiek-rondes-per-dag rect.vh-chart__bar").evaluate_all(
        "rects => rects.map(r => [r.getBBox().height, getComputedStyle(r).fill])"
    )
    assert [h for h, _ in heights] == [160, 80]
    assert all(fill not in ("", "none", "rgb(0, 0, 0)") for _, fill in heights)
    await visit.check("rapport")

    # The access request: identifiers in the body only, the report printable.
    await (
        page.get_by_role("navigation").get_by_role("link", name="Inzageverzoek", exact=True).click()
    )
    await page.wait_for_url(node.url + "/app/inzage")
    await visit.check("inzage-formulier")
    await page.get_by_label("Kenmerk van het verzoek").fill("AVG-15-2026-7")
    await page.locator("#bsn-0").fill(str(JAN_BSN["bsn"]))
    await page.get_by_role("button", name="Opzoeken").click()
    await page.wait_for_load_state()
    assert await page.locator("#rapport-kenmerk").inner_text() == "AVG-15-2026-7"
    assert await page.locator('#verwerkingen-tabel tr[data-kind="bekendheid.asked"]').count() == 3
    await visit.check("inzage-rapport")

    await page.emulate_media(media="print")
    assert not await page.locator(".vh-nav").is_visible()
    assert not await page.get_by_role("button", name="Afmelden").is_visible()
    for shown in ("#rapport-node", "#rapport-datum", "#rapport-kenmerk", "#verwerkingen-tabel"):
        assert await page.locator(shown).is_visible(), shown
    await page.screenshot(path=str(ARTEFACTS / "fg-print-inzage-rapport.png"), full_page=True)
    await page.emulate_media(media="screen")
    assert await page.locator(".vh-nav").is_visible()

    leaked = [u for u in visit.urls if str(JAN_BSN["bsn"]) in u or "AVG-15" in u]
    assert leaked == []
