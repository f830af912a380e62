"""The liaison's inbox in the web application (docs/webapp.md "Inbox"), over real HTTP
against a real detail federation: pending detail requests with the convenant's rule
beside each category, approve the ticked categories, deny with a reason, bad input
changes nothing, a decision taken twice is refused, hit notices acknowledged; the
requester's coordinator then holds the approved text and the denial's reason."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from node.http.webapp import liaison as liaison_pages
from node.protocol.models import rfc3339
from node.store import details as details_store
from node.store.db import tx
from tests.detail_fixtures import ANTECEDENTS, JAN_ANTECEDENTS, JAN_BSN, detail_federation
from tests.federation import CONVENANT_ID, PURPOSE, Federation
from tests.webclient import Browser, enrol

VH, POLITIE = "vh-test", "politie-test"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    with capture_logs():
        f = await detail_federation(tmp_path)
        yield f
        await f.close()


async def ask_detail(fed: Federation) -> str:
    """vh-test's coordinator asks politie for the antecedents after a real round."""
    round_ = await fed.query(VH, [JAN_BSN], partners=[POLITIE])
    status, ask = await fed.api(
        VH,
        "POST",
        "/api/v1/details",
        json={
            "round_trace_id": round_["trace_id"],
            "partner": POLITIE,
            "categories": [ANTECEDENTS],
            "purpose": PURPOSE,
        },
    )
    assert status == 200, ask
    return str(ask["trace_id"])


async def liaison_status(fed: Federation, trace: str) -> dict[str, Any]:
    status, doc = await fed.api(
        POLITIE, "GET", f"/api/v1/liaison/requests/{VH}/{trace}", role="liaison"
    )
    assert status == 200, doc
    return dict({c["category"]: c for c in doc["categories"]}[ANTECEDENTS])


async def requester_view(fed: Federation, trace: str) -> dict[str, Any]:
    status, doc = await fed.api(VH, "POST", f"/api/v1/details/{trace}/poll")
    assert status == 200, doc
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{trace}")
    return dict({c["category"]: c for c in view["categories"]}[ANTECEDENTS])


async def open_notices(fed: Federation) -> list[dict[str, Any]]:
    status, doc = await fed.api(POLITIE, "GET", "/api/v1/liaison/inbox", role="liaison")
    assert status == 200, doc
    return list(doc["hit_notices"])


async def test_the_liaison_approves_one_request_and_denies_another_in_the_inbox(
    fed: Federation,
) -> None:
    approved, denied = await ask_detail(fed), await ask_detail(fed)
    node = fed.nodes[POLITIE]
    secret = enrol(node, ("liaison",))["liaison"]
    b = Browser(node)
    try:
        await b.sign_in_as("liaison", secret)
        status, text, _ = await b.get("/app/")
        assert 'href="/app/inbox"' in text
        status, text, _ = await b.get("/app/inbox")
        assert status == 200
        assert sorted(re.findall(r'data-trace="([0-9a-f]{32})"', text)) == sorted(
            [denied, approved]
        )
        # The convenant's rule for samenvatting_antecedenten beside the category.
        assert "na goedkeuring door de contactpersoon" in text
        assert "ten hoogste 14 dagen bewaren" in text
        assert text.count('name="categorie" value="samenvatting_antecedenten"') == 2

        # A denial without a reason, and an approval with nothing ticked: the inbox back
        # with the message at the field, nothing decided.
        form = {"verzoek": f"{VH}|{denied}", "categorie": ANTECEDENTS, "actie": "weigeren"}
        status, text, _ = await b.post("/app/inbox/besluit", form)
        assert status == 400
        assert "Geef een reden voor de weigering." in text
        assert f'href="#reden-{denied}"' in text
        status, text, _ = await b.post(
            "/app/inbox/besluit", {"verzoek": f"{VH}|{approved}", "actie": "goedkeuren"}
        )
        assert status == 400
        assert "Vink ten minste één categorie aan." in text
        status, text, _ = await b.post("/app/inbox/besluit", {"verzoek": "x|y", "actie": "alles"})
        assert status == 400
        assert (await liaison_status(fed, denied))["status"] == "pending"
        assert (await liaison_status(fed, approved))["status"] == "pending"

        status, text, _ = await b.post(
            "/app/inbox/besluit",
            {"verzoek": f"{VH}|{approved}", "categorie": ANTECEDENTS, "actie": "goedkeuren"},
        )
        assert status == 200, text[:1000]
        assert "Besluit vastgelegd: goedgekeurd." in text
        status, text, _ = await b.post(
            "/app/inbox/besluit", form | {"reden": "Lopend onderzoek, na de zitting opnieuw"}
        )
        assert status == 200, text[:1000]
        assert "Besluit vastgelegd: geweigerd." in text
        assert re.findall(r'data-trace="([0-9a-f]{32})"', text) == []  # nothing pending
        assert "Er wachten geen detailverzoeken op een besluit." in text
        # The same decision again (a reloaded form): refused, nothing changes.
        status, text, _ = await b.post(
            "/app/inbox/besluit",
            {"verzoek": f"{VH}|{approved}", "categorie": ANTECEDENTS, "actie": "goedkeuren"},
        )
        assert status == 409
        assert "al besloten" in text
    finally:
        await b.close()

    mine = await liaison_status(fed, approved)
    assert (mine["status"], mine["decided_by"]) == ("delivered", f"liaison-{POLITIE}")
    theirs = await liaison_status(fed, denied)
    assert (theirs["status"], theirs["decided_by"]) == ("denied", f"liaison-{POLITIE}")
    # The requester: the approved text, and the denial with the liaison's reason.
    view = await requester_view(fed, approved)
    assert (view["status"], view["entries"]) == ("delivered", [JAN_ANTECEDENTS])
    view = await requester_view(fed, denied)
    assert view["status"] == "denied"
    assert "Lopend onderzoek" in str(view)


async def test_the_liaison_acknowledges_hit_notices(fed: Federation) -> None:
    await fed.query(VH, [JAN_BSN], partners=[POLITIE])
    for _ in range(200):  # the hit notice is sent after the round, in the background
        if await open_notices(fed):
            break
        await asyncio.sleep(0.05)
    notices = await open_notices(fed)
    assert len(notices) == 1
    node = fed.nodes[POLITIE]
    secret = enrol(node, ("liaison",))["liaison"]
    b = Browser(node)
    try:
        await b.sign_in_as("liaison", secret)
        status, text, _ = await b.get("/app/inbox")
        ids = re.findall(r'data-notice="(\d+)"', text)
        assert ids == [str(notices[0]["id"])]
        status, text, _ = await b.post("/app/inbox/gelezen", {})
        assert status == 400
        assert "Vink ten minste één melding aan." in text
        status, text, _ = await b.post("/app/inbox/gelezen", {"melding": "999999"})
        assert status == 404
        status, text, _ = await b.post("/app/inbox/gelezen", {"melding": ids[0]})
        assert status == 200, text[:1000]
        assert "1 melding(en) als gelezen gemarkeerd." in text
        assert "Er zijn geen ongelezen meldingen." in text
    finally:
        await b.close()
    assert await open_notices(fed) == []


# --- paging, filters and a decided request's page -----------------------------------------


class _Forms(HTMLParser):
    """Every form of a page: its action, its hidden fields and the ids of its buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": [], "buttons": set()})
        elif tag == "input" and a.get("type") == "hidden" and self.forms:
            self.forms[-1]["fields"].append((a["name"], a.get("value", "")))
        elif tag == "button" and self.forms and "id" in a:
            self.forms[-1]["buttons"].add(a["id"])


def form_of(text: str, button: str) -> dict[str, Any]:
    """The form holding the button with this id (asserted to exist)."""
    parser = _Forms()
    parser.feed(text)
    found = [f for f in parser.forms if button in f["buttons"]]
    assert len(found) == 1, (button, [f["buttons"] for f in parser.forms])
    return found[0]


async def press(b: Browser, text: str, button: str) -> tuple[int, str]:
    """Press a button of the page: post its form's hidden fields to its action."""
    form = form_of(text, button)
    status, text, _ = await b.post(form["action"], dict(form["fields"]))
    return status, text


def notice_ids(text: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-notice="(\d+)"', text)]


def add_notices(fed: Federation, n: int, **fields: Any) -> list[int]:
    """``n`` hit notices in politie's inbox, as answer_hit_notice stores them."""
    node = fed.nodes[POLITIE]
    values: dict[str, Any] = {
        "requester": VH,
        "convenant_id": CONVENANT_ID,
        "convenant_version": 1,
        "purpose": PURPOSE,
        "case_ref": "CASUS-2026-001",
        "requesting_user": f"coordinator-{VH}",
        "round_trace_id": "a" * 32,
        "subject_pseudonym": "p" * 64,
        "refs": ("POL-1",),
        "received_at": node.clock.now(),
    } | fields
    with tx(node.ctx.conn):
        return [details_store.add_hit_notice(node.ctx.conn, **values) for _ in range(n)]


async def test_the_inbox_pages_through_more_than_a_hundred_notices(fed: Federation) -> None:
    ids = add_notices(fed, 230)
    newest_first = sorted(ids, reverse=True)
    node = fed.nodes[POLITIE]
    b = Browser(node)
    try:
        await b.sign_in_as("liaison", enrol(node, ("liaison",))["liaison"])
        _, first, _ = await b.get("/app/inbox")
        assert notice_ids(first) == newest_first[:100]
        assert "Melding 1 tot en met 100 van 230" in first
        assert 'id="meldingen-vorige"' not in first

        status, second = await press(b, first, "meldingen-volgende")
        assert status == 200
        assert notice_ids(second) == newest_first[100:200]
        assert "Melding 101 tot en met 200 van 230" in second
        status, third = await press(b, second, "meldingen-volgende")
        assert notice_ids(third) == newest_first[200:]
        assert 'id="meldingen-volgende"' not in third
        status, back = await press(b, third, "meldingen-vorige")
        assert notice_ids(back) == newest_first[100:200]
        status, again = await press(b, back, "meldingen-eerste")
        assert notice_ids(again) == newest_first[:100]

        # Marking one read on the second page gives the second page back, without it.
        # (the view of page 2 is in every form of it)
        ack = dict(form_of(second, "gelezen-markeren")["fields"])
        ack["melding"] = str(newest_first[150])
        status, text, _ = await b.post("/app/inbox/gelezen", ack)
        assert status == 200, text[:500]
        assert "1 melding(en) als gelezen gemarkeerd." in text
        assert newest_first[150] not in notice_ids(text)
        assert notice_ids(text)[0] == newest_first[100]  # still page 2
        # A forged page cursor is refused with a message, not a traceback.
        status, text, _ = await b.post("/app/inbox", {"voor": "-1"})
        assert status == 400
        assert "Deze pagina van de inbox bestaat niet." in text
    finally:
        await b.close()


async def test_the_inbox_pages_pending_requests(
    fed: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three real requests, two a page (a hundred real requests would only be slower).
    monkeypatch.setattr(liaison_pages, "REQUEST_PAGE", 2)
    asked = [await ask_detail(fed) for _ in range(3)]
    # The API's order (oldest first; the same instant of the test clock: by trace id).
    _, doc = await fed.api(POLITIE, "GET", "/api/v1/liaison/inbox", role="liaison")
    traces = [r["trace_id"] for r in doc["requests"]]
    assert sorted(traces) == sorted(asked)
    node = fed.nodes[POLITIE]
    b = Browser(node)
    try:
        await b.sign_in_as("liaison", enrol(node, ("liaison",))["liaison"])
        _, first, _ = await b.get("/app/inbox")
        shown = re.findall(r'<section class="vh-request"[^>]*data-trace="([0-9a-f]{32})"', first)
        assert shown == traces[:2]
        assert "Detailverzoeken (3)" in first
        assert "Verzoek 1 tot en met 2 van 3" in first
        status, second = await press(b, first, "verzoeken-volgende")
        assert status == 200
        shown = re.findall(r'<section class="vh-request"[^>]*data-trace="([0-9a-f]{32})"', second)
        assert shown == traces[2:]
        # Deciding on the second page gives the second page back.
        form = form_of(second, "verzoeken-vorige")
        decide = dict(form["fields"]) | {"verzoek": f"{VH}|{traces[2]}", "actie": "alles"}
        status, text, _ = await b.post("/app/inbox/besluit", decide)
        assert status == 200, text[:500]
        assert "Besluit vastgelegd: goedgekeurd." in text
        assert "Detailverzoeken (2)" in text
        status, back = await press(b, second, "verzoeken-vorige")
        assert "Verzoek 1 tot en met 2 van 2" not in back  # one page now: no range line
        assert (
            re.findall(r'<section class="vh-request"[^>]*data-trace="([0-9a-f]{32})"', back)
            == (traces[:2])
        )
    finally:
        await b.close()


async def test_the_inbox_filters_as_the_api_does(fed: Federation) -> None:
    trace = await ask_detail(fed)
    node = fed.nodes[POLITIE]
    now = node.clock.now()
    old = add_notices(fed, 2, case_ref="CASUS-2026-OUD", received_at=now - timedelta(days=10))
    other = add_notices(fed, 1, requester="om-test", case_ref="CASUS-OM-7", round_trace_id="b" * 32)
    read = add_notices(fed, 1, case_ref="CASUS-2026-GELEZEN")
    with tx(node.ctx.conn):
        details_store.acknowledge_notices(node.ctx.conn, read, None, "liaison-x", rfc3339(now))
    b = Browser(node)
    try:
        await b.sign_in_as("liaison", enrol(node, ("liaison",))["liaison"])
        await b.get("/app/inbox")

        async def view(**form: str) -> tuple[int, str]:
            status, text, _ = await b.post("/app/inbox", {"pagina": "filteren", **form})
            return status, text

        def requests(text: str) -> list[str]:
            return re.findall(r'<section class="vh-request"[^>]*data-trace="([0-9a-f]{32})"', text)

        _, text = await view(zaaknummer="CASUS-2026-OUD")
        assert sorted(notice_ids(text)) == old
        assert requests(text) == []  # the request is under CASUS-2026-001
        assert 'value="CASUS-2026-OUD"' in text  # the filter shown as chosen
        _, text = await view(partner="om-test")
        assert notice_ids(text) == other
        assert requests(text) == []
        assert '<option value="om-test" selected>' in text
        _, text = await view(partner=VH)
        assert requests(text) == [trace]
        assert set(old) <= set(notice_ids(text))
        assert set(other).isdisjoint(notice_ids(text))
        _, text = await view(ronde="b" * 32)
        assert notice_ids(text) == other
        _, text = await view(vanaf=(now - timedelta(days=1)).date().isoformat())
        assert set(old).isdisjoint(notice_ids(text))
        assert set(other) <= set(notice_ids(text))
        _, text = await view(toon="gelezen")
        assert notice_ids(text) == read
        assert "gelezen door liaison-x" in text
        _, text = await view(toon="alle")
        assert set(read + old + other) <= set(notice_ids(text))
        _, text = await view(convenant="ander-convenant")
        assert notice_ids(text) == []
        assert requests(text) == []
        assert "Er zijn geen meldingen die aan het filter voldoen." in text

        # Bad input: the message at the field, what was typed kept, no filter applied.
        status, text = await view(ronde="niet-hex", zaaknummer="CASUS-2026-OUD")
        assert status == 400
        assert "Een trace-id van een bevraging is 32 tekens" in text
        assert 'href="#ronde"' in text
        assert 'value="niet-hex"' in text
        assert set(old + other) <= set(notice_ids(text))
        status, text = await view(vanaf="31-12-2026")
        assert status == 400
        assert "Geef de datum als JJJJ-MM-DD" in text
        # "Filters wissen": everything open again.
        _, text = await view(pagina="wissen", partner="om-test")
        assert set(old + other) <= set(notice_ids(text))
        assert requests(text) == [trace]
    finally:
        await b.close()


async def test_a_decided_request_has_its_page(fed: Federation) -> None:
    approved, denied = await ask_detail(fed), await ask_detail(fed)
    node = fed.nodes[POLITIE]
    b = Browser(node)
    try:
        await b.sign_in_as("liaison", enrol(node, ("liaison",))["liaison"])
        await b.get("/app/inbox")
        status, text, _ = await b.post(
            "/app/inbox/besluit",
            {"verzoek": f"{VH}|{approved}", "categorie": ANTECEDENTS, "actie": "goedkeuren"},
        )
        assert status == 200
        status, page = await press(b, text, "bekijk-besluit")
        assert status == 200, page[:500]
        row = re.search(
            rf'data-category="{ANTECEDENTS}" data-status="delivered">(.*?)</tr>', page, re.S
        )
        assert row is not None
        assert f"liaison-{POLITIE}" in row.group(1)
        decided_at = (await liaison_status(fed, approved))["decided_at"]
        assert f'datetime="{decided_at}"' in row.group(1)
        assert f'data-trace="{approved}"' in page
        assert "CASUS-2026-001" in page

        await b.post(
            "/app/inbox/besluit",
            {
                "verzoek": f"{VH}|{denied}",
                "categorie": ANTECEDENTS,
                "actie": "weigeren",
                "reden": "Lopend onderzoek",
            },
        )
        # Looked up by requester and trace id, as `vhnode liaison show` does.
        status, page, _ = await b.post("/app/inbox/verzoek", {"aanvrager": VH, "trace": denied})
        assert status == 200
        row = re.search(
            rf'data-category="{ANTECEDENTS}" data-status="denied">(.*?)</tr>', page, re.S
        )
        assert row is not None
        assert "Geweigerd: Lopend onderzoek" in row.group(1)
        assert f"liaison-{POLITIE}" in row.group(1)

        status, page, _ = await b.post("/app/inbox/verzoek", {"aanvrager": VH, "trace": "xyz"})
        assert status == 400
        assert "Een trace-id is 32 tekens" in page
        assert 'value="xyz"' in page
        status, page, _ = await b.post("/app/inbox/verzoek", {"aanvrager": VH, "trace": "0" * 32})
        assert status == 404
        assert "Dit verzoek bestaat niet (meer)." in page
    finally:
        await b.close()
