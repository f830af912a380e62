"""`vhnode demo`: seven node processes on loopback, answers checked against ground truth.

This is the product's main job end to end (separate processes, real HTTP, the real import
path), so it runs in the normal suite, at a small size (~5 s).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node import demo as demo_module
from node.cli import main
from node.demo import (
    DOWN_PARTNER,
    PARTNERS,
    DemoQuery,
    build_scenario,
    result_agrees,
    run_demo,
)


def _alive(pid: int) -> bool:
    """Is a process with this pid still a `node serve` (psutil if installed, else /proc)."""
    try:
        import psutil  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process reusing the pid
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists():  # not Linux: the pid exists, assume it is ours
            return True
        try:
            return b"serve" in cmdline.read_bytes()
        except OSError:
            return False
    try:
        return "serve" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def _statuses(query: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["partner"]: p for p in query["result"]["partners"]}


def test_demo_json_agrees_with_ground_truth_and_leaves_no_process() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["demo", "--json", "--subjects-per-partner", "300", "--seed", "7"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)

    assert report["ok"] is True
    assert report["error"] is None
    assert {n["node_id"] for n in report["nodes"]} == {p.node_id for p in PARTNERS}
    assert len(report["nodes"]) >= 6
    for node in report["nodes"]:
        assert node["started"] is True
        assert node["endpoint"].startswith("http://127.0.0.1:")
        assert node["registrations"] == 300
        assert node["import"]["invalid"] == 0
        assert isinstance(node["pid"], int)
        assert not _alive(node["pid"]), f"{node['node_id']} (pid {node['pid']}) survived"
        assert node["returncode"] == 0  # stopped by SIGTERM, shut down cleanly

    queries = {q["name"]: q for q in report["queries"]}
    assert {
        "known-to-several",
        "name-variant",
        "known-to-none",
        "family",
        "address",
        "refused-purpose",
        "partner-down",
    } <= set(queries)
    for q in report["queries"]:
        assert q["agrees"] is True, q["name"]
        assert q["subjects"] == q["result"]["subject_count"]
        for partner, expected in q["expected"].items():
            assert _statuses(q)[partner]["subjects"] == expected, (q["name"], partner)

    several = queries["known-to-several"]
    assert sum(s == ["hit"] for s in several["expected"].values()) >= 2
    assert all(s == ["no_hit"] for s in queries["known-to-none"]["expected"].values())
    assert queries["family"]["subjects"] >= 3
    assert any("hit" in s for s in queries["address"]["expected"].values())
    # the name typed differently finds the person wherever name+dob was registered
    assert any(s == ["hit"] for s in queries["name-variant"]["expected"].values())

    refused = _statuses(queries["refused-purpose"])
    assert len(refused) == len(PARTNERS)
    for answer in refused.values():
        assert answer["status"] == "refused"
        assert answer["reason"] == "no_query_right"

    down = _statuses(queries["partner-down"])
    assert down[DOWN_PARTNER]["status"] == "unreachable"
    assert down[DOWN_PARTNER]["subjects"] == ["unreachable"]
    assert any(a["status"] == "hit" for a in down.values())

    assert set(report["logs"]) == {p.node_id for p in PARTNERS}
    for node_id, verified in report["logs"].items():
        assert verified["ok"] is True, node_id
        assert verified["entries"] > 0


def test_a_node_that_fails_to_start_is_reported_and_the_rest_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = demo_module.serve_command

    def one_broken(home: Path) -> list[str]:
        if home.name == "om-zwb":
            return [
                sys.executable,
                "-c",
                "import sys; sys.stderr.write('om-zwb: address already in use\\n'); sys.exit(3)",
            ]
        return real(home)

    monkeypatch.setattr(demo_module, "serve_command", one_broken)
    res = CliRunner().invoke(main, ["demo", "--json", "--subjects-per-partner", "50"])
    assert res.exit_code == 1
    report = json.loads(res.stdout)
    assert report["ok"] is False
    assert "om-zwb" in report["error"]
    assert "address already in use" in report["error"]  # its stderr is shown
    assert "address already in use" in res.stderr
    assert report["queries"] == []
    for node in report["nodes"]:
        assert isinstance(node["pid"], int)
        assert not _alive(node["pid"]), node["node_id"]
    om = next(n for n in report["nodes"] if n["node_id"] == "om-zwb")
    assert om["started"] is False
    assert om["returncode"] == 3
    assert all(v["ok"] for v in report["logs"].values())  # nothing half-written


def test_a_node_that_never_answers_is_stopped_after_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = demo_module.serve_command

    def one_silent(home: Path) -> list[str]:
        if home.name == "gemeente-breda":
            return [sys.executable, "-c", "import time; time.sleep(120)"]
        return real(home)

    monkeypatch.setattr(demo_module, "serve_command", one_silent)
    report = run_demo(50, seed=1, health_deadline_s=3.0)
    assert report["ok"] is False
    assert "gemeente-breda" in report["error"]
    silent = next(n for n in report["nodes"] if n["node_id"] == "gemeente-breda")
    assert silent["started"] is False
    assert silent["stopped_by"] == "sigterm"
    for node in report["nodes"]:
        assert not _alive(node["pid"]), node["node_id"]


@pytest.mark.parametrize("seed", [1, 2, 3, 2026])
def test_scenario_expectations_come_from_the_generator(seed: int) -> None:
    sc = build_scenario(60, seed)
    names = [q.name for q in sc.queries]
    assert names[:5] == ["known-to-several", "name-variant", "known-to-none", "family", "address"]
    assert names[-2:] == ["refused-purpose", "partner-down"]
    ids = [p.node_id for p in PARTNERS]
    q = {x.name: x for x in sc.queries}
    several = q["known-to-several"].expected(sc.truth, ids)
    assert sum(v == ["hit"] for v in several.values()) >= 2
    assert all(v == ["no_hit"] for v in q["known-to-none"].expected(sc.truth, ids).values())
    down = q["partner-down"].expected(sc.truth, ids)
    assert down[DOWN_PARTNER] == ["unreachable"]
    assert all(v == ["refused"] for v in q["refused-purpose"].expected(sc.truth, ids).values())
    # out-of-scope registrations exist for every partner that leaves a theme out
    for p in PARTNERS:
        if p.excluded_theme is not None:
            assert sc.truth.in_scope_count[p.node_id] < 60, p.node_id


def test_agreement_rejects_a_missing_partner_and_an_unsigned_no_hit() -> None:
    query = DemoQuery("x", "x", (), down=frozenset({"b"}))
    expected = {"a": ["hit"], "b": ["unreachable"]}

    def answer(partner: str, status: str) -> dict[str, Any]:
        return {"partner": partner, "status": status, "subjects": [status], "reason": None}

    good = {"partners": [answer("a", "hit"), answer("b", "unreachable")]}
    assert result_agrees(query, expected, good)
    assert not result_agrees(query, expected, {"partners": [answer("a", "hit")]})
    no_hit = {"partners": [answer("a", "hit"), answer("b", "no_hit")]}
    assert not result_agrees(query, expected, no_hit)
