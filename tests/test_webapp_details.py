"""Detail after a hit in the web application (docs/webapp.md "Vraag details",
"Detailverzoek", "Zaak opzoeken", "Detailverzoeken"), over real HTTP against a real
detail federation (tests/detail_fixtures.py): the choice offers exactly what the
convenant's rules allow, asking runs the API's flow, the partner's liaison decides
through the partner's API, and the request page shows each category's state, the text
only to the roles its rule names (every view logged) and the denial's reason; the case
page lists a case's rounds and detail requests from a case reference typed in a form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from node.http.webapp import details
from tests.detail_fixtures import (
    ANTECEDENTS,
    CARE,
    CONTACT,
    JAN_ANTECEDENTS,
    JAN_BSN,
    JAN_CONTACT,
    SUPERVISION,
    TRAJECT,
    detail_federation,
)
from tests.federation import CONVENANT_ID, PURPOSE, Federation, log_entries
from tests.webclient import Browser, enrol

VH, POLITIE, OM, GGZ = "vh-test", "politie-test", "om-test", "ggz-test"
JAN = JAN_BSN["bsn"]
_HIDDEN = re.compile(r'name="(ronde|partner|betrokkene)" value="([^"]*)"')


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    with capture_logs():
        f = await detail_federation(tmp_path)
        yield f
        await f.close()


@pytest.fixture
async def secrets(fed: Federation) -> dict[str, str]:
    return enrol(fed.nodes[VH])


async def signed_in(fed: Federation, secrets: dict[str, str], role: str) -> Browser:
    node = fed.nodes[VH]
    node.clock.advance(timedelta(seconds=30))  # a fresh TOTP step for each sign-in
    b = Browser(node)
    await b.sign_in_as(role, secrets[role])
    return b


def hit_buttons(text: str) -> dict[str, dict[str, str]]:
    """Partner → the hidden fields of its "Vraag details" form (one subject asked)."""
    out = {}
    for form in re.findall(r'<form class="vh-cell-form".*?</form>', text, re.S):
        assert 'action="/app/details/vragen"' in form
        fields = dict(_HIDDEN.findall(form))
        out[fields["partner"]] = fields
    return out


async def round_through_the_page(b: Browser, case_ref: str) -> tuple[str, str]:
    status, text, _ = await b.post(
        "/app/bevraging",
        {
            "convenant_doel": f"{CONVENANT_ID}|{PURPOSE}",
            "zaak": case_ref,
            "rijen": "1",
            "bsn-0": JAN,
        },
    )
    assert status == 200, text[:2000]
    trace = re.search(r'id="trace-id">([0-9a-f]{32})<', text)
    assert trace is not None
    return trace.group(1), text


def offered(text: str) -> list[str]:
    return re.findall(r'name="categorie" value="([^"]+)"', text)


def states(text: str) -> dict[str, str]:
    return dict(re.findall(r'data-category="([^"]+)" data-state="([^"]+)"', text))


async def approve(fed: Federation, trace: str, *categories: str) -> None:
    status, doc = await fed.api(
        POLITIE,
        "POST",
        f"/api/v1/liaison/requests/{VH}/{trace}/approve",
        role="liaison",
        json={"categories": list(categories)},
    )
    assert status == 200, doc


async def deny(fed: Federation, trace: str, reason: str, *categories: str) -> None:
    status, doc = await fed.api(
        POLITIE,
        "POST",
        f"/api/v1/liaison/requests/{VH}/{trace}/deny",
        role="liaison",
        json={"categories": list(categories), "reason": reason},
    )
    assert status == 200, doc


async def test_vraag_details_offers_what_the_rules_allow_and_asks_through_the_flow(
    fed: Federation, secrets: dict[str, str]
) -> None:
    node = fed.nodes[VH]
    b = await signed_in(fed, secrets, "coordinator")
    try:
        round_trace, text = await round_through_the_page(b, "CASUS-2026-0142")
        # One button per hit cell; Jan is known to politie, om and ggz (not to vh-test).
        buttons = hit_buttons(text)
        assert sorted(buttons) == [GGZ, OM, POLITIE]
        assert buttons[POLITIE] == {"ronde": round_trace, "partner": POLITIE, "betrokkene": "0"}
        assert JAN not in str(buttons)

        # Politie: exactly the two categories its rules give vh-test's coordinator for
        # this purpose, each with its rule in words; the rest listed with the reason.
        status, text, _ = await b.post("/app/details/vragen", buttons[POLITIE])
        assert status == 200, text[:2000]
        assert offered(text) == [CONTACT, ANTECEDENTS]
        assert "Wordt direct geleverd." in text
        assert "Wordt geleverd na goedkeuring door de contactpersoon van de partner." in text
        assert "ten hoogste 14 dagen bewaren" in text
        assert "ten hoogste 30 dagen bewaren" in text
        refused = text.split('id="niet-te-vragen"', 1)[1].split("</ul>", 1)[0]
        assert sorted(re.findall(r'data-category="([^"]+)"', refused)) == sorted(
            [TRAJECT, CARE, SUPERVISION]
        )
        assert "het convenant heeft geen regel waarmee de partner dit deelt" in refused
        # ggz shares zorgcontact for another purpose only: nothing to offer, and why.
        status, text, _ = await b.post("/app/details/vragen", buttons[GGZ])
        assert status == 200
        assert offered(text) == []
        assert 'id="niets-te-vragen"' in text
        assert "het convenant deelt dit niet voor het doel van de bevraging" in text

        # Refused choices give the form back, with the reason, and send nothing.
        status, text, _ = await b.post("/app/details/versturen", buttons[POLITIE])
        assert status == 400
        assert "Vink ten minste één categorie aan." in text
        status, text, _ = await b.post(
            "/app/details/versturen",
            [*buttons[POLITIE].items(), ("categorie", CONTACT), ("categorie", SUPERVISION)],
        )
        assert status == 403
        assert "U kunt dit niet vragen. toezicht: het convenant heeft geen regel" in text
        assert f'value="{CONTACT}" aria-describedby="regel-{CONTACT}" checked' in text
        status, text, _ = await b.post("/app/details/vragen", {"ronde": "x", "partner": POLITIE})
        assert status == 400
        assert log_entries(node, "detail.asked") == []

        # Both allowed categories: asked through ask_details, then the request's page.
        status, text, resp = await b.post(
            "/app/details/versturen",
            [*buttons[POLITIE].items(), ("categorie", CONTACT), ("categorie", ANTECEDENTS)],
        )
        assert status == 200, text[:2000]
        trace = resp.url.path.rsplit("/", 1)[1]
        assert resp.url.path == f"/app/details/{trace}"
        assert [h.status for h in resp.history] == [303]
        asked = log_entries(node, "detail.asked")
        assert [(e["trace_id"], e["data"]["round_trace_id"]) for e in asked] == [
            (trace, round_trace)
        ]
        assert asked[0]["data"]["categories"] == [CONTACT, ANTECEDENTS]
        assert asked[0]["data"]["case_ref"] == "CASUS-2026-0142"

        # Contact delivered at once (no approval), the antecedents pending: the page shows
        # the text, says what is pending, and refreshes itself.
        assert states(text) == {CONTACT: "delivered", ANTECEDENTS: "pending"}
        assert JAN_CONTACT in text
        assert JAN_ANTECEDENTS not in text
        assert resp.headers["Refresh"] == str(details.REFRESH_SECONDS)
        assert 'id="ververst"' in text
        assert f'action="/app/details/{trace}/ophalen"' in text
        assert "Nu opnieuw ophalen" in text
        assert "In behandeling" in text
        viewed = log_entries(node, "detail.viewed")
        assert [(e["trace_id"], e["actor"], e["data"]["categories"]) for e in viewed] == [
            (trace, "coordinator-vh-test", [CONTACT])
        ]

        # The partner's liaison approves; "nu opnieuw ophalen" (the poll flow) fetches it.
        await approve(fed, trace, ANTECEDENTS)
        polls_before = len(log_entries(node, "detail.polled"))
        status, text, resp = await b.post(f"/app/details/{trace}/ophalen", {})
        assert status == 200, text[:2000]
        assert resp.url.path == f"/app/details/{trace}"
        assert len(log_entries(node, "detail.polled")) > polls_before
        assert states(text) == {CONTACT: "delivered", ANTECEDENTS: "delivered"}
        assert JAN_ANTECEDENTS in text
        assert "Refresh" not in resp.headers  # nothing pending: no more reloading
        assert 'id="ververst"' not in text
        viewed = log_entries(node, "detail.viewed")
        assert viewed[-1]["data"]["categories"] == [CONTACT, ANTECEDENTS]
        assert viewed[-1]["data"]["role"] == "coordinator"

        # "Detailverzoeken": the request in the node's list, with its state.
        status, text, _ = await b.get("/app/details")
        assert status == 200
        assert re.findall(r'data-trace="([0-9a-f]{32})"', text) == [trace]
        assert "2 geleverd" in text
        assert f'href="/app/details/{trace}"' in text
    finally:
        await b.close()

    # vh-test's liaison: the rule for contactpersoon names the liaison, the one for the
    # antecedents does not. The page shows the one, says why not the other, and the view
    # of the one is logged.
    b = await signed_in(fed, secrets, "liaison")
    try:
        status, text, _ = await b.get(f"/app/details/{trace}")
        assert status == 200
        assert JAN_CONTACT in text
        assert JAN_ANTECEDENTS not in text
        assert f'id="niet-getoond-{ANTECEDENTS}"' in text
        assert "het convenant geeft hem alleen aan de rol coördinator" in text
        assert "niet aan uw rol (contactpersoon)" in text
    finally:
        await b.close()
    viewed = log_entries(node, "detail.viewed")[-1]
    assert (viewed["actor"], viewed["data"]["role"], viewed["data"]["categories"]) == (
        "liaison-vh-test",
        "liaison",
        [CONTACT],
    )
    # The privacy officer: no text at all; nothing was read, so nothing is logged as read.
    before = len(log_entries(node, "detail.viewed"))
    b = await signed_in(fed, secrets, "privacy_officer")
    try:
        status, text, _ = await b.get(f"/app/details/{trace}")
        assert status == 200
        assert JAN_CONTACT not in text
        assert JAN_ANTECEDENTS not in text
        assert text.count('class="utrecht-paragraph vh-not-shown"') == 2
        assert "niet aan uw rol (FG)" in text
    finally:
        await b.close()
    assert len(log_entries(node, "detail.viewed")) == before
    assert JAN not in str(log_entries(node))


async def test_a_denial_shows_the_liaisons_reason(fed: Federation, secrets: dict[str, str]) -> None:
    b = await signed_in(fed, secrets, "coordinator")
    try:
        _, text = await round_through_the_page(b, "CASUS-2026-0143")
        hit = hit_buttons(text)[POLITIE]
        status, text, resp = await b.post(
            "/app/details/versturen", [*hit.items(), ("categorie", ANTECEDENTS)]
        )
        assert status == 200, text[:2000]
        trace = resp.url.path.rsplit("/", 1)[1]
        assert states(text) == {ANTECEDENTS: "pending"}
        assert resp.headers["Refresh"] == str(details.REFRESH_SECONDS)
        # Reloading can be turned off before it happens (WCAG 2.2.1), and on again.
        assert "Automatisch verversen uitzetten" in text
        status, text, resp = await b.post(f"/app/details/{trace}/verversen", {"verversen": "uit"})
        assert status == 200
        assert resp.url.path == f"/app/details/{trace}"
        assert "Refresh" not in resp.headers
        assert 'id="ververst-uit"' in text
        assert "Automatisch verversen aanzetten" in text
        status, text, resp = await b.get(f"/app/details/{trace}")
        assert "Refresh" not in resp.headers  # the choice holds
        status, text, resp = await b.post(f"/app/details/{trace}/verversen", {"verversen": "aan"})
        assert resp.headers["Refresh"] == str(details.REFRESH_SECONDS)
        await deny(fed, trace, "Lopend onderzoek, na de zitting opnieuw", ANTECEDENTS)
        status, text, resp = await b.post(f"/app/details/{trace}/ophalen", {})
        assert status == 200
        assert states(text) == {ANTECEDENTS: "denied"}
        assert "Geweigerd" in text
        assert "Lopend onderzoek, na de zitting opnieuw" in text
        assert "Refresh" not in resp.headers
        # A trace id that is none, and one this node never sent.
        status, _, _ = await b.get("/app/details/niet-een-trace-id")
        assert status == 400
        status, text, _ = await b.get(f"/app/details/{'0' * 32}")
        assert status == 404
        assert "geen detailverzoek met dit trace-id" in text
        status, _, _ = await b.post(f"/app/details/{'0' * 32}/ophalen", {})
        assert status == 404
    finally:
        await b.close()


async def test_expired_hits_offer_nothing(fed: Federation, secrets: dict[str, str]) -> None:
    node = fed.nodes[VH]
    b = await signed_in(fed, secrets, "coordinator")
    try:
        _, text = await round_through_the_page(b, "CASUS-2026-0144")
        hit = hit_buttons(text)[POLITIE]
        node.clock.advance(timedelta(hours=node.ctx.cfg.details.hit_validity_hours, seconds=1))
        await b.close()  # the session timed out meanwhile: sign in again
        b = await signed_in(fed, secrets, "coordinator")
        status, text, _ = await b.post("/app/details/vragen", hit)
        assert status == 409
        assert offered(text) == []
        assert "geen bruikbare hit (meer)" in text
        assert 'href="#categorieen"' in text
        assert text.count('id="categorieen"') == 1  # the error summary's link lands somewhere
        status, text, _ = await b.post(
            "/app/details/versturen", [*hit.items(), ("categorie", CONTACT)]
        )
        assert status == 409
        assert log_entries(node, "detail.asked") == []
    finally:
        await b.close()


async def test_the_case_page_lists_a_cases_rounds_from_a_posted_case_reference(
    fed: Federation, secrets: dict[str, str]
) -> None:
    case = 'Casus "Jansen" <b>&</b> 2026/7?x=1'  # typed by a person: anything at all
    b = await signed_in(fed, secrets, "coordinator")
    try:
        first, text = await round_through_the_page(b, case)
        await round_through_the_page(b, "ANDERE-ZAAK")
        second, text = await round_through_the_page(b, case)
        hit = hit_buttons(text)[POLITIE]
        status, text, _ = await b.post(
            "/app/details/versturen", [*hit.items(), ("categorie", CONTACT)]
        )
        assert status == 200
        ask = re.search(r'id="trace-id">([0-9a-f]{32})<', text)
        assert ask is not None

        status, text, resp = await b.get("/app/zaak")
        assert status == 200
        assert 'action="/app/zaak"' in text
        status, text, _ = await b.post("/app/zaak", {"zaak": "  "})
        assert status == 400
        assert 'href="#zaak"' in text
        status, text, resp = await b.post("/app/zaak", {"zaak": case})
        assert status == 200, text[:2000]
        assert resp.url.path == "/app/zaak"
        assert not resp.url.query
        # Newest first, this case only, each with its per-partner answers.
        assert re.findall(r'data-round="([0-9a-f]{32})"', text) == [second, first]
        assert "Zaak Casus &#34;Jansen&#34; &lt;b&gt;&amp;&lt;/b&gt; 2026/7?x=1" in text
        section = text.split(f'data-round="{second}"', 1)[1].split("</section>", 1)[0]
        rows = dict(re.findall(r'<tr class="utrecht-table__row" data-partner="([^"]+)" '
                               r'data-status="([^"]+)"', section))  # fmt: skip
        assert rows == {VH: "no_hit", POLITIE: "hit", OM: "hit", GGZ: "hit"}
        assert "coordinator-vh-test" in section
        assert "Testconvenant veelplegers" in section
        # Its detail request, linked; the hits still held offer "Vraag details" again.
        assert f'href="/app/details/{ask.group(1)}"' in section
        assert sorted(hit_buttons(section)) == [GGZ, OM, POLITIE]
        first_section = text.split(f'data-round="{first}"', 1)[1].split("</section>", 1)[0]
        assert "/app/details/" not in first_section.replace("/app/details/vragen", "")
        assert JAN not in text
        status, text, _ = await b.post("/app/zaak", {"zaak": "ONBEKEND"})
        assert status == 200
        assert 'id="geen-bevragingen"' in text
    finally:
        await b.close()


async def test_a_round_cut_short_shows_the_partners_without_an_answer(
    fed: Federation, secrets: dict[str, str]
) -> None:
    """A round's intent is logged before the fan-out; a partner without a logged answer
    (the node stopped mid-round) is shown as such, not as an answer it never gave."""
    node = fed.nodes[VH]
    b = await signed_in(fed, secrets, "coordinator")
    try:
        trace, _ = await round_through_the_page(b, "CASUS-AFGEBROKEN")
        node.ctx.conn.execute(
            "DELETE FROM log_entries WHERE trace_id = ? AND kind = 'bekendheid.asked'"
            " AND counterparty = ?",
            (trace, OM),
        )
        status, text, _ = await b.post("/app/zaak", {"zaak": "CASUS-AFGEBROKEN"})
        assert status == 200
        rows: dict[str, Any] = dict(
            re.findall(r'data-partner="([^"]+)" data-status="([^"]+)"', text)
        )
        assert rows[OM] == "none"
        assert rows[POLITIE] == "hit"
        assert "Geen antwoord vastgelegd" in text
    finally:
        await b.close()
