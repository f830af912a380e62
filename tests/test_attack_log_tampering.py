"""A node's log edited behind its back is caught by ``vhnode audit verify`` (exit 1)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from node.cli import main
from tests.federation import Federation, statuses

RUNNER = CliRunner()


def _verify(home: Path) -> tuple[int, dict[str, object]]:
    result = RUNNER.invoke(main, ["audit", "verify", "--home", str(home), "--json"])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


async def test_edited_outcome_in_a_real_log_is_detected(federation: Federation) -> None:
    result = await federation.query("vh-test", [{"kind": "bsn", "bsn": "123456782"}])
    assert statuses(result)["politie-test"] == "no_hit"
    home = federation.nodes["politie-test"].home
    code, report = _verify(home)
    assert code == 0
    assert report["ok"] is True

    # The provider's admin tries to hide that the question was answered.
    conn = sqlite3.connect(home / "node.db")
    seq, body = conn.execute(
        "SELECT seq, body FROM log_entries WHERE kind = 'bekendheid.evaluated'"
    ).fetchone()
    conn.execute(
        "UPDATE log_entries SET body = ? WHERE seq = ?",
        (body.replace('"evaluated"', '"refused"'), seq),
    )
    conn.commit()
    conn.close()

    code, report = _verify(home)
    assert code == 1
    assert report["ok"] is False
    problems = report["problems"]
    assert isinstance(problems, list)
    assert problems[0]["seq"] == seq
    assert problems[0]["kind"] == "edited"


async def test_truncated_log_is_detected(federation: Federation) -> None:
    await federation.query("vh-test", [{"kind": "bsn", "bsn": "123456782"}])
    home = federation.nodes["vh-test"].home
    conn = sqlite3.connect(home / "node.db")
    last = conn.execute("SELECT MAX(seq) FROM log_entries").fetchone()[0]
    conn.execute("DELETE FROM log_entries WHERE seq = ?", (last,))
    conn.commit()
    conn.close()
    code, report = _verify(home)
    assert code == 1
    assert any(p["kind"] == "truncated" for p in report["problems"])  # type: ignore[union-attr]


async def test_an_edit_is_caught_by_the_running_nodes_own_verify(federation: Federation) -> None:
    # GET /api/v1/audit/verify of a serving node verifies in a worker process: the same
    # verdict as the CLI's, from the same bytes.
    await federation.query("vh-test", [{"kind": "bsn", "bsn": "123456782"}])
    status, report = await federation.api(
        "politie-test", "GET", "/api/v1/audit/verify", role="privacy_officer"
    )
    assert status == 200
    assert report["ok"] is True
    conn = sqlite3.connect(federation.nodes["politie-test"].home / "node.db")
    seq, body = conn.execute(
        "SELECT seq, body FROM log_entries WHERE kind = 'bekendheid.evaluated'"
    ).fetchone()
    conn.execute(
        "UPDATE log_entries SET body = ? WHERE seq = ?",
        (body.replace('"evaluated"', '"refused"'), seq),
    )
    conn.commit()
    conn.close()
    status, report = await federation.api(
        "politie-test", "GET", "/api/v1/audit/verify", role="privacy_officer"
    )
    assert status == 200
    assert report["ok"] is False
    assert report["problems"][0]["seq"] == seq
    assert report["problems"][0]["kind"] == "edited"
