"""The privacy officer's pages (docs/webapp.md "Toezicht", "Rapport", "Inzageverzoek"),
over real HTTP against a real detail federation with rounds on two days and a detail
exchange: the log's verify shown, recorded (web, API, CLI alike) and kept across a
restart, a tampered log failing it; the cross-check verdict per partner, a partner whose
log was rolled back caught; the report's filters narrowing its figures, anomalies
highlighted, the SVG charts drawing the report's counts, the CSV and JSON downloads equal
to the API's answer; an access request finding the person, printable."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from node.cli import main
from node.flows.audit import report
from node.flows.context import open_node
from tests.detail_fixtures import ANTECEDENTS, JAN_BSN, PIET_BSN, detail_federation
from tests.federation import PURPOSE, Federation, log_entries, restore, snapshot
from tests.webclient import Browser, enrol

VH, POLITIE, OM, GGZ = "vh-test", "politie-test", "om-test", "ggz-test"


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    with capture_logs():
        f = await detail_federation(tmp_path)
        yield f
        await f.close()


async def officer(fed: Federation, node_id: str = VH) -> Browser:
    node = fed.nodes[node_id]
    secret = enrol(node, ("privacy_officer",))["privacy_officer"]
    b = Browser(node)
    await b.sign_in_as("privacy_officer", secret)
    return b


def attr(text: str, element_id: str, name: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*\b{name}="([^"]*)"', text)
    assert found, (element_id, name)
    return found.group(1)


def advance_all(fed: Federation, delta: timedelta) -> None:
    for node in fed.nodes.values():
        node.clock.advance(delta)


async def detail_exchange(fed: Federation) -> None:
    """vh-test asks politie for Jan's antecedents after a round (pending at politie)."""
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


# --- the dashboard: verify ---------------------------------------------------------------


async def test_verify_is_shown_recorded_kept_across_a_restart_and_fails_on_tampering(
    fed: Federation,
) -> None:
    await fed.query(VH, [JAN_BSN])
    node = fed.nodes[VH]
    b = await officer(fed)
    try:
        status, text, resp = await b.get("/app/toezicht")
        assert status == 200
        assert 'id="nooit-gecontroleerd"' in text
        assert resp.headers["Cache-Control"] == "no-store"

        # The button: verified now, recorded with the user, shown as the last verify.
        status, text, _ = await b.post("/app/toezicht/controleren")
        assert status == 200, text[:500]
        assert attr(text, "controle-nu", "data-ok") == "ja"
        assert attr(text, "laatste-controle", "data-ok") == "ja"
        assert "door privacy_officer-vh-test" in text
        recorded = log_entries(node, "audit.verified")
        assert len(recorded) == 1
        assert recorded[0]["actor"] == "privacy_officer-vh-test"
        assert recorded[0]["outcome"] == "ok"
        assert recorded[0]["data"]["entries"] == recorded[0]["seq"]  # every entry before it
        assert recorded[0]["data"]["problems"] == []

        # The API and the CLI record their verifies the same way; the page shows the newest.
        status, body = await fed.api(VH, "GET", "/api/v1/audit/verify", role="privacy_officer")
        assert (status, body["ok"]) == (200, True)
        assert log_entries(node, "audit.verified")[-1]["actor"] == "privacy_officer-vh-test"
        result = CliRunner().invoke(main, ["audit", "verify", "--home", str(node.home)])
        assert result.exit_code == 0, result.output
        cli_entry = log_entries(node, "audit.verified")[-1]
        assert cli_entry["actor"].startswith("cli")
        _, text, _ = await b.get("/app/toezicht")
        assert f"door {cli_entry['actor']}" in text
        assert re.search(r'id="sindsdien">0 regels', text)

        # A restart: the last verify is read back from the log, not from memory.
        await fed.stop(VH)
        node.ctx.close()
        node.ctx = open_node(node.home, clock=node.clock)
        await fed.start(VH)
        _, text, _ = await b.get("/app/toezicht")
        assert f"door {cli_entry['actor']}" in text
        assert attr(text, "laatste-controle", "data-ok") == "ja"

        # Someone edits an entry behind the node's back: the next verify fails, says where,
        # and the failure is what the dashboard shows as the last verify from then on.
        conn = sqlite3.connect(node.home / "node.db")
        seq, body_text = conn.execute(  # hide which case the question was for
            "SELECT seq, body FROM log_entries WHERE kind = 'bekendheid.asked'"
        ).fetchone()
        conn.execute(
            "UPDATE log_entries SET body = ? WHERE seq = ?",
            (body_text.replace("CASUS-2026-001", "CASUS-2026-999"), seq),
        )
        conn.commit()
        conn.close()
        status, text, _ = await b.post("/app/toezicht/controleren")
        assert status == 200
        assert attr(text, "controle-nu", "data-ok") == "nee"
        assert f'data-seq="{seq}" data-kind="edited"' in text
        assert "utrecht-alert--error" in text
        assert attr(text, "laatste-controle", "data-ok") == "nee"
        failed = log_entries(node, "audit.verified")[-1]
        assert failed["outcome"] == "failed"
        assert {"seq": seq, "kind": "edited"} in failed["data"]["problems"]
        _, text, _ = await b.get("/app/toezicht")
        assert attr(text, "laatste-controle", "data-ok") == "nee"
        assert f"regel {seq}: regel gewijzigd" in text
    finally:
        await b.close()


# --- the dashboard: cross-check ----------------------------------------------------------


def verdicts(text: str) -> dict[str, str]:
    return dict(re.findall(r'data-peer="([^"]+)" data-verdict="([^"]*)"', text))


async def test_cross_check_verdict_per_partner_and_a_rolled_back_partner_caught(
    fed: Federation,
) -> None:
    await fed.query(VH, [JAN_BSN])
    old = snapshot(fed, POLITIE)
    await fed.query(VH, [PIET_BSN])  # politie's log grows; vh-test holds its newer head
    b = await officer(fed)
    try:
        _, text, _ = await b.get("/app/toezicht")
        assert verdicts(text) == {GGZ: "", OM: "", POLITIE: ""}  # never checked yet

        status, text, _ = await b.post("/app/toezicht/kruiscontrole")
        assert status == 200, text[:500]
        assert verdicts(text) == {GGZ: "consistent", OM: "consistent", POLITIE: "consistent"}
        assert "Kruiscontrole uitgevoerd bij 3 partner(s)" in text

        # One partner: only its verdict is asked again.
        before = len(log_entries(fed.nodes[VH], "log.cross_checked"))
        status, text, _ = await b.post("/app/toezicht/kruiscontrole", {"partner": OM})
        assert status == 200
        checked = log_entries(fed.nodes[VH], "log.cross_checked")[before:]
        assert [e["counterparty"] for e in checked] == [OM]

        # politie restores an old copy of its database: its log no longer extends the head
        # it signed for vh-test, and the dashboard says so (also after a reload: logged).
        await restore(fed, POLITIE, old)
        status, text, _ = await b.post("/app/toezicht/kruiscontrole", {"partner": POLITIE})
        assert status == 200
        assert verdicts(text)[POLITIE] == "truncated"
        assert "niet in orde bij politie-test" in text
        assert re.search(r'vh-row--bad" data-peer="politie-test"', text)
        _, text, _ = await b.get("/app/toezicht")
        assert verdicts(text) == {GGZ: "consistent", OM: "consistent", POLITIE: "truncated"}

        # A name that is no partner: the dashboard back with the message, nothing checked.
        before = len(log_entries(fed.nodes[VH], "log.cross_checked"))
        status, text, _ = await b.post("/app/toezicht/kruiscontrole", {"partner": "nep-test"})
        assert status == 400
        assert "Deze partner is niet bekend." in text
        assert len(log_entries(fed.nodes[VH], "log.cross_checked")) == before
    finally:
        await b.close()


# --- the report ------------------------------------------------------------------------------


async def scripted_rounds(fed: Federation) -> tuple[str, str]:
    """Two rounds (and a detail request) on one day, a family round the next day."""
    await fed.query(VH, [JAN_BSN])
    await detail_exchange(fed)
    day0 = log_entries(fed.nodes[VH])[-1]["time"][:10]
    advance_all(fed, timedelta(days=1))
    await fed.query(VH, [JAN_BSN, PIET_BSN], case_ref="CASUS-2026-002")
    day1 = log_entries(fed.nodes[VH])[-1]["time"][:10]
    return day0, day1


def row_counts(text: str, table_id: str, key: str) -> dict[str, dict[str, int]]:
    table = text.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    out = {}
    for k, row in re.findall(rf'data-{key}="([^"]+)">(.*?)</tr>', table, re.S):
        out[k] = {m: int(n) for m, n in re.findall(r'data-metric="(\w+)">(\d+)<', row)}
    return out


def bars(text: str, chart_id: str) -> list[tuple[str, str, int]]:
    svg = text.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
    return [
        (series, key, int(n))
        for series, key, n in re.findall(
            r'data-series="([^"]+)" data-key="([^"]+)" data-count="(\d+)"', svg
        )
    ]


async def test_the_report_page_filters_highlights_and_charts_the_apis_figures(
    fed: Federation,
) -> None:
    day0, day1 = await scripted_rounds(fed)
    status, api = await fed.api(VH, "GET", "/api/v1/audit/report", role="privacy_officer")
    assert status == 200
    b = await officer(fed)
    try:
        status, text, _ = await b.get("/app/toezicht/rapport")
        assert status == 200
        assert 'id="rapport"' not in text  # the form only, until it is posted

        status, text, resp = await b.post("/app/toezicht/rapport", {})
        assert status == 200, text[:500]
        assert resp.headers["Cache-Control"] == "no-store"
        assert attr(text, "rondes", "data-count") == "3"
        per_day = row_counts(text, "per-dag", "day")
        assert per_day[day0]["rounds"] == 2
        assert per_day[day1]["rounds"] == 1
        assert per_day == {
            d["day"]: {k: v for k, v in d.items() if k != "day"} for d in api["asked"]["per_day"]
        }
        partners = row_counts(text, "per-partner", "partner")
        for p in api["asked"]["partners"]:
            assert partners[p["partner"]] == {k: v for k, v in p.items() if k != "partner"}
        # Jan is known to politie: a hit in each of the three rounds; Piet once more.
        assert partners[POLITIE]["hit"] == 4

        # The charts draw exactly these counts.
        assert bars(text, "grafiek-rondes-per-dag") == [("rounds", day0, 2), ("rounds", day1, 1)]
        per_status_day = bars(text, "grafiek-statussen-per-dag")
        for d in api["asked"]["per_day"]:
            for s in report.STATUSES:
                drawn = [n for series, key, n in per_status_day if (series, key) == (s, d["day"])]
                assert drawn == ([d[s]] if d[s] else []), (d["day"], s)
        by_partner = {(k, s): n for s, k, n in bars(text, "grafiek-statussen-per-partner")}
        assert by_partner[(POLITIE, "hit")] == 4
        assert sum(by_partner.values()) == sum(
            p[s] for p in api["asked"]["partners"] for s in report.STATUSES
        )
        assert '<title id="grafiek-rondes-per-dag-titel">' in text
        assert "style=" not in text  # the CSP allows no inline style
        assert 'id="geen-afwijkingen"' in text

        # Filters narrow the figures: the second day only; a user with no rounds.
        _, text, _ = await b.post("/app/toezicht/rapport", {"van": day1, "tot": day1})
        assert attr(text, "rondes", "data-count") == "1"
        assert set(row_counts(text, "per-dag", "day")) == {day1}
        _, text, _ = await b.post("/app/toezicht/rapport", {"gebruiker": "iemand-anders"})
        assert attr(text, "rondes", "data-count") == "0"
        assert bars(text, "grafiek-rondes-per-dag") == []

        # Low thresholds: the anomalies are highlighted (an alert, rows marked).
        _, text, _ = await b.post(
            "/app/toezicht/rapport", {"betrokkenen_per_dag": "1", "verzoeken_per_minuut": "1"}
        )
        anomalies = text.split('id="afwijkingen"', 1)[1].split("</table>", 1)[0]
        rules = set(re.findall(r'vh-row--bad" data-rule="(\w+)" data-party="vh-test"', anomalies))
        assert rules == {"many_subjects", "burst"}
        assert "utrecht-alert utrecht-alert--warning vh-anomalies" in text

        # Bad input: the form back with the message, the typed value kept, no report.
        status, text, _ = await b.post("/app/toezicht/rapport", {"van": "2026-13-01"})
        assert status == 400
        assert 'href="#van">Vul een geldige datum in (JJJJ-MM-DD).' in text
        assert 'value="2026-13-01"' in text
        assert 'id="rapport"' not in text
        status, text, _ = await b.post("/app/toezicht/rapport", {"van": day1, "tot": day0})
        assert status == 400
        assert "De einddatum ligt vóór de begindatum." in text
    finally:
        await b.close()


async def test_the_downloads_are_the_apis_report_for_the_same_filters(fed: Federation) -> None:
    day0, _ = await scripted_rounds(fed)
    b = await officer(fed)
    try:
        form = {"van": day0, "tot": day0, "convenant": "vh-test-veelplegers"}
        query = {"from": day0, "to": day0, "convenant": "vh-test-veelplegers"}
        for fmt in ("csv", "json"):
            async with b.session.post(
                b.node.url + "/app/toezicht/rapport/download",
                data={**form, "formaat": fmt, "form_token": b.token},
            ) as resp:
                assert resp.status == 200
                got = await resp.read()
                assert resp.headers["Cache-Control"] == "no-store"
                disposition = resp.headers["Content-Disposition"]
                assert disposition == (
                    f'attachment; filename="auditrapport-vh-test-{day0}-{day0}.{fmt}"'
                )
                content_type = resp.headers["Content-Type"]
            assert fed.session is not None
            async with fed.session.get(
                fed.nodes[VH].url + "/api/v1/audit/report?" + urlencode({**query, "format": fmt}),
                headers={"Authorization": f"Bearer {fed.nodes[VH].tokens['privacy_officer']}"},
            ) as api:
                assert api.status == 200
                assert got == await api.read()  # the same bytes
                assert content_type == api.headers["Content-Type"]
        assert json.loads(got)["filters"]["convenant"] == "vh-test-veelplegers"

        # No format chosen, or bad filters: the form back, no file.
        status, text, resp = await b.post("/app/toezicht/rapport/download", form)
        assert status == 400
        assert "Content-Disposition" not in resp.headers
        assert "Kies CSV of JSON." in text
        status, text, resp = await b.post(
            "/app/toezicht/rapport/download", {"formaat": "csv", "verzoeken_per_minuut": "0"}
        )
        assert status == 400
        assert "Content-Disposition" not in resp.headers
    finally:
        await b.close()


# --- the access request ----------------------------------------------------------------------


async def test_an_access_request_finds_the_person_and_prints(fed: Federation) -> None:
    await scripted_rounds(fed)
    b = await officer(fed)
    try:
        status, text, _ = await b.get("/app/inzage")
        assert status == 200
        status, text, resp = await b.post(
            "/app/inzage", {"bsn-0": "123456782", "kenmerk": "AVG-15-2026-7", "actie": "zoek"}
        )
        assert (resp.url.path, resp.url.query_string) == ("/app/inzage", "")  # body only
        assert status == 200, text[:500]
        assert resp.headers["Cache-Control"] == "no-store"
        assert ">AVG-15-2026-7<" in text
        assert '<dd class="utrecht-data-list__item-value" id="rapport-node">vh-test</dd>' in text
        rows = re.findall(r'data-kind="([\w.]+)" data-trace="(\w*)"', text)
        # Jan was asked in all three rounds: one block per round (its partners within),
        # and the round's intent before each.
        asked = [t for k, t in rows if k == "bekendheid.asked"]
        assert len(asked) == len(set(asked)) == 3
        assert {k for k, _ in rows} >= {"bekendheid.round", "bekendheid.asked", "detail.asked"}
        assert "een van 2 gegevens in deze verwerking" in text  # the family round
        assert "111222333" not in text  # Piet, the other member, stays out
        logged = log_entries(fed.nodes[VH], "audit.inzage")[-1]
        assert logged["actor"] == "privacy_officer-vh-test"
        assert logged["data"]["request_ref"] == "AVG-15-2026-7"
        assert f"Verwerkingen over deze persoon ({logged['data']['entries']})" in text

        # The partner holds the registration and the detail request about Jan.
        p = await officer(fed, POLITIE)
        try:
            status, text, _ = await p.post("/app/inzage", {"bsn-0": "123456782", "actie": "zoek"})
            assert status == 200
            assert 'data-ref="BVH-1"' in text
            assert 'data-kind="detail.requested"' in text
            assert 'id="rapport-kenmerk">geen<' in text
        finally:
            await p.close()

        # A bad BSN: the form back in Dutch, the typed value kept, nothing looked up.
        before = len(log_entries(fed.nodes[VH], "audit.inzage"))
        status, text, _ = await b.post("/app/inzage", {"bsn-0": "123456783", "actie": "zoek"})
        assert status == 400
        assert "elfproef" in text
        assert 'value="123456783"' in text
        status, text, _ = await b.post("/app/inzage", {"actie": "zoek"})
        assert status == 400
        assert "Vul ten minste één gegeven van de persoon in." in text
        assert len(log_entries(fed.nodes[VH], "audit.inzage")) == before

        # A row more: the form grows, nothing is looked up.
        status, text, _ = await b.post("/app/inzage", {"rijen": "2", "actie": "rij"})
        assert status == 200
        assert 'id="bsn-2"' in text
        assert len(log_entries(fed.nodes[VH], "audit.inzage")) == before
    finally:
        await b.close()


async def test_the_print_stylesheet_exists_and_every_page_links_it(fed: Federation) -> None:
    b = await officer(fed)
    try:
        _, text, _ = await b.get("/app/inzage")
        assert '<link rel="stylesheet" href="/app/static/print.css" media="print">' in text
        status, css, resp = await b.get("/app/static/print.css")
        assert status == 200
        assert resp.content_type == "text/css"
        assert "@media print" in css
        hidden = css.split("{", 2)[1]
        for selector in (".vh-nav", ".vh-account", ".vh-actions", "form", "button"):
            assert selector in hidden, selector
        assert ".vh-print-header" in css
    finally:
        await b.close()
