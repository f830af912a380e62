"""Enumeration: a requester trying to learn a partner's whole list.

Without the partner's OPRF key a requester can only learn a subject's tag by asking the
partner online. So the defences are: evaluations are rate-limited per requester and
convenant (counted in subjects, so batching does not help), each one is logged by the
partner, and tag sets go only to parties that may query.
"""

from __future__ import annotations

from typing import Any

import pytest

from node.policy.rate_limit import RateLimiter
from node.protocol import jws, oprf
from node.protocol.bekendheid import TAG_SET_RESPONSE, TAG_SET_RESPONSE_TYP, TagSetRefused
from node.protocol.tag_set import tag_from_output, unpack
from tests.federation import (
    CONVENANT_ID,
    TAG_SET_PATH,
    Federation,
    log_entries,
    open_signed,
    outsider,
    partner_result,
    post_peer,
    statuses,
    tag_set_request,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
GUESSES = [{"kind": "bsn", "bsn": b} for b in ("111222333", "200000019", "123456782", "100000009")]
TARGET = "om-test"


def _limit(fed: Federation, burst: int = 3) -> None:
    # The config is frozen; the limiter is the node's live state.
    fed.nodes[TARGET].ctx.limiter = RateLimiter(per_minute=0.01, burst=burst)


async def test_repeated_rounds_are_refused_once_the_rate_limit_is_spent(
    federation: Federation,
) -> None:
    federation.register(TARGET, {"ref": "C-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]})
    _limit(federation)
    seen: list[str] = []
    for _ in range(6):
        result = await federation.query("vh-test", [JAN_BSN])
        om = partner_result(result, TARGET)
        seen.append(om["status"])
        assert statuses(result)["politie-test"] == "no_hit"  # other partners keep answering
        if om["status"] == "refused":
            assert om["reason"] == "rate_limited"
            break
    assert seen == ["hit", "hit", "hit", "refused"]
    # The limit is per requester: politie-test still gets its answer from om-test.
    assert statuses(await federation.query("politie-test", [JAN_BSN]))[TARGET] == "hit"


async def test_batching_subjects_does_not_widen_the_window(federation: Federation) -> None:
    _limit(federation)
    om = partner_result(await federation.query("vh-test", GUESSES), TARGET)
    assert (om["status"], om["reason"]) == ("refused", "rate_limited")
    assert om["subjects"] == ["refused"] * len(GUESSES)


async def test_refused_guesses_do_not_spend_the_allowance(federation: Federation) -> None:
    """The limit counts evaluations: a refused batch leaves room for a smaller one."""
    _limit(federation)
    assert statuses(await federation.query("vh-test", GUESSES))[TARGET] == "refused"
    assert statuses(await federation.query("vh-test", GUESSES[:3]))[TARGET] == "no_hit"


async def test_every_evaluation_and_refusal_is_logged_by_the_partner(
    federation: Federation,
) -> None:
    _limit(federation)
    traces = [(await federation.query("vh-test", [JAN_BSN]))["trace_id"] for _ in range(4)]
    entries = [
        e
        for e in log_entries(federation.nodes[TARGET])
        if e["kind"] in ("bekendheid.evaluated", "bekendheid.refused")
    ]
    assert [e["trace_id"] for e in entries] == traces
    assert [e["outcome"] for e in entries] == ["evaluated"] * 3 + ["refused"]
    assert entries[-1]["reason"] == "rate_limited"
    for e in entries:
        assert e["counterparty"] == "vh-test"
        assert e["data"]["elements"] == 1
        assert e["actor"] == "coordinator-vh-test"


def _refused_tag_set(fed: Federation, reply_body: bytes) -> TagSetRefused:
    resp = TAG_SET_RESPONSE.validate_python(
        open_signed(fed, "politie-test", reply_body, TAG_SET_RESPONSE_TYP)
    )
    assert isinstance(resp, TagSetRefused)
    assert resp.outcome == "refused"
    assert resp.head is None
    assert resp.added is None
    return resp


@pytest.mark.parametrize(
    ("requester", "reason"),
    [("om-test", "no_query_right"), ("gemeente-test", "not_a_party")],
    ids=["party-without-query-right", "known-peer-outside-the-convenant"],
)
async def test_requester_without_query_right_cannot_fetch_a_tag_set(
    federation: Federation, requester: str, reason: str
) -> None:
    federation.register(
        "politie-test", {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]}
    )
    if requester not in federation.nodes:
        outsider(federation, requester, known_by=["politie-test"])
    reply = await post_peer(
        federation,
        "politie-test",
        TAG_SET_PATH,
        tag_set_request(federation, requester, "politie-test"),
    )
    assert reply.status == 403
    assert _refused_tag_set(federation, reply.body).reason == reason
    last = log_entries(federation.nodes["politie-test"], "tag_set.refused")[-1]
    assert (last["counterparty"], last["reason"]) == (requester, reason)


async def _tag_set(fed: Federation, partner: str) -> list[bytes]:
    reply = await post_peer(fed, partner, TAG_SET_PATH, tag_set_request(fed, "vh-test", partner))
    payload: dict[str, Any] = open_signed(fed, partner, reply.body, TAG_SET_RESPONSE_TYP)
    assert payload["outcome"] == "tag_set"
    return unpack(jws.b64u_decode(payload["added"]))


async def test_tags_can_only_be_computed_with_the_partners_key(federation: Federation) -> None:
    """Two partners know the same person: their tags differ, and each is the OPRF output
    under that partner's own convenant key, so a set is useless without asking online."""
    for node_id in ("politie-test", "om-test"):
        federation.register(
            node_id, {"ref": "R-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]}
        )
    politie, om = await _tag_set(federation, "politie-test"), await _tag_set(federation, "om-test")
    assert len(politie) == len(om) == 1
    assert politie != om
    for node_id, tags in (("politie-test", politie), ("om-test", om)):
        sk, _ = federation.nodes[node_id].ctx.oprf_key(CONVENANT_ID)
        assert tags == [tag_from_output(oprf.evaluate(sk, [b"bsn:123456782"])[0])]
