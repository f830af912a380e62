"""The privacy officer's report (node/flows/audit/report.py) over real logs of real nodes.

A scripted sequence — rounds with hits, a family, a purpose the convenant does not grant,
a stopped partner, a rate limit, an outsider's request, a day later another round — runs
on the federation simulator. The report must count exactly what the coordinator was shown
(the query results are the ground truth, not the log), per partner and per reason, on the
asking and on the answering side; filters narrow it; the unusual-pattern rules fire for
the party that earns them and not for the others; the CSV parses; only the
privacy_officer and admin roles can read any audit route.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import main
from node.flows import unauthenticated
from node.flows.audit import Entry, render, report
from node.http.app import make_app
from node.policy.rate_limit import RateLimiter
from tests.federation import (
    EVALUATE_PATH,
    OTHER_PURPOSE,
    PURPOSE,
    Federation,
    evaluate_request,
    log_entries,
    outsider,
    post_peer,
    standard_federation,
)

RUNNER = CliRunner()

A = {"kind": "bsn", "bsn": "123456782"}
B = {"kind": "bsn", "bsn": "111222333"}
C = {"kind": "person", "surname": "Jansen", "first_names": "Piet", "birth_date": "1985-05-05"}
VH, POLITIE, OM, GGZ = "vh-test", "politie-test", "om-test", "ggz-test"
OUTSIDER = "gemeente-test"
COORDINATOR_VH = f"coordinator-{VH}"


@dataclass
class Script:
    """What the scripted run showed the coordinators: the ground truth to count against."""

    fed: Federation
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # asker → results
    day0: date = date.min
    later: date = date.min


def _day(node: Any) -> date:
    return datetime.fromisoformat(log_entries(node)[-1]["time"]).date()


async def _script(fed: Federation) -> Script:
    s = Script(fed)
    fed.register(POLITIE, {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [A]})
    fed.register(POLITIE, {"ref": "BPS-2", "themes": ["huiselijk_geweld"], "identifiers": [B]})
    fed.register(OM, {"ref": "OM-1", "themes": ["veelplegers"], "identifiers": [A]})

    async def ask(asker: str, subjects: list[dict[str, Any]], **kw: Any) -> None:
        s.results.setdefault(asker, []).append(await fed.query(asker, subjects, **kw))

    await ask(VH, [A])
    await ask(VH, [A, B, C])  # a family
    await ask(VH, [A], purpose=OTHER_PURPOSE)  # not granted: every partner refuses
    await fed.stop(GGZ)
    await ask(VH, [B])  # ggz unreachable
    await fed.start(GGZ)
    await ask(POLITIE, [A])
    await ask(POLITIE, [C])
    # om's bucket holds 2 evaluations: a family of three is refused (rate_limited)
    fed.nodes[OM].ctx.limiter = RateLimiter(60.0, 2)
    await ask(VH, [A, B, C])
    fed.nodes[OM].ctx.limiter = RateLimiter(6000.0, 2000)
    # a node om does not know signs a request of its own
    outsider(fed, OUTSIDER)
    reply = await post_peer(fed, OM, EVALUATE_PATH, evaluate_request(fed, OUTSIDER, OM))
    assert reply.status == 403
    # Not authenticated (§6.6 step 3): counted, and logged as a count when flushed.
    assert unauthenticated.flush(fed.nodes[OM].ctx, everything=True) == 1
    s.day0 = _day(fed.nodes[VH])
    # three days later, one more round
    for node in fed.nodes.values():
        node.clock.set(fed.started_at + timedelta(days=3))
    await ask(VH, [C])
    s.later = _day(fed.nodes[VH])
    assert s.later >= s.day0 + timedelta(days=3)
    return s


@pytest.fixture
async def script(tmp_path: Path) -> AsyncIterator[Script]:
    fed = await standard_federation(tmp_path)
    try:
        yield await _script(fed)
    finally:
        await fed.close()


def _report(fed: Federation, node_id: str, **kw: Any) -> report.Report:
    ctx = fed.nodes[node_id].ctx
    thresholds = kw.pop("thresholds", None)
    return report.report_for(ctx.conn, node_id, ctx.clock.now(), report.Filters(**kw), thresholds)


def _asked_truth(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per partner: requests, subjects and per-subject statuses, as the coordinator saw."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        for p in r["partners"]:
            row = out.setdefault(p["partner"], {"requests": 0, "subjects": 0})
            row["requests"] += 1
            row["subjects"] += len(p["subjects"])
            for status, n in Counter(p["subjects"]).items():
                row[status] = row.get(status, 0) + n
    return out


def _refusals_truth(results: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return dict(
        Counter(
            (p["partner"], p["reason"])
            for r in results
            for p in r["partners"]
            if p["status"] == "refused"
        )
    )


# --- the asking side ---------------------------------------------------------------------


async def test_asking_node_counts_what_the_coordinator_was_shown(script: Script) -> None:
    rep = _report(script.fed, VH)
    shown = script.results[VH]
    assert rep.rounds == len(shown) == 6
    assert rep.subjects_asked == sum(r["subject_count"] for r in shown) == 10
    truth = _asked_truth(shown)
    for partner, row in rep.asked.items():
        assert {k: v for k, v in row.items() if v} == truth[partner], partner
    assert set(rep.asked) == set(truth) == {VH, POLITIE, OM, GGZ}
    # spot checks against the script itself
    assert rep.asked[POLITIE]["hit"] == 1 + 2 + 1 + 2  # A; A,B; B; A,B
    assert rep.asked[GGZ]["unreachable"] == 1
    assert rep.refusals_received == _refusals_truth(shown)
    assert rep.refusals_received == {
        (VH, "no_query_right"): 1,
        (POLITIE, "no_query_right"): 1,
        (OM, "no_query_right"): 1,
        (GGZ, "no_query_right"): 1,
        (OM, "rate_limited"): 1,
    }
    assert [(a.rule, a.side, a.party) for a in rep.anomalies if a.rule == "rate_limited"] == [
        ("rate_limited", "received", OM)
    ]


async def test_answering_node_counts_requests_refusals_and_reasons(script: Script) -> None:
    rep = _report(script.fed, OM)
    vh, politie = rep.answered[VH], rep.answered[POLITIE]
    # vh-test's rounds: [A], [A,B,C], [B], [C] evaluated; OTHER_PURPOSE and the
    # rate-limited family refused
    assert (vh["evaluations"], vh["elements"], vh["refused"]) == (4, 1 + 3 + 1 + 1, 2)
    assert (politie["evaluations"], politie["elements"], politie["refused"]) == (2, 2, 0)
    # The outsider's request is no request of a party: only counted, under no name.
    assert OUTSIDER not in rep.answered
    assert rep.unauthenticated == {("", "unknown_requester"): 1}
    served = Counter(e["counterparty"] for e in log_entries(script.fed.nodes[OM], "tag_set.served"))
    assert vh["tag_sets_served"] == served[VH] >= 1
    assert rep.refusals_given == {
        (VH, "no_query_right"): 1,
        (VH, "rate_limited"): 1,
    }
    assert rep.refusals_received == {}
    assert rep.rounds == 0  # om asks nobody
    flagged = {(a.rule, a.party, a.reason) for a in rep.anomalies}
    assert ("rate_limited", VH, "rate_limited") in flagged
    assert ("unauthenticated_requests", None, "unknown_requester") in flagged
    assert not any(a.party == POLITIE for a in rep.anomalies)


async def test_registry_admin_and_stage_two_rows(script: Script) -> None:
    rep = _report(script.fed, POLITIE)
    assert rep.registry == {"batches": 2, "upserted": 2, "removed": 0, "unchanged": 0}
    assert rep.admin["peer.added"] == 3  # the outsider's card was never added here
    assert rep.admin["user.created"] == 5  # coordinator, source, privacy officer, liaison, admin
    assert rep.admin["convenant.installed"] == 1
    # installation, then one version per registration batch (both themes are in scope)
    assert rep.tag_sets_published["vh-test-veelplegers"] == {"versions": 3, "latest_version": 3}
    # detail sharing is not built yet: its kinds are listed with zero counts
    # No detail rules in this convenant: every detail row is there, and zero.
    assert rep.details == dict.fromkeys(report.DETAIL_KINDS, 0)
    assert sum(rep.by_kind.values()) == rep.entries


# --- filters -----------------------------------------------------------------------------


async def test_filters_narrow_the_report(script: Script) -> None:
    fed = script.fed
    # requesting party: at om only politie's requests remain
    rep = _report(fed, OM, party=POLITIE)
    assert set(rep.answered) == {POLITIE}
    assert rep.refusals_given == {}
    assert rep.entries == 2 + len(
        [e for e in log_entries(fed.nodes[OM], "tag_set.served") if e["counterparty"] == POLITIE]
    )
    # the requesting party of a node's own rounds is the node itself
    assert _report(fed, VH, party=VH).rounds == 6
    assert _report(fed, VH, party=POLITIE).rounds == 0
    # purpose
    rep = _report(fed, VH, purpose=OTHER_PURPOSE)
    assert rep.rounds == 1
    assert set(rep.refusals_received.values()) == {1}
    assert _report(fed, OM, purpose=OTHER_PURPOSE).refusals_given == {(VH, "no_query_right"): 1}
    # user: at a partner, the remote requesting user
    rep = _report(fed, OM, user=COORDINATOR_VH)
    assert set(rep.answered) == {VH}
    assert rep.answered[VH]["evaluations"] == 4
    # convenant
    assert _report(fed, VH, convenant="vh-other").entries == 0
    assert _report(fed, VH, convenant="vh-test-veelplegers").rounds == 6
    # period: the round three days later, and the rest
    assert _report(fed, VH, start=script.later).rounds == 1
    early = _report(fed, VH, end=script.day0 + timedelta(days=1))
    assert early.rounds == 5
    assert early.last_time is not None
    assert early.last_time < f"{script.later}T00:00:00Z"
    assert _report(fed, VH, start=script.day0 + timedelta(days=1), end=script.later).rounds == 1
    # a purpose on entries that have none leaves them out
    assert _report(fed, VH, purpose=PURPOSE).admin["user.created"] == 0


# --- unusual patterns ----------------------------------------------------------------------


async def test_many_subjects_fires_for_the_heavy_requester_only(script: Script) -> None:
    fed = script.fed
    th = report.Thresholds(subjects_per_day=3, requests_per_minute=1000)
    rep = _report(fed, OM, thresholds=th)
    many = [a for a in rep.anomalies if a.rule == "many_subjects"]
    # at om vh-test asked 1+3+1+1+3 subjects on day 0 (refused requests count too);
    # politie-test asked 2
    assert [(a.party, a.count, a.window) for a in many] == [(VH, 9, script.day0.isoformat())]
    # at the asking node the count is of distinct persons: A, B, C on day 0
    at_vh = report.Thresholds(subjects_per_day=3, requests_per_minute=1000)
    own = [a for a in _report(fed, VH, thresholds=at_vh).anomalies if "distinct" in a.detail]
    assert own == []
    at_vh = report.Thresholds(subjects_per_day=2, requests_per_minute=1000)
    own = [a for a in _report(fed, VH, thresholds=at_vh).anomalies if "distinct" in a.detail]
    assert [(a.party, a.count) for a in own] == [(VH, 3)]
    # the defaults flag nothing in this small run
    assert not [a for a in _report(fed, OM).anomalies if a.rule in ("many_subjects", "burst")]


async def test_burst_fires_for_the_party_above_the_limit(script: Script) -> None:
    th = report.Thresholds(subjects_per_day=1000, requests_per_minute=4)
    bursts = [a for a in _report(script.fed, OM, thresholds=th).anomalies if a.rule == "burst"]
    # vh-test sent om 5 evaluate requests within seconds on day 0; politie-test 2
    assert [(a.party, a.count) for a in bursts] == [(VH, 5)]


def _entry(t: str, party: str = "p", elements: int = 1) -> Entry:
    return Entry(
        seq=0,
        time=t,
        kind="bekendheid.evaluated",
        convenant_id="c",
        counterparty=party,
        data={"elements": elements},
    )


def test_burst_window_slides_across_minute_boundaries() -> None:
    now = datetime.fromisoformat("2026-03-02T12:00:00Z")
    # 6 requests in 20 s that straddle a calendar minute; then a quiet minute; then 6 again
    times = [f"2026-03-02T10:00:{s:02d}Z" for s in (50, 52, 54, 56, 58)] + ["2026-03-02T10:01:05Z"]
    times += [f"2026-03-02T10:05:{s:02d}Z" for s in range(6)]
    rep = report.build(
        [_entry(t) for t in times], "me", now, thresholds=report.Thresholds(10**6, 5)
    )
    bursts = [(a.window, a.count) for a in rep.anomalies if a.rule == "burst"]
    assert bursts == [
        ("2026-03-02T10:00:50Z/2026-03-02T10:01:05Z", 6),
        ("2026-03-02T10:05:00Z/2026-03-02T10:05:05Z", 6),
    ]
    # at the limit exactly: nothing
    rep = report.build(
        [_entry(t) for t in times], "me", now, thresholds=report.Thresholds(10**6, 6)
    )
    assert not [a for a in rep.anomalies if a.rule == "burst"]


def test_many_subjects_counts_per_utc_day() -> None:
    now = datetime.fromisoformat("2026-03-03T00:00:00Z")
    entries = [
        _entry("2026-03-01T23:59:59Z", elements=150),
        _entry("2026-03-02T00:00:00Z", elements=150),
    ]
    assert report.build(entries, "me", now).anomalies == []
    entries.append(_entry("2026-03-02T08:00:00Z", elements=51))
    [a] = report.build(entries, "me", now).anomalies
    assert (a.rule, a.window, a.count, a.threshold) == ("many_subjects", "2026-03-02", 201, 200)


# --- output: CSV, JSON, text, through the CLI and the API ------------------------------------


async def test_cli_csv_parses_and_matches_the_report(script: Script) -> None:
    fed = script.fed
    result = RUNNER.invoke(main, ["audit", "report", "--home", str(fed.nodes[VH].home), "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(render.CSV_COLUMNS)
    value = {
        (r["section"], r["party"], r["reason"], r["kind"], r["metric"]): r["value"] for r in rows
    }
    rep = _report(fed, VH)
    assert value[("asked_total", "", "", "", "rounds")] == "6"
    assert value[("asked", POLITIE, "", "", "hit")] == str(rep.asked[POLITIE]["hit"])
    assert value[("refusals_received", OM, "rate_limited", "", "count")] == "1"
    assert value[("details", "", "", "detail.purged", "purges")] == "0"
    assert value[("admin", "", "", "user.created", "count")] == "5"


async def test_cli_json_and_text(script: Script) -> None:
    home = str(script.fed.nodes[OM].home)
    args = ["audit", "report", "--home", home, "--party", VH, "--requests-per-minute", "4"]
    result = RUNNER.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["filters"]["party"] == VH
    assert [a["requester"] for a in data["answered"]] == [VH]
    assert any(a["rule"] == "burst" for a in data["anomalies"])
    text = RUNNER.invoke(main, args).stdout
    assert "Refusals given by this node" in text
    assert "rate_limited" in text
    assert "Unusual patterns:" in text


async def test_api_report_json_and_csv(script: Script) -> None:
    fed = script.fed
    status, data = await fed.api(
        VH, "GET", f"/api/v1/audit/report?purpose={OTHER_PURPOSE}", role="privacy_officer"
    )
    assert status == 200, data
    assert data["asked"]["rounds"] == 1
    assert fed.session is not None
    async with fed.session.get(
        fed.nodes[VH].url + f"/api/v1/audit/report?format=csv&from={script.later}",
        headers={"Authorization": f"Bearer {fed.nodes[VH].tokens['admin']}"},
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert {"section": "asked_total", "metric": "rounds", "value": "1"}.items() <= next(
        r for r in rows if r["section"] == "asked_total" and r["metric"] == "rounds"
    ).items()


# --- roles and bad input -------------------------------------------------------------------


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    f = await standard_federation(tmp_path)
    try:
        yield f
    finally:
        await f.close()


async def test_only_privacy_officer_and_admin_read_audit_routes(fed: Federation) -> None:
    node = fed.nodes[VH]
    routes = sorted(
        {
            (r.method, r.resource.canonical)
            for r in make_app(node.ctx).router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/api/v1/audit/")
        }
    )
    ours = [
        ("GET", "/api/v1/audit/verify"),
        ("GET", "/api/v1/audit/report"),
        ("POST", "/api/v1/audit/inzage"),
    ]
    assert set(ours) <= set(routes)
    for method, path in routes:
        for role in ("coordinator", "source", "liaison"):
            status, body = await fed.api(VH, method, path, role=role, json={})
            assert status == 403, (method, path, role)
            if method != "HEAD":  # aiohttp's automatic HEAD twin of a GET: no body
                assert body["type"].endswith("/forbidden"), (path, role)
    body_for = {"/api/v1/audit/inzage": {"subjects": [A]}}
    for role in ("privacy_officer", "admin"):
        for method, path in ours:
            status, body = await fed.api(VH, method, path, role=role, json=body_for.get(path))
            assert status == 200, (path, role, body)


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("from=2026-13-01", "from: '2026-13-01' is not a date"),
        ("to=31-01-2026", "to: '31-01-2026' is not a date"),
        ("from=2026-02-02&to=2026-02-01", "is after to"),
        ("format=xml", "format must be json or csv"),
        ("form=2026-01-01", "unknown query parameter 'form'"),
        ("subjects_per_day=0", "subjects_per_day"),
        ("requests_per_minute=many", "requests_per_minute"),
        ("party=a&party=b", "once"),
    ],
)
async def test_api_report_bad_input(fed: Federation, query: str, detail: str) -> None:
    status, body = await fed.api(VH, "GET", f"/api/v1/audit/report?{query}", role="admin")
    assert status == 400
    assert body["type"].endswith("/invalid_input")
    assert detail in body["detail"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--from", "2026-02-30"], 1, "error: from: '2026-02-30' is not a date (YYYY-MM-DD)"),
        (["--from", "2026-02-02", "--to", "2026-02-01"], 1, "is after to"),
        (["--json", "--csv"], 2, "give --json or --csv, not both"),
        (["--subjects-per-day", "0"], 2, "--subjects-per-day"),
    ],
)
def test_cli_report_bad_input(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = RUNNER.invoke(main, ["audit", "report", "--home", str(tmp_path / "none"), *args])
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
