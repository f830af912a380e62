"""A round has one deadline, and its intent is logged first (issue 8 item 7).

A partner that stalls — before answering, or after answering while its tag set is
fetched — is ``timeout`` when the round's deadline passes, whatever it was doing; the
other partners' answers are not held. The requester records what it asked whom before
it sends anything, so a requester stopped mid-round leaves no evaluation at a partner
without a record of its own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from node.flows.asking import ask_bekendheid
from node.protocol import jws
from node.protocol.identifiers import parse_identifier
from tests.federation import (
    CONVENANT_ID,
    EVALUATE_PATH,
    PURPOSE,
    TAG_SET_PATH,
    Federation,
    interpose,
    log_entries,
)

ASKER = "vh-test"
STALLER = "om-test"
JAN = {"kind": "bsn", "bsn": "123456782"}


def _register_jan(fed: Federation) -> None:
    fed.register(STALLER, {"ref": "OM-1", "themes": ["veelplegers"], "identifiers": [JAN]})


async def _ask(fed: Federation, deadline: float) -> tuple[float, dict[str, Any]]:
    body = {
        "convenant_id": CONVENANT_ID,
        "purpose": PURPOSE,
        "case_ref": "CASUS-DEADLINE",
        "subjects": [JAN],
        "deadline_seconds": deadline,
    }
    started = time.perf_counter()
    status, result = await fed.api(ASKER, "POST", "/api/v1/bekendheid", json=body)
    assert status == 200, result
    return time.perf_counter() - started, {p["partner"]: p for p in result["partners"]}


async def test_a_partner_that_stalls_after_answering_ends_at_the_deadline(
    federation: Federation,
) -> None:
    _register_jan(federation)
    proxy = await interpose(federation, STALLER)
    proxy.delay_paths[TAG_SET_PATH] = 5.0  # answers the evaluation, then stalls
    took, partners = await _ask(federation, deadline=1.0)
    assert took < 4.0  # the round's deadline, not the 5 s stall, decided when it ended
    assert partners[STALLER]["status"] == "timeout"
    assert partners[STALLER]["reason"] == "tag_set_timeout"
    assert partners[STALLER]["subjects"] == ["timeout"]
    assert partners["politie-test"]["status"] == "no_hit"  # the others were not held
    assert partners["ggz-test"]["status"] == "no_hit"
    # The transfer went on without the round: once it has arrived, a round has it.
    proxy.delay_paths.clear()
    for _ in range(40):
        _, partners = await _ask(federation, deadline=2.0)
        if partners[STALLER]["status"] == "hit":
            break
    assert partners[STALLER]["status"] == "hit"
    assert sum(1 for path, _ in proxy.requests if path == TAG_SET_PATH) == 1  # not restarted
    timed_out = [
        e
        for e in log_entries(federation.nodes[ASKER], "bekendheid.asked")
        if e["counterparty"] == STALLER and e["outcome"] == "timeout"
    ]
    assert timed_out  # the first round, and any asked while the transfer was under way
    assert {e["reason"] for e in timed_out} == {"tag_set_timeout"}


async def test_a_partner_that_stalls_before_answering_ends_at_the_deadline(
    federation: Federation,
) -> None:
    proxy = await interpose(federation, STALLER)
    proxy.delay_paths[EVALUATE_PATH] = 5.0
    took, partners = await _ask(federation, deadline=0.8)
    assert took < 4.0
    assert partners[STALLER]["status"] == "timeout"
    assert partners[STALLER]["reason"] == "round_deadline"
    assert partners["politie-test"]["status"] == "no_hit"


async def test_a_round_cannot_ask_for_a_longer_deadline_than_the_node_allows(
    federation: Federation,
) -> None:
    body = {
        "convenant_id": CONVENANT_ID,
        "purpose": PURPOSE,
        "case_ref": "C",
        "subjects": [JAN],
        "deadline_seconds": 301,
    }
    status, problem = await federation.api(ASKER, "POST", "/api/v1/bekendheid", json=body)
    assert status == 400
    assert problem["type"].endswith("/invalid_input")


async def test_the_round_is_logged_before_anything_is_sent(federation: Federation) -> None:
    _register_jan(federation)
    proxy = await interpose(federation, STALLER)
    proxy.delay_paths[EVALUATE_PATH] = 1.0
    asker = federation.nodes[ASKER]
    assert federation.session is not None
    round_task = asyncio.create_task(
        ask_bekendheid(
            asker.ctx,
            federation.session,
            CONVENANT_ID,
            PURPOSE,
            "CASUS-KILLED",
            "coordinator-vh-test",
            [parse_identifier(JAN)],
        )
    )
    while not any(path == EVALUATE_PATH for path, _ in proxy.requests):
        await asyncio.sleep(0.01)
    # The evaluation is on its way to the partner: the requester stops here (as if
    # killed) and never records an outcome.
    round_task.cancel()
    [(_, body)] = [(p, b) for p, b in proxy.requests if p == EVALUATE_PATH]
    trace_id = jws.parse_bytes(body, "vhnode-evaluate-request/v1").payload["trace_id"]
    [started] = [e for e in log_entries(asker, "bekendheid.round") if e["trace_id"] == trace_id]
    assert started["data"]["partners"] == ["vh-test", "politie-test", "om-test", "ggz-test"]
    assert started["data"]["case_ref"] == "CASUS-KILLED"
    assert len(started["subjects"]) == 1  # a pseudonym, never the BSN
    assert "123456782" not in str(started)
    assert not [e for e in log_entries(asker, "bekendheid.asked") if e["trace_id"] == trace_id]
    # The privacy officer's report shows the round that never finished.
    status, report = await federation.api(
        ASKER, "GET", "/api/v1/audit/report", role="privacy_officer"
    )
    assert status == 200
    assert report["asked"]["rounds_unfinished"] == 1
    # The partner evaluates it all the same: and the requester's record names that trace.
    await asyncio.sleep(1.5)
    evaluated = log_entries(federation.nodes[STALLER], "bekendheid.evaluated")
    assert trace_id in {e["trace_id"] for e in evaluated}
