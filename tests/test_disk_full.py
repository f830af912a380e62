"""A full disk explains itself: "disk full" from `vhnode registry import` (one line, non-zero
exit) and problem+json `disk_full` (507) from a PUT — never SQLite's "cannot rollback - no
transaction is active", never `internal`.

SQLite really returns SQLITE_FULL here: the node's `[database] max_size_mib` sets
`PRAGMA max_page_count` on its connections, the same failure a full disk gives.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.config import CONFIG_FILE
from node.flows.context import open_node
from node.store import db, log
from tests.detail_fixtures import ANTECEDENTS, CONTACT, detail_convenant_toml
from tests.federation import DEFAULT_PARTIES, Federation, free_port

POLITIE = "politie-test"
TEXT = "x" * 3900  # a detail text near its 4,000-character limit: a page or so each


def registration(i: int) -> dict[str, Any]:
    return {
        "ref": f"BVH-{i}",
        "themes": ["veelplegers"],
        "identifiers": [
            {"kind": "address", "postcode": "4811AB", "house_number": i + 1, "addition": None}
        ],
        "details": {CONTACT: f"{i} {TEXT}", ANTECEDENTS: f"{i} {TEXT}"},
    }


def limit_database(home: Path, mib: int) -> None:
    path = home / CONFIG_FILE  # as node.toml shows it, commented out under [database]
    text = path.read_text()
    assert "\n# max_size_mib = " in text
    path.write_text(text.replace("\n# max_size_mib = 4096", f"\nmax_size_mib = {mib}"))


def test_registry_import_on_a_full_disk_says_disk_full(tmp_path: Path) -> None:
    home = tmp_path / "politie"
    init = [
        sys.executable, "-m", "node", "init", "--home", str(home), "--node-id", "politie-zwb",
        "--organisation", "Politie", "--org-type", "politie", "--endpoint",
        "https://vhnode.politie.example.nl", "--port", str(free_port()),
    ]  # fmt: skip
    subprocess.run(init, check=True, capture_output=True)
    limit_database(home, 1)
    rows = tmp_path / "export.jsonl"
    rows.write_text("".join(json.dumps(registration(i)) + "\n" for i in range(600)))
    proc = subprocess.run(
        [sys.executable, "-m", "node", "registry", "import", "--home", str(home), str(rows)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: disk full: ")
    assert "rollback" not in lines[0]
    # What was committed before is whole, and the log still verifies.
    ctx = open_node(home)
    try:
        assert log.verify(ctx.conn, ctx.node_id, ctx.keys.signing_public).ok
    finally:
        ctx.close()


async def test_a_put_on_a_full_disk_is_problem_disk_full_and_the_node_goes_on(
    tmp_path: Path,
) -> None:
    fed = Federation(tmp_path)
    try:
        for node_id, org_type, _, _ in DEFAULT_PARTIES:
            fed.add_node(node_id, org_type)
        fed.exchange_cards()
        fed.sign_and_install(detail_convenant_toml())
        node = fed.nodes[POLITIE]
        limit_database(node.home, 1)
        node.ctx.close()
        node.ctx = open_node(node.home, clock=node.clock)  # with the limit, as at a restart
        await fed.start()
        statuses: list[int] = []
        problem: dict[str, Any] = {}
        for i in range(600):
            status, body = await fed.api(
                POLITIE, "PUT", f"/api/v1/registrations/BVH-{i}", "source", json=registration(i)
            )
            statuses.append(status)
            if status != 200:
                problem = body
                break
        assert statuses[-1] == 507, (statuses[-3:], problem)
        assert statuses[:-1] == [200] * (len(statuses) - 1)
        assert problem["type"] == "https://vhnode.nl/problems/disk_full"
        assert problem["title"] == "Disk full"
        assert problem["detail"].startswith("disk full: ")
        # Alive, but not "ok", and not ready: the database cannot take the next write.
        assert fed.session is not None
        async with fed.session.get(node.url + "/healthz") as resp:
            health = await resp.json()
        assert resp.status == 200
        assert health["status"] == "degraded"
        assert health["write_failure"] == "disk_full"
        async with fed.session.get(node.url + "/readyz") as resp:
            ready = await resp.json(content_type=None)
        assert resp.status == 503
        assert ready["type"] == "https://vhnode.nl/problems/not_ready"
        assert ready["failed"] == ["database_writable"]
        assert ready["checks"][0]["detail"].startswith("disk_full: ")
        # Nothing of the failed PUT was written; what needs no new page still works.
        failed = len(statuses) - 1
        status, _ = await fed.api(POLITIE, "GET", f"/api/v1/registrations/BVH-{failed}", "source")
        assert status in (404, 405)
        status, body = await fed.api(POLITIE, "GET", "/api/v1/node", "source")
        assert status == 200, body
        assert body["registrations"] == failed
        status, body = await fed.api(POLITIE, "GET", "/api/v1/audit/verify", "privacy_officer")
        assert status == 200, body
        assert body["ok"] is True
    finally:
        await fed.close()


def test_an_error_of_the_sqlite3_module_itself_is_no_full_disk(tmp_path: Path) -> None:
    """A closed connection's ProgrammingError has no SQLite error code: it is passed on as
    itself, not turned into an AttributeError while the node looks for SQLITE_FULL."""
    conn = sqlite3.connect(tmp_path / "x.sqlite")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError) as raised:
        conn.execute("SELECT 1")
    assert db.is_disk_full(raised.value) is False
