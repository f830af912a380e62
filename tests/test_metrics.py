"""GET /metrics (node/flows/metrics.py, docs/operations.md "Metrics").

The audit report's scripted run (tests/test_audit_report.py: hits, a family, a purpose
not granted, a stopped partner, a rate limit, an outsider) on real nodes; then each
node's metrics must count exactly what its own privacy officer's report counts over the
same log — per node: the nodes share one process, each has its own registry. No metric
may carry a subject identifier, a case reference or a user name. Only an admin's token
reads them.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from node.flows import admin
from node.flows.audit.kinds import STATUSES
from tests.federation import Federation, standard_federation
from tests.test_audit_report import _script

VH, POLITIE, OM, GGZ = "vh-test", "politie-test", "om-test", "ggz-test"

Samples = dict[str, list[tuple[dict[str, str], float]]]


async def scrape(fed: Federation, node_id: str, role: str = "admin") -> tuple[int, str, str]:
    assert fed.session is not None
    node = fed.nodes[node_id]
    headers = {"Authorization": f"Bearer {node.tokens[role]}"}
    async with fed.session.get(node.url + "/metrics", headers=headers) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> Samples:
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name].append((dict(s.labels), s.value))
    return out


def total(found: Samples, name: str, **labels: str) -> float:
    return sum(
        v for lab, v in found.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    )


async def test_metrics_count_what_the_audit_report_counts_per_node(tmp_path: Path) -> None:
    fed = await standard_federation(tmp_path)
    try:
        script = await _script(fed)
        texts: dict[str, str] = {}
        for node_id in (VH, POLITIE, OM, GGZ):  # the outsider's node never serves
            status, content_type, text = await scrape(fed, node_id)
            assert status == 200, text
            assert content_type.startswith("text/plain; version=")
            texts[node_id] = text
            found = samples(text)
            status, rep = await fed.api(node_id, "GET", "/api/v1/audit/report", "privacy_officer")
            assert status == 200, rep
            asked = rep["asked"]
            assert total(found, "vhnode_rounds_total") == asked["rounds"]
            for row in asked["partners"]:
                partner = row["partner"]
                assert total(found, "vhnode_answers_total", partner=partner) == row["requests"]
                assert (
                    total(found, "vhnode_answer_seconds_count", partner=partner) == row["requests"]
                )
                for s in STATUSES:
                    assert (
                        total(found, "vhnode_answer_subjects_total", partner=partner, status=s)
                        == row[s]
                    ), (node_id, partner, s)
            assert total(found, "vhnode_answers_total") == asked["requests"]
            for row in rep["refusals"]["received"]:
                got = total(
                    found,
                    "vhnode_refusals_received_total",
                    partner=row["party"],
                    reason=row["reason"],
                )
                assert got == row["count"], (node_id, row)
            assert total(found, "vhnode_refusals_received_total") == sum(
                r["count"] for r in rep["refusals"]["received"]
            )
            given: dict[str, int] = defaultdict(int)
            for row in rep["refusals"]["given"]:
                given[row["reason"]] += row["count"]
            assert {
                lab["reason"]: v for lab, v in found.get("vhnode_refusals_given_total", [])
            } == given, node_id
            assert total(
                found, "vhnode_rate_limit_rejections_total", limit="requests"
            ) == given.get("rate_limited", 0)
            for row in rep["tag_sets_published"]:
                assert (
                    total(found, "vhnode_tag_set_version", convenant=row["convenant"])
                    == row["latest_version"]
                )
            assert total(found, "vhnode_ready") == 1
            # The report reads without logging: it covers every entry of the log.
            assert total(found, "vhnode_log_entries") == rep["entries"]
            assert total(found, "vhnode_database_bytes") > 0
            assert total(found, "vhnode_seconds_since_last_verify") >= 3 * 86400  # never
        # The script's own figures, so the equalities above are not all zeros.
        vh = samples(texts[VH])
        assert total(vh, "vhnode_rounds_total") == 6
        assert total(vh, "vhnode_answers_total", partner=GGZ, status="unreachable") == 1
        assert total(vh, "vhnode_refusals_received_total", partner=OM, reason="rate_limited") == 1
        om = samples(texts[OM])
        assert total(om, "vhnode_refusals_given_total", reason="rate_limited") == 1
        assert total(om, "vhnode_rounds_total") == 0  # om asks nobody: its own registry
        assert total(samples(texts[POLITIE]), "vhnode_rounds_total") == 2
        # Nothing in the process-wide registry: every figure is some node's own.
        assert "vhnode_" not in prometheus_client.generate_latest().decode()

        # No identifier, case reference or user name in any metric of any node.
        secrets_ = ["123456782", "111222333", "Jansen", "Piet", "1985-05-05", "CASUS-2026"]
        secrets_ += [name for node in fed.nodes.values() for name in _user_names(node)]
        for node_id, text in texts.items():
            for secret in secrets_:
                assert secret not in text, (node_id, secret)
        assert script.results[VH][0]["case_ref"] == "CASUS-2026-001"
    finally:
        await fed.close()


def _user_names(node: Any) -> list[str]:
    return [f"{role}-{node.node_id}" for role in node.tokens]


async def test_metrics_need_a_monitors_or_an_admins_token(tmp_path: Path) -> None:
    fed = await standard_federation(tmp_path)
    try:
        assert fed.session is not None
        url = fed.nodes[VH].url + "/metrics"
        async with fed.session.get(url) as resp:
            body = await resp.json(content_type=None)
            assert resp.status == 401
            assert resp.content_type == "application/problem+json"
        assert body["type"] == "https://vhnode.nl/problems/unauthorized"
        async with fed.session.get(url, headers={"Authorization": "Bearer vhn_nonsense"}) as resp:
            assert resp.status == 401
        for role in ("coordinator", "privacy_officer", "source", "liaison"):
            status, content_type, text = await scrape(fed, VH, role)
            assert status == 403, role
            assert content_type.startswith("application/problem+json")
            assert "vhnode_" not in text
        status, _, text = await scrape(fed, VH)
        assert status == 200
        assert "vhnode_ready 1.0" in text
        # The scraper's own role: /metrics and nothing else, so the monitoring system
        # holds no token that can ask about a person or change the node.
        node = fed.nodes[VH]
        node.tokens["monitor"] = admin.create_user(node.ctx, "prometheus", "monitor")
        status, _, text = await scrape(fed, VH, "monitor")
        assert status == 200
        assert "vhnode_ready 1.0" in text
        monitor = {"Authorization": f"Bearer {node.tokens['monitor']}"}
        for method, path in (
            ("GET", "/api/v1/node"),
            ("POST", "/api/v1/bekendheid"),
            ("GET", "/api/v1/audit/report"),
            ("PUT", "/api/v1/registrations/R-1"),
        ):
            async with fed.session.request(
                method, node.url + path, headers=monitor, json={}
            ) as resp:
                assert resp.status == 403, (method, path)
                assert (await resp.json(content_type=None))["type"].endswith("/forbidden")
    finally:
        await fed.close()
