"""A clock you can hold (issue 8, item 8): every flow reads time from the node's one
clock, so expiry, validity, freshness and rate limits move exactly when a test moves the
clock, and nothing here sleeps on wall time."""

from __future__ import annotations

import ast
import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from node.clock import SYSTEM_CLOCK, ManualClock
from node.errors import CardNotYetValid
from node.flows import admin
from node.policy.rate_limit import RateLimiter
from node.protocol.bekendheid import EVALUATE_RESPONSE_TYP
from tests.federation import (
    DEFAULT_PARTIES,
    EVALUATE_PATH,
    Federation,
    convenant_toml,
    evaluate_request,
    open_signed,
    partner_result,
    post_peer,
    toml_time,
)

JAN = {"kind": "bsn", "bsn": "123456782"}
T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


# --- the clock itself ---------------------------------------------------------------------


def test_system_clock_tells_aware_utc_time() -> None:
    assert SYSTEM_CLOCK.now().utcoffset() == timedelta(0)
    assert SYSTEM_CLOCK.monotonic() <= SYSTEM_CLOCK.monotonic()


def test_manual_clock_stands_still_until_told() -> None:
    clock = ManualClock(T0)
    assert (clock.now(), clock.monotonic()) == (T0, 0.0)
    clock.advance(timedelta(minutes=2))
    clock.advance(0.5)
    assert clock.now() == T0 + timedelta(minutes=2, seconds=0.5)
    assert clock.monotonic() == 120.5
    # Setting the wall clock (back, even) is a step, not time passing: intervals measured
    # on the monotonic clock do not see it.
    clock.set(T0 - timedelta(days=1))
    assert (clock.now(), clock.monotonic()) == (T0 - timedelta(days=1), 120.5)


def test_manual_clock_refuses_naive_times_and_going_backwards() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2031, 1, 1))  # a naive time: no zone, so no instant
    clock = ManualClock(T0)
    with pytest.raises(ValueError, match="forwards"):
        clock.advance(-1)
    assert clock.now() == T0


async def test_a_sleeper_wakes_when_its_time_has_passed_on_the_clock() -> None:
    clock = ManualClock(T0)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(10)
        woke.append(clock.monotonic())

    task = asyncio.create_task(sleeper())
    await clock.until_sleeping()
    assert clock.sleepers == 1
    clock.advance(9.5)
    for _ in range(5):  # give the task every chance to run if it were (wrongly) woken
        await asyncio.sleep(0)
    assert woke == []
    assert not task.done()
    clock.advance(0.5)
    await task
    assert woke == [10.0]
    assert clock.sleepers == 0


async def test_a_cancelled_sleeper_leaves_the_clock() -> None:
    clock = ManualClock(T0)
    task = asyncio.create_task(clock.sleep(60))
    await clock.until_sleeping()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0


# --- the node's flows read that clock -----------------------------------------------------


async def test_convenant_ends_to_the_second_on_the_partners_clock(
    federation: Federation,
) -> None:
    short = "vh-test-kort"
    ends = (federation.started_at + timedelta(hours=1)).replace(microsecond=0)
    federation.sign_and_install(
        convenant_toml(DEFAULT_PARTIES, convenant_id=short, valid_until=toml_time(ends))
    )
    vh, politie = federation.nodes["vh-test"], federation.nodes["politie-test"]
    vh.clock.set(ends - timedelta(seconds=1))
    politie.clock.set(ends - timedelta(seconds=1))
    result = await federation.query("vh-test", [JAN], convenant_id=short)
    assert partner_result(result, "politie-test")["status"] == "no_hit"

    politie.clock.set(ends)  # valid_until itself is past the end; the requester is not there
    result = await federation.query("vh-test", [JAN], convenant_id=short)
    p = partner_result(result, "politie-test")
    assert (p["status"], p["reason"]) == ("refused", "convenant_not_in_force")


async def test_peer_card_expires_to_the_second(federation: Federation) -> None:
    vh, politie = federation.nodes["vh-test"], federation.nodes["politie-test"]
    card_ends = admin.own_card(vh.ctx)[0].valid_until
    for node in (vh, politie):
        node.clock.set(card_ends - timedelta(seconds=1))
    result = await federation.query("vh-test", [JAN], partners=["politie-test"])
    assert partner_result(result, "politie-test")["status"] == "no_hit"

    # On politie's clock the requester's card has ended: it no longer trusts the signature.
    politie.clock.set(card_ends)
    result = await federation.query("vh-test", [JAN], partners=["politie-test"])
    p = partner_result(result, "politie-test")
    assert (p["status"], p["reason"]) == ("refused", "revoked_requester")


async def test_a_partner_a_little_slow_takes_a_freshly_issued_card(
    federation: Federation,
) -> None:
    # The cards were issued at started_at; politie's clock is 90 s slow. Within the card
    # skew (§4.1, 5 minutes) and the request skew (120 s), the round works.
    politie = federation.nodes["politie-test"]
    politie.clock.set(federation.started_at - timedelta(seconds=90))
    result = await federation.query("vh-test", [JAN], partners=["politie-test"])
    assert partner_result(result, "politie-test")["status"] == "no_hit"


async def test_a_partner_whose_clock_is_slow_names_the_clock_not_a_revocation(
    federation: Federation,
) -> None:
    politie = federation.nodes["politie-test"]
    politie.clock.set(federation.started_at - timedelta(minutes=10))
    result = await federation.query("vh-test", [JAN], partners=["politie-test"])
    p = partner_result(result, "politie-test")
    assert (p["status"], p["reason"]) == ("refused", "card_not_yet_valid")
    assert re.search(r"valid_from \S+, (599|600) s ahead of this node's clock", p["detail"])
    assert "check the clocks" in p["detail"]
    # Adding a fresh card at a node whose clock is that slow says the same.
    late = federation.add_node("gemeente-test", "gemeente")
    with pytest.raises(CardNotYetValid, match="ahead of this node's clock"):
        admin.add_peer(politie.ctx, late.card_json())
    politie.clock.set(federation.started_at - timedelta(minutes=4))
    assert admin.add_peer(politie.ctx, late.card_json())[1] == "added"


async def test_freshness_window_holds_to_the_second(federation: Federation) -> None:
    vh = federation.nodes["vh-test"]
    skew = federation.nodes["politie-test"].ctx.cfg.limits.clock_skew_seconds
    vh.clock.set(federation.started_at + timedelta(seconds=skew))
    result = await federation.query("vh-test", [JAN], partners=["politie-test"])
    assert partner_result(result, "politie-test")["status"] == "no_hit"

    vh.clock.set(federation.started_at + timedelta(seconds=skew + 1))
    result = await federation.query("vh-test", [JAN], partners=["politie-test"])
    p = partner_result(result, "politie-test")
    assert (p["status"], p["reason"]) == ("refused", "stale_request")


async def test_rate_limit_bucket_refills_as_the_clock_advances(federation: Federation) -> None:
    om = federation.nodes["om-test"]
    om.ctx.limiter = RateLimiter(per_minute=60, burst=2)  # one element a second

    async def evaluate() -> int:
        doc = evaluate_request(federation, "vh-test", "om-test")
        reply = await post_peer(federation, "om-test", EVALUATE_PATH, doc)
        if reply.status == 200:
            outcome = open_signed(federation, "om-test", reply.body, EVALUATE_RESPONSE_TYP)
            assert outcome["outcome"] == "evaluated"
        return reply.status

    assert [await evaluate() for _ in range(3)] == [200, 200, 429]
    om.clock.advance(0.5)  # half an element: still refused
    assert await evaluate() == 429
    om.clock.advance(0.5)
    assert [await evaluate() for _ in range(2)] == [200, 429]
    om.clock.advance(60)  # a long pause refills to the burst, no further
    assert [await evaluate() for _ in range(3)] == [200, 200, 429]


# --- nothing reads the machine's clock behind the node's back -----------------------------

NODE = Path(__file__).resolve().parent.parent / "node"
# Calls that read the machine's time of day or its monotonic clock.
MACHINE_TIME = {
    "datetime.now",
    "datetime.utcnow",
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "date.today",
    "datetime.date.today",
    "time.time",
    "time.monotonic",
}
# Where the machine's time is the point, and why.
ALLOWED = {
    "clock.py": "the system clock itself",
    "demo/": "the demo waits on real child processes and names its run by the date",
    # Every node path passes its clock's date (parse_identifier(today=...)); only an
    # identifier built in code or checked by the CLI before it sends falls back to the
    # machine's date. A day's granularity, no expiry or window.
    "protocol/identifiers.py": "a birth date's plausibility without a node",
}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def test_node_reads_time_only_through_its_clock() -> None:
    found = []
    for path in sorted(NODE.rglob("*.py")):
        rel = path.relative_to(NODE).as_posix()
        if any(rel.startswith(prefix) for prefix in ALLOWED):
            continue
        for call in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(call, ast.Call) and _dotted(call.func) in MACHINE_TIME:
                found.append(f"node/{rel}:{call.lineno} {_dotted(call.func)}()")
    assert found == [], "read time from ctx.clock (node/clock.py) instead:\n" + "\n".join(found)
