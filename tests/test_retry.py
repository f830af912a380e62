"""A partner that fails fast is asked again within the round's deadline (issue 11 item 7).

A connection refused or cut before any answer, or an HTTP 502/503, says only that the
partner did not answer: the requester tries again, with a request signed afresh, after a
short jittered pause, at most ``[peers] max_tries`` times and never past the round's
deadline. A signed answer (a refusal included), a timeout or another 5xx is never tried
again. Every partner's result says how many evaluate requests were sent (``tries``), and
so does its ``bekendheid.asked`` entry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import main as cli
from node.config import PeersConfig
from node.flows.peer_client import PartnerFailure, post_signed
from node.protocol import jws
from node.protocol.detail import DETAIL_PATH, DETAIL_POLL_PATH, HIT_NOTICE_PATH
from tests.detail_fixtures import CONTACT, detail_federation, hit_round
from tests.federation import (
    CONVENANT_ID,
    EVALUATE_PATH,
    OTHER_PURPOSE,
    PURPOSE,
    TAG_SET_PATH,
    Federation,
    bound_socket,
    interpose,
    log_entries,
    only_on,
    partner_result,
    replace_response,
)

ASKER = "vh-test"
JAN = {"kind": "bsn", "bsn": "123456782"}


def _register_jan(fed: Federation, node_id: str) -> None:
    fed.register(node_id, {"ref": "OM-1", "themes": ["veelplegers"], "identifiers": [JAN]})


def _peers(fed: Federation, node_id: str, **changes: Any) -> None:
    node = fed.nodes[node_id]
    peers = PeersConfig.model_validate(node.ctx.cfg.peers.model_dump() | changes)
    node.ctx.cfg = node.ctx.cfg.model_copy(update={"peers": peers})


def _asked(fed: Federation, trace_id: str, partner: str) -> dict[str, Any]:
    return next(
        e
        for e in log_entries(fed.nodes[ASKER], "bekendheid.asked")
        if e["trace_id"] == trace_id and e["counterparty"] == partner
    )


def _evaluations(fed: Federation, node_id: str, trace_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in log_entries(fed.nodes[node_id])
        if e["kind"].startswith("bekendheid.") and e["trace_id"] == trace_id
    ]


def _evaluate_payloads(requests: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    return [dict(jws.parse_bytes(body).payload) for path, body in requests if path == EVALUATE_PATH]


async def test_a_partner_answering_503_once_is_asked_again_and_its_hit_counts(
    federation: Federation,
) -> None:
    _register_jan(federation, "om-test")
    proxy = await interpose(federation, "om-test")
    proxy.failures[EVALUATE_PATH] = [503]
    result = await federation.query(ASKER, [JAN])
    om = partner_result(result, "om-test")
    assert (om["status"], om["tries"]) == ("hit", 2)
    assert partner_result(result, "politie-test")["tries"] == 1
    assert _asked(federation, result["trace_id"], "om-test")["data"]["tries"] == 2
    # The retry is a new request, signed afresh: another nonce (the partner would refuse
    # a repeated one as a replay) and blinded afresh (it never sees one element twice).
    first, second = _evaluate_payloads(proxy.requests)
    assert first["nonce"] != second["nonce"]
    assert not set(first["blinded_elements"]) & set(second["blinded_elements"])
    assert first["trace_id"] == second["trace_id"] == result["trace_id"]
    # Only the second reached the partner, which evaluated it once.
    assert [e["kind"] for e in _evaluations(federation, "om-test", result["trace_id"])] == [
        "bekendheid.evaluated"
    ]


async def test_a_connection_cut_before_any_answer_is_retried(federation: Federation) -> None:
    proxy = await interpose(federation, "ggz-test")
    proxy.failures[EVALUATE_PATH] = [None, 502]
    result = await federation.query(ASKER, [JAN])
    ggz = partner_result(result, "ggz-test")
    assert (ggz["status"], ggz["tries"]) == ("no_hit", 3)
    assert len(_evaluate_payloads(proxy.requests)) == 3


async def test_a_tag_set_request_answered_503_once_is_retried(federation: Federation) -> None:
    _register_jan(federation, "om-test")
    proxy = await interpose(federation, "om-test")
    proxy.failures[TAG_SET_PATH] = [503]
    result = await federation.query(ASKER, [JAN])
    om = partner_result(result, "om-test")
    # tries counts evaluate requests; the tag set was fetched on its second try.
    assert (om["status"], om["tries"]) == ("hit", 1)
    first, second = (
        jws.parse_bytes(body).payload for path, body in proxy.requests if path == TAG_SET_PATH
    )
    assert first["nonce"] != second["nonce"]


async def test_a_partner_down_for_every_try_is_unreachable_after_the_last(
    federation: Federation,
) -> None:
    await federation.stop("om-test")
    started = time.perf_counter()
    result = await federation.query(ASKER, [JAN])
    took = time.perf_counter() - started
    om = partner_result(result, "om-test")
    assert (om["status"], om["tries"]) == ("unreachable", 3)
    assert om["subjects"] == ["unreachable"]
    entry = _asked(federation, result["trace_id"], "om-test")
    assert (entry["outcome"], entry["data"]["tries"]) == ("unreachable", 3)
    # Two pauses of at most 0.2 s and 0.4 s: far within the round's 10 s deadline.
    assert took < 10.0
    assert partner_result(result, "politie-test")["status"] == "no_hit"


async def test_no_retry_is_made_that_would_end_past_the_rounds_deadline(
    federation: Federation,
) -> None:
    _peers(federation, ASKER, retry_backoff_seconds=5.0)  # first pause 2.5–5 s
    await federation.stop("om-test")
    body = {
        "convenant_id": CONVENANT_ID,
        "purpose": PURPOSE,
        "case_ref": "CASUS-RETRY",
        "subjects": [JAN],
        "deadline_seconds": 2.0,
    }
    started = time.perf_counter()
    status, result = await federation.api(ASKER, "POST", "/api/v1/bekendheid", json=body)
    took = time.perf_counter() - started
    assert status == 200, result
    om = partner_result(result, "om-test")
    # Unreachable after its one try, not a timeout at the deadline: the pause did not fit.
    assert (om["status"], om["tries"]) == ("unreachable", 1)
    assert took < 2.0


async def test_max_tries_one_never_retries(federation: Federation) -> None:
    _peers(federation, ASKER, max_tries=1)
    proxy = await interpose(federation, "om-test")
    proxy.failures[EVALUATE_PATH] = [503]
    result = await federation.query(ASKER, [JAN])
    om = partner_result(result, "om-test")
    assert (om["status"], om["tries"]) == ("unreachable", 1)


async def test_a_signed_refusal_is_an_answer_and_not_retried(federation: Federation) -> None:
    # vh-test may not ask under OTHER_PURPOSE: each partner refuses, signed.
    proxy = await interpose(federation, "politie-test")
    result = await federation.query(ASKER, [JAN], purpose=OTHER_PURPOSE)
    politie = partner_result(result, "politie-test")
    assert (politie["status"], politie["reason"], politie["tries"]) == (
        "refused",
        "no_query_right",
        1,
    )
    assert len(_evaluate_payloads(proxy.requests)) == 1


async def test_a_timeout_is_not_retried(federation: Federation) -> None:
    # A second wait for a slow partner would not fit the round's deadline.
    _peers(federation, ASKER, timeout_seconds=0.5)
    proxy = await interpose(federation, "ggz-test")
    proxy.delay = 1.5
    result = await federation.query(ASKER, [JAN])
    ggz = partner_result(result, "ggz-test")
    assert (ggz["status"], ggz["tries"]) == ("timeout", 1)
    assert len(_evaluate_payloads(proxy.requests)) == 1


async def test_a_500_after_the_partner_evaluated_is_not_retried(federation: Federation) -> None:
    # The partner handled the request (and logged it) and then failed: not a fast failure.
    proxy = await interpose(federation, "ggz-test")
    proxy.rewrite = only_on(EVALUATE_PATH, replace_response(500, "boom", "text/plain"))
    result = await federation.query(ASKER, [JAN])
    ggz = partner_result(result, "ggz-test")
    assert (ggz["status"], ggz["tries"]) == ("unreachable", 1)
    assert len(_evaluations(federation, "ggz-test", result["trace_id"])) == 1


# --- which failures are fast (the peer client, on real sockets) ---------------------------


async def test_a_refused_connection_is_a_fast_failure_nothing_delivered(
    federation: Federation,
) -> None:
    # A bound socket that does not listen: the kernel refuses the connection.
    with bound_socket() as sock:
        port = sock.getsockname()[1]
        doc = jws.sign("vhnode-test/v1", {"n": 1}, federation.nodes[ASKER].ctx.keys.signing)
        assert federation.session is not None
        with pytest.raises(PartnerFailure) as failed:
            await post_signed(
                federation.session, f"http://127.0.0.1:{port}/peer/v1/evaluate", doc, "t",
                max_bytes=1024,
            )  # fmt: skip
    assert (failed.value.status, failed.value.transient) == ("unreachable", "not_delivered")


# --- the detail exchange (§14): the same client path, retried where a copy is harmless ----


@pytest.fixture
async def detail_fed(tmp_path: Path) -> AsyncIterator[Federation]:
    fed = await detail_federation(tmp_path / "detail")
    try:
        yield fed
    finally:
        await fed.close()


def _detail_body(round_trace_id: str, *categories: str) -> dict[str, Any]:
    return {
        "round_trace_id": round_trace_id,
        "partner": "politie-test",
        "categories": list(categories),
        "purpose": PURPOSE,
    }


def _paths(proxy: Any, path: str) -> list[bytes]:
    return [body for p, body in proxy.requests if p == path]


async def test_a_detail_request_answered_503_is_not_sent_twice(detail_fed: Federation) -> None:
    # The partner takes a trace id once: a copy after a 503 it may have read could be
    # refused duplicate_request for a request it holds. Only a refused connection is retried.
    trace = (await hit_round(detail_fed))["trace_id"]
    proxy = await interpose(detail_fed, "politie-test")
    proxy.failures[DETAIL_PATH] = [503]
    status, result = await detail_fed.api(
        ASKER, "POST", "/api/v1/details", json=_detail_body(trace, CONTACT)
    )
    assert status == 200, result
    assert result["outcome"] == "unreachable"
    assert len(_paths(proxy, DETAIL_PATH)) == 1


async def test_a_detail_poll_answered_503_once_is_retried(detail_fed: Federation) -> None:
    trace = (await hit_round(detail_fed))["trace_id"]
    proxy = await interpose(detail_fed, "politie-test")
    status, asked = await detail_fed.api(
        ASKER, "POST", "/api/v1/details", json=_detail_body(trace, CONTACT)
    )
    assert (status, asked["outcome"]) == (200, "answered"), asked
    proxy.failures[DETAIL_POLL_PATH] = [503]
    status, polled = await detail_fed.api(
        ASKER, "POST", f"/api/v1/details/{asked['trace_id']}/poll"
    )
    assert (status, polled["outcome"]) == (200, "answered"), polled
    first, second = (jws.parse_bytes(b).payload for b in _paths(proxy, DETAIL_POLL_PATH))
    assert first["nonce"] != second["nonce"]


async def test_a_hit_notice_answered_503_once_is_retried(detail_fed: Federation) -> None:
    # politie-test asks for a notice of every hit under PURPOSE (its antecedents rule).
    proxy = await interpose(detail_fed, "politie-test")
    proxy.failures[HIT_NOTICE_PATH] = [503]
    trace = (await hit_round(detail_fed))["trace_id"]
    vh = detail_fed.nodes[ASKER]
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not log_entries(vh, "hit_notice.sent") and loop.time() < end:
        await asyncio.sleep(0.05)
    (sent,) = log_entries(vh, "hit_notice.sent")
    assert (sent["trace_id"], sent["outcome"]) == (trace, "accepted"), sent
    assert len(_paths(proxy, HIT_NOTICE_PATH)) == 2
    assert len(log_entries(detail_fed.nodes["politie-test"], "hit_notice.received")) == 1


async def test_vhnode_query_says_after_how_many_tries(federation: Federation) -> None:
    await federation.stop("om-test")
    vh = federation.nodes[ASKER]
    args = [
        "query", "--home", str(vh.home), "--convenant", CONVENANT_ID, "--purpose", PURPOSE,
        "--case", "CASUS-CLI", "--token", vh.tokens["coordinator"], "--bsn", JAN["bsn"],
    ]  # fmt: skip
    # The CLI is synchronous: off the loop, which serves the node it asks.
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output
    (om,) = [line for line in result.output.splitlines() if line.startswith("om-test")]
    assert "unreachable" in om
    assert "(after 3 tries)" in om
    (politie,) = [line for line in result.output.splitlines() if line.startswith("politie-test")]
    assert "tries" not in politie
