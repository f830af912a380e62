"""What the partner's liaison is asked and told (issue 9 items 11 and 12), on real nodes.

Item 11: a liaison is never asked to approve a category the node has no text for, and is
never shown "delivered" for a category the requester receives as ``unavailable``.
Item 12: one hit notice per registration per round, a paged and filtered inbox, and
notices acknowledged — through the API and through ``vhnode liaison`` run as a process.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from node.config import DetailsConfig
from tests.detail_fixtures import (
    ANTECEDENTS,
    CONTACT,
    JAN_ANTECEDENTS,
    JAN_BSN,
    JAN_CONTACT,
    PIET_BSN,
    detail_federation,
)
from tests.federation import PURPOSE, Federation, bound_socket

VH, POLITIE = "vh-test", "politie-test"
INBOX = "/api/v1/liaison/inbox"
JAN_PERSON = {
    "kind": "person",
    "surname": "Vries",
    "tussenvoegsel": "de",
    "first_names": "Jan",
    "birth_date": "1980-05-17",
}


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    with capture_logs():
        f = await detail_federation(tmp_path)
        yield f
        await f.close()


async def ask_detail(
    fed: Federation, identifier: dict[str, Any], categories: list[str]
) -> dict[str, Any]:
    """vh-test's coordinator asks politie for detail after a real round (its local API)."""
    round_ = await fed.query(VH, [identifier], partners=[POLITIE])
    status, ask = await fed.api(
        VH,
        "POST",
        "/api/v1/details",
        json={
            "round_trace_id": round_["trace_id"],
            "partner": POLITIE,
            "categories": categories,
            "purpose": PURPOSE,
        },
    )
    assert status == 200, ask
    return dict(ask)


def by_category(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["category"]: c for c in doc["categories"]}


async def liaison_view(fed: Federation, trace_id: str) -> dict[str, dict[str, Any]]:
    status, doc = await fed.api(
        POLITIE, "GET", f"/api/v1/liaison/requests/{VH}/{trace_id}", role="liaison"
    )
    assert status == 200, doc
    return by_category(doc)


async def requester_view(fed: Federation, trace_id: str) -> dict[str, dict[str, Any]]:
    status, doc = await fed.api(VH, "POST", f"/api/v1/details/{trace_id}/poll")
    assert status == 200, doc
    return by_category(doc)


async def until(check: Any, what: str, seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def vhnode(fed: Federation, *args: str) -> tuple[int, str, str]:
    """``vhnode`` as a separate process against politie's running node."""
    node = fed.nodes[POLITIE]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node",
        *args,
        "--home",
        str(node.home),
        "--url",
        node.url,
        "--token",
        node.tokens["liaison"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode(), err.decode()


def log_kinds(fed: Federation, trace_id: str) -> list[tuple[str, str | None]]:
    rows = fed.nodes[POLITIE].ctx.conn.execute(
        "SELECT kind, json_extract(body, '$.data.category') FROM log_entries "
        "WHERE trace_id = ? ORDER BY seq",
        (trace_id,),
    )
    return [(str(k), c) for k, c in rows]


# --- item 11 -------------------------------------------------------------------------------


async def test_a_category_without_text_is_unavailable_at_once_not_put_to_the_liaison(
    fed: Federation,
) -> None:
    # Piet is registered at politie without any detail text; the antecedents' rule waits
    # for the liaison.
    ask = await ask_detail(fed, PIET_BSN, [ANTECEDENTS])
    got = by_category(ask)[ANTECEDENTS]
    assert (got["status"], got["reason"]) == ("unavailable", "no_detail_on_record")
    _, inbox = await fed.api(POLITIE, "GET", INBOX, role="liaison")
    assert ask["trace_id"] not in {r["trace_id"] for r in inbox["requests"]}
    assert (await liaison_view(fed, ask["trace_id"]))[ANTECEDENTS]["status"] == "unavailable"
    assert ("detail.pending", ANTECEDENTS) not in log_kinds(fed, ask["trace_id"])
    assert ("detail.unavailable", ANTECEDENTS) in log_kinds(fed, ask["trace_id"])


async def test_an_approval_of_a_text_gone_meanwhile_shows_unavailable_to_both_sides(
    fed: Federation,
) -> None:
    ask = await ask_detail(fed, JAN_BSN, [CONTACT, ANTECEDENTS])
    trace = ask["trace_id"]
    assert by_category(ask)[ANTECEDENTS]["status"] == "pending"
    # The source system replaces Jan's registration: the antecedents' text is gone.
    fed.register(
        POLITIE,
        {"ref": "BVH-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN],
         "details": {CONTACT: JAN_CONTACT}},
    )  # fmt: skip
    code, out, err = await vhnode(fed, "liaison", "approve", VH, trace)
    assert code == 0, err
    row = next(ln for ln in out.splitlines() if ln.startswith(ANTECEDENTS))
    assert "unavailable" in row
    assert "no_detail_on_record" in row
    assert "delivered" not in row
    mine = await liaison_view(fed, trace)
    assert (mine[ANTECEDENTS]["status"], mine[ANTECEDENTS]["decided_by"]) == (
        "unavailable",
        "liaison-politie-test",
    )
    theirs = await requester_view(fed, trace)
    assert (theirs[ANTECEDENTS]["status"], theirs[ANTECEDENTS]["reason"]) == (
        "unavailable",
        "no_detail_on_record",
    )
    # The contact went out with the request's answer, and the liaison sees that it did.
    assert mine[CONTACT]["status"] == "delivered"
    assert mine[CONTACT]["disclosed_at"]
    kinds = log_kinds(fed, trace)
    assert ("detail.approved", ANTECEDENTS) in kinds
    assert ("detail.disclosed", ANTECEDENTS) not in kinds


async def serve_source(texts: dict[tuple[str, str], str]) -> tuple[web.AppRunner, str]:
    """A source system that knows ``texts`` per (ref, category) (docs/source-system.md)."""

    async def detail(request: web.Request) -> web.Response:
        asked = await request.json()
        found = [
            {"ref": r, "category": c, "body": texts[r, c]}
            for r in asked["refs"]
            for c in asked["categories"]
            if (r, c) in texts
        ]
        return web.json_response({"details": found})

    app = web.Application()
    app.router.add_post("/detail", detail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = bound_socket()
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}/detail"


@pytest.mark.parametrize("source_has_it", [False, True])
async def test_with_a_source_system_the_liaison_sees_what_the_fetch_after_approval_found(
    fed: Federation, source_has_it: bool
) -> None:
    texts = {("BVH-2", ANTECEDENTS): "Piet: 1 aangifte 2026"} if source_has_it else {}
    runner, url = await serve_source(texts)
    try:
        node = fed.nodes[POLITIE]
        node.ctx.cfg = node.ctx.cfg.model_copy(update={"details": DetailsConfig(source_url=url)})
        # No stored text, but the source system may have one: the liaison decides.
        ask = await ask_detail(fed, PIET_BSN, [ANTECEDENTS])
        trace = ask["trace_id"]
        assert by_category(ask)[ANTECEDENTS]["status"] == "pending"
        status, approved = await fed.api(
            POLITIE, "POST", f"/api/v1/liaison/requests/{VH}/{trace}/approve", role="liaison"
        )
        assert status == 200, approved

        # The decision notice makes vh-test poll; the poll fetches from the source system.
        async def fetched() -> bool:
            c = (await liaison_view(fed, trace))[ANTECEDENTS]
            return c["status"] == "unavailable" or c["disclosed_at"] is not None

        await until(fetched, "the poll after the decision notice")
        mine = (await liaison_view(fed, trace))[ANTECEDENTS]
        theirs = (await requester_view(fed, trace))[ANTECEDENTS]
        if source_has_it:
            assert (mine["status"], theirs["status"]) == ("delivered", "delivered")
            code, out, _ = await vhnode(fed, "liaison", "show", VH, trace)
            assert code == 0
            assert "approved, not sent yet" not in out
        else:
            assert (mine["status"], mine["reason"]) == ("unavailable", "no_detail_on_record")
            assert theirs["status"] == "unavailable"
            code, out, _ = await vhnode(fed, "liaison", "show", VH, trace)
            row = next(ln for ln in out.splitlines() if ln.startswith(ANTECEDENTS))
            assert code == 0
            assert "unavailable" in row
            assert "delivered" not in row
    finally:
        await runner.cleanup()


async def test_an_approved_text_is_delivered_once_polled_and_not_before(
    fed: Federation,
) -> None:
    ask = await ask_detail(fed, JAN_BSN, [ANTECEDENTS])
    trace = ask["trace_id"]
    # vh-test is down when politie's liaison approves: the decision notice does not
    # arrive, nothing is fetched or sent, and the liaison is not told "delivered".
    await fed.stop(VH)
    status, _ = await fed.api(
        POLITIE, "POST", f"/api/v1/liaison/requests/{VH}/{trace}/approve", role="liaison"
    )
    assert status == 200
    assert (await liaison_view(fed, trace))[ANTECEDENTS]["disclosed_at"] is None
    code, out, _ = await vhnode(fed, "liaison", "show", VH, trace)
    assert code == 0
    assert "approved, not sent yet" in next(
        ln for ln in out.splitlines() if ln.startswith(ANTECEDENTS)
    )
    await fed.start(VH)
    theirs = await requester_view(fed, trace)
    assert theirs[ANTECEDENTS]["status"] == "delivered"
    _, view = await fed.api(VH, "GET", f"/api/v1/details/{trace}")
    assert by_category(view)[ANTECEDENTS]["entries"] == [JAN_ANTECEDENTS]
    assert (await liaison_view(fed, trace))[ANTECEDENTS]["disclosed_at"] is not None


# --- item 12 -------------------------------------------------------------------------------


async def test_bsn_and_name_of_one_registration_make_one_notice_per_round(
    fed: Federation,
) -> None:
    fed.register(
        POLITIE,
        {"ref": "BVH-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN, JAN_PERSON],
         "details": {CONTACT: JAN_CONTACT, ANTECEDENTS: JAN_ANTECEDENTS}},
    )  # fmt: skip
    round_ = await fed.query(VH, [JAN_BSN, JAN_PERSON, PIET_BSN], partners=[POLITIE])
    assert round_["partners"][0]["subjects"] == ["hit", "hit", "hit"]
    _, inbox = await fed.api(POLITIE, "GET", f"{INBOX}?round={round_['trace_id']}", role="liaison")
    assert sorted(n["refs"] for n in inbox["hit_notices"]) == [["BVH-1"], ["BVH-2"]]
    assert inbox["hit_notices_total"] == 2
    # Every subject noticed is still in the log, pseudonymous.
    (subjects,) = (
        fed.nodes[POLITIE]
        .ctx.conn.execute(
            "SELECT json_extract(body, '$.subjects') FROM log_entries "
            "WHERE kind = 'hit_notice.received' AND trace_id = ?",
            (round_["trace_id"],),
        )
        .fetchone()
    )
    assert len(json.loads(subjects)) == 3


async def test_the_inbox_pages_filters_and_acknowledged_notices_leave_it(
    fed: Federation,
) -> None:
    for n in range(5):
        await fed.query(VH, [JAN_BSN], partners=[POLITIE], case_ref=f"CASUS-{n}")
    _, first = await fed.api(POLITIE, "GET", f"{INBOX}?limit=2", role="liaison")
    assert [n["case_ref"] for n in first["hit_notices"]] == ["CASUS-4", "CASUS-3"]
    assert first["hit_notices_total"] == 5
    _, second = await fed.api(
        POLITIE, "GET", f"{INBOX}?limit=2&before={first['next_before']}", role="liaison"
    )
    assert [n["case_ref"] for n in second["hit_notices"]] == ["CASUS-2", "CASUS-1"]
    _, last = await fed.api(
        POLITIE, "GET", f"{INBOX}?limit=2&before={second['next_before']}", role="liaison"
    )
    assert [n["case_ref"] for n in last["hit_notices"]] == ["CASUS-0"]
    assert last["next_before"] is None
    _, one = await fed.api(POLITIE, "GET", f"{INBOX}?case_ref=CASUS-3", role="liaison")
    assert [n["case_ref"] for n in one["hit_notices"]] == ["CASUS-3"]
    _, other = await fed.api(POLITIE, "GET", f"{INBOX}?requester=om-test", role="liaison")
    assert (other["hit_notices"], other["hit_notices_total"]) == ([], 0)

    # The liaison reads the two newest and acknowledges them, from the CLI.
    newest, older = first["hit_notices"][0]["id"], first["hit_notices"][1]["id"]
    code, out, err = await vhnode(fed, "liaison", "acknowledge", str(newest), str(older))
    assert (code, err) == (0, ""), err
    assert out.startswith("acknowledged 2 hit notice(s)")
    code, out, _ = await vhnode(fed, "liaison", "inbox", "--json")
    inbox = json.loads(out)
    assert [n["case_ref"] for n in inbox["hit_notices"]] == ["CASUS-2", "CASUS-1", "CASUS-0"]
    code, out, _ = await vhnode(fed, "liaison", "inbox", "--notices", "acknowledged", "--json")
    acked = json.loads(out)["hit_notices"]
    assert [n["case_ref"] for n in acked] == ["CASUS-4", "CASUS-3"]
    assert {n["acknowledged_by"] for n in acked} == {"liaison-politie-test"}
    # The table says how to acknowledge what it shows; --through takes every open one.
    code, table, _ = await vhnode(fed, "liaison", "inbox", "--limit", "1")
    assert "3 open hit notice(s), 1 shown" in table
    assert "more: --before" in table
    through = inbox["hit_notices"][0]["id"]
    assert f"vhnode liaison acknowledge --through {through}" in table
    code, out, _ = await vhnode(fed, "liaison", "acknowledge", "--through", str(through))
    assert out.startswith("acknowledged 3 hit notice(s)")
    _, empty = await fed.api(POLITIE, "GET", INBOX, role="liaison")
    assert (empty["hit_notices"], empty["hit_notices_total"]) == ([], 0)
    _, everything = await fed.api(POLITIE, "GET", f"{INBOX}?notices=all", role="liaison")
    assert everything["hit_notices_total"] == 5


async def test_inbox_and_acknowledge_refuse_what_they_cannot_mean(fed: Federation) -> None:
    for query in ("limit=0", "limit=501", "notices=old", "before=x", "since=gisteren",
                  "round=abc", "colour=red", "limit=1&limit=2"):  # fmt: skip
        status, problem = await fed.api(POLITIE, "GET", f"{INBOX}?{query}", role="liaison")
        assert (status, problem["type"].rsplit("/", 1)[1]) == (400, "invalid_input"), query
    status, _ = await fed.api(POLITIE, "GET", INBOX)  # a coordinator
    assert status == 403
    ack = "/api/v1/liaison/notices/acknowledge"
    for body in ({}, {"ids": []}, {"ids": [1, 1]}, {"ids": [1], "through": 3}, {"ids": ["1"]}):
        status, problem = await fed.api(POLITIE, "POST", ack, role="liaison", json=body)
        assert status == 400, body
    status, problem = await fed.api(POLITIE, "POST", ack, role="liaison", json={"ids": [999]})
    assert (status, problem["detail"]) == (404, "no hit notice 999")
    code, _, err = await vhnode(fed, "liaison", "acknowledge", "999")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert "not_found" in err
    code, _, err = await vhnode(fed, "liaison", "acknowledge")
    assert code == 1
    assert err.startswith("error: give notice ids or --through")
