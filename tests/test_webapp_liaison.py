"""The liaison's inbox in the web application (docs/webapp.md "Inbox"), over real HTTP
against a real detail federation: pending detail requests with the convenant's rule
beside each category, approve the ticked categories, deny with a reason, bad input
changes nothing, a decision taken twice is refused, hit notices acknowledged; the
requester's coordinator then holds the approved text and the denial's reason."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.detail_fixtures import ANTECEDENTS, JAN_ANTECEDENTS, JAN_BSN, detail_federation
from tests.federation import PURPOSE, Federation
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
