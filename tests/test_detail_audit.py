"""The privacy officer's report on the detail exchange (docs/audit.md): refusals the
partner gave count as refusals given, and a forged hit proof or a foreign round is
flagged as a probe."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.flows.audit import report
from node.policy.rate_limit import RateLimiter
from node.protocol import jws
from tests.detail_fixtures import CONTACT, JAN_BSN, detail_federation, hit_round
from tests.federation import Federation, post_peer
from tests.test_detail_provider import DETAIL_PATH, detail_request, proof_for


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    f = await detail_federation(tmp_path)
    yield f
    await f.close()


def _report(fed: Federation, node_id: str) -> report.Report:
    node = fed.nodes[node_id]
    return report.report_for(node.ctx.conn, node_id, node.ctx.clock.now())


async def test_forged_proofs_and_foreign_rounds_are_flagged_as_probes(fed: Federation) -> None:
    round_ = await hit_round(fed)
    real = jws.b64u_decode(proof_for(fed, "politie-test", JAN_BSN))
    forged = jws.b64u_encode(real[:16] + secrets.token_bytes(48))
    for doc in (
        detail_request(
            fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,), proof=forged
        ),
        detail_request(fed, "vh-test", "politie-test", secrets.token_hex(16), (CONTACT,)),
        detail_request(fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,)),
    ):
        await post_peer(fed, "politie-test", DETAIL_PATH, doc)
    rep = _report(fed, "politie-test")
    assert rep.refusals_given[("vh-test", "bad_hit_proof")] == 1
    assert rep.refusals_given[("vh-test", "unknown_round")] == 1
    probes = sorted((a.party, a.reason, a.count) for a in rep.anomalies if a.rule == "detail_probe")
    assert probes == [("vh-test", "bad_hit_proof", 1), ("vh-test", "unknown_round", 1)]
    assert rep.details["requests_answered"] == 3
    assert rep.details["disclosures"] == 1
    # The requester's own report has no probe: it gave no refusal.
    assert not [a for a in _report(fed, "vh-test").anomalies if a.rule == "detail_probe"]


async def test_a_rate_limited_detail_request_is_an_anomaly(fed: Federation) -> None:
    round_ = await hit_round(fed)
    fed.nodes["politie-test"].ctx.detail_limiter = RateLimiter(per_minute=1, burst=1)
    for _ in range(2):
        doc = detail_request(fed, "vh-test", "politie-test", round_["trace_id"], (CONTACT,))
        await post_peer(fed, "politie-test", DETAIL_PATH, doc)
    rep = _report(fed, "politie-test")
    assert rep.refusals_given[("vh-test", "rate_limited")] == 1
    limited = [a for a in rep.anomalies if a.rule == "rate_limited"]
    assert [(a.party, a.side, a.count) for a in limited] == [("vh-test", "given", 1)]
