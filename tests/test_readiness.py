"""/healthz is liveness, /readyz readiness (node/flows/readiness.py, docs/operations.md).

Real nodes on 127.0.0.1, real SQLite: a node is ready only when its database takes a
write, its keys are its card's, its log tip agrees with its newest signed head and a
convenant is in force; otherwise 503 problem+json names the failed checks.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.federation import DEFAULT_PARTIES, Federation, SimNode, standard_federation

VH = "vh-test"
NOT_READY = "https://vhnode.nl/problems/not_ready"


async def get(fed: Federation, node_id: str, path: str) -> tuple[int, str, Any]:
    assert fed.session is not None
    async with fed.session.get(fed.nodes[node_id].url + path) as resp:
        return resp.status, resp.content_type, await resp.json(content_type=None)


async def failed_checks(fed: Federation, node_id: str) -> list[str]:
    status, content_type, body = await get(fed, node_id, "/readyz")
    if status == 200:
        assert content_type == "application/json"
        assert body["status"] == "ready"
        assert all(c["ok"] for c in body["checks"])
        return []
    assert status == 503, body
    assert content_type == "application/problem+json"
    assert body["type"] == NOT_READY
    assert body["status"] == 503
    assert body["failed"] == [c["name"] for c in body["checks"] if not c["ok"]]
    assert body["detail"] == "failed: " + ", ".join(body["failed"])
    return list(body["failed"])


async def test_a_healthy_node_is_alive_and_ready(tmp_path: Path) -> None:
    fed = await standard_federation(tmp_path)
    try:
        for node_id in fed.nodes:
            status, _, body = await get(fed, node_id, "/healthz")
            assert (status, body["status"]) == (200, "ok")
            assert await failed_checks(fed, node_id) == []
        _, _, body = await get(fed, VH, "/readyz")
        assert [c["name"] for c in body["checks"]] == [
            "database_writable",
            "keys_loaded",
            "log_tip",
            "convenant_in_force",
        ]
    finally:
        await fed.close()


async def test_a_read_only_database_is_not_ready_and_health_says_degraded(
    tmp_path: Path,
) -> None:
    fed = await standard_federation(tmp_path)
    try:
        node = fed.nodes[VH]
        # The writer's own connection refuses writes from here on, as a file remounted
        # read-only would: every PUT and every round would fail.
        await node.ctx.write(lambda: node.ctx.conn.execute("PRAGMA query_only = ON"))
        assert await failed_checks(fed, VH) == ["database_writable"]
        _, _, body = await get(fed, VH, "/readyz")
        writable = body["checks"][0]
        assert writable["detail"] == "a probe write failed: read_only"
        status, _, health = await get(fed, VH, "/healthz")
        assert status == 200  # alive: a restart would not make the file writable
        assert health["status"] == "degraded"
        assert health["write_failure"] == "read_only"
        # A restart opens a writable connection again: ready, and health ok again.
        await fed.stop(VH)
        await fed.start(VH)
        assert await failed_checks(fed, VH) == []
        status, _, health = await get(fed, VH, "/healthz")
        assert (status, health["status"]) == (200, "ok")
        assert "write_failure" not in health
    finally:
        await fed.close()


def tamper(node: SimNode, *statements: str) -> None:
    conn = sqlite3.connect(node.home / "node.db")
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def test_a_log_whose_newest_head_was_removed_is_not_ready(tmp_path: Path) -> None:
    fed = await standard_federation(tmp_path)
    try:
        await fed.query(VH, [{"kind": "bsn", "bsn": "111222333"}])
        assert await failed_checks(fed, VH) == []
        tamper(
            fed.nodes[VH],
            "DELETE FROM tree_heads WHERE tree_size = (SELECT max(tree_size) FROM tree_heads)",
        )
        assert await failed_checks(fed, VH) == ["log_tip"]
        _, _, body = await get(fed, VH, "/readyz")
        assert "newest signed tree head covers" in body["checks"][2]["detail"]
    finally:
        await fed.close()


async def test_a_log_whose_newest_entry_was_edited_is_not_ready(tmp_path: Path) -> None:
    fed = await standard_federation(tmp_path)
    try:
        await fed.query(VH, [{"kind": "bsn", "bsn": "111222333"}])
        tamper(
            fed.nodes[VH],
            "UPDATE log_entries SET body = replace(body, 'CASUS-2026-001', 'CASUS-2026-999')"
            " WHERE seq = (SELECT max(seq) FROM log_entries)",
        )
        assert await failed_checks(fed, VH) == ["log_tip"]
        _, _, body = await get(fed, VH, "/readyz")
        assert "does not hash to its stored leaf hash" in body["checks"][2]["detail"]
    finally:
        await fed.close()


async def test_a_node_without_a_convenant_in_force_is_not_ready(tmp_path: Path) -> None:
    fed = Federation(tmp_path)
    try:
        for node_id, org_type, _, _ in DEFAULT_PARTIES[:2]:
            fed.add_node(node_id, org_type)
        fed.exchange_cards()
        await fed.start()
        assert await failed_checks(fed, VH) == ["convenant_in_force"]
        status, _, health = await get(fed, VH, "/healthz")
        assert (status, health["status"]) == (200, "ok")  # alive and writable, not ready
    finally:
        await fed.close()
