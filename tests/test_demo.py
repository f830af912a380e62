"""`vhnode demo`: seven node processes on loopback, answers checked against ground truth.

This is the product's main job end to end (separate processes, real HTTP, the real import
path), so it runs in the normal suite, at a small size (~5 s).
"""

from __future__ import annotations

import dataclasses
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
from node.demo import run as demo_run
from node.demo.details import category_agrees
from node.demo.partners import (
    ANTECEDENTS,
    CONTACT,
    DETAIL_PARTNER,
    LIAISON_USER,
    TRAJECT,
    detail_categories,
)
from node.demo.scenario import Scenario
from node.demo.texts import MARK


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
    assert report["mutual_tls"] is True
    assert {n["node_id"] for n in report["nodes"]} == {p.node_id for p in PARTNERS}
    assert len(report["nodes"]) >= 6
    for node in report["nodes"]:
        assert node["started"] is True
        # Peers over mutual TLS by default (the node's own certificate, its key on the
        # card); the local API and web app on plain loopback.
        assert node["mutual_tls"] is True
        assert node["endpoint"].startswith("https://127.0.0.1:")
        assert node["local_url"].startswith("http://127.0.0.1:")
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

    _assert_second_stage(report["details"], several)


def _categories(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["category"]: c for c in view["categories"]}


def _assert_second_stage(d: dict[str, Any], several: dict[str, Any]) -> None:
    """Stage 2 as run by the demo: delivered at once, pending until the liaison approved,
    denied for the purpose; every text the one the demo registered at politie."""
    assert d["agrees"] is True, [c for c in d["checks"] if not c["ok"]]
    assert all(c["ok"] for c in d["checks"])
    assert {c["name"] for c in d["checks"]} >= {
        "round",
        "asked",
        f"first:{CONTACT}",
        f"first:{ANTECEDENTS}",
        f"first:{TRAJECT}",
        "inbox",
        "hit_notice",
        "approved",
        f"final:{CONTACT}",
        f"final:{ANTECEDENTS}",
        f"final:{TRAJECT}",
        f"logged:{DETAIL_PARTNER}",
        "logged:vh-zwb",
        "no_text_in_logs",
    }
    assert d["partner"] == DETAIL_PARTNER
    assert d["query"] == "known-to-several"
    assert d["round_trace_id"] == several["result"]["trace_id"]
    assert _statuses(several)[DETAIL_PARTNER]["status"] == "hit"
    contact = d["expected"][CONTACT]["entries"]
    antecedents = d["expected"][ANTECEDENTS]["entries"]
    assert d["expected"][TRAJECT]["entries"] is None
    for texts in (contact, antecedents):
        assert len(texts) == 1
        assert texts[0].startswith(MARK)
        assert d["ref"] in texts[0]  # the text of the person's registration at politie
    assert contact != antecedents

    asked = _categories(d["asked"])
    assert d["asked"]["outcome"] == "answered"
    assert [c["status"] for c in d["asked"]["categories"]] == ["delivered", "pending", "denied"]
    assert all(c["entries"] is None for c in asked.values())  # the ask itself shows no text

    first = _categories(d["first_view"])
    assert first[CONTACT]["status"] == "delivered"
    assert first[CONTACT]["entries"] == contact
    assert first[ANTECEDENTS]["status"] == "pending"
    assert first[ANTECEDENTS]["entries"] is None  # nothing before the liaison approved
    assert first[TRAJECT]["status"] == "denied"
    assert first[TRAJECT]["reason"] == "purpose_not_allowed"
    assert first[TRAJECT]["entries"] is None

    inbox = d["inbox_request"]
    assert inbox["requester"] == "vh-zwb"
    assert inbox["refs"] == [d["ref"]]
    assert [c["category"] for c in inbox["categories"] if c["status"] == "pending"] == [ANTECEDENTS]
    assert d["hit_notice"]["round_trace_id"] == d["round_trace_id"]
    approved = _categories(d["approval"])[ANTECEDENTS]
    assert approved["status"] == "delivered"
    assert approved["decided_by"] == LIAISON_USER

    assert d["received_via"] in ("notice", "poll")
    if d["received_via"] == "notice":  # then the node's own poll is in its log
        assert "decision-notice" in d["polled_by"]
        assert "notice_poll" in {c["name"] for c in d["checks"]}
    final = _categories(d["final_view"])
    assert final[CONTACT]["entries"] == contact
    assert final[ANTECEDENTS]["status"] == "delivered"
    assert final[ANTECEDENTS]["rule"] == "liaison-approved"
    assert final[ANTECEDENTS]["entries"] == antecedents
    assert final[TRAJECT]["status"] == "denied"
    assert final[TRAJECT]["entries"] is None


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


def test_a_wrong_detail_text_fails_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo compares the delivered text with its own record: had politie delivered
    anything else, it would exit 1 and say which check failed."""
    real = demo_run.build_scenario

    def misremembered(n: int, seed: int) -> Scenario:
        sc = real(n, seed)
        case = sc.detail_case
        wrong = {**case.expected, CONTACT: ("delivered", [MARK + " iets anders"])}
        sc.detail_case = dataclasses.replace(case, expected=wrong)
        return sc

    monkeypatch.setattr(demo_run, "build_scenario", misremembered)
    res = CliRunner().invoke(main, ["demo", "--subjects-per-partner", "50", "--seed", "3"])
    assert res.exit_code == 1
    assert f"✗ first:{CONTACT}" in res.output
    assert f"✗ final:{CONTACT}" in res.output
    assert "FAILED" in res.output
    assert f"✗ first:{ANTECEDENTS}" not in res.output  # only what failed is marked
    assert f"✗ final:{ANTECEDENTS}" not in res.output


@pytest.mark.parametrize("seed", [1, 2026])
def test_detail_case_comes_from_the_registry(seed: int) -> None:
    sc = build_scenario(60, seed)
    case = sc.detail_case
    entry = next(e for e in sc.registries[DETAIL_PARTNER] if e.registration.ref == case.ref)
    assert entry.pid == case.subject.pid
    assert sc.truth.knows(DETAIL_PARTNER, case.subject)
    assert case.expected[CONTACT] == ("delivered", [entry.registration.details[CONTACT]])
    assert case.expected[ANTECEDENTS] == ("delivered", [entry.registration.details[ANTECEDENTS]])
    assert case.expected[TRAJECT] == ("denied", None)
    # every registration of a partner with detail rules carries a text per category
    for p in PARTNERS:
        for e in sc.registries[p.node_id]:
            assert set(e.registration.details) == set(detail_categories(p.node_id))
            assert all(t.startswith(MARK) for t in e.registration.details.values())


def test_category_agreement_needs_the_exact_text_and_no_text_when_withheld() -> None:
    delivered = {"status": "delivered", "visible": True, "entries": ["a"]}
    assert category_agrees(delivered, "delivered", ["a"], None)
    assert not category_agrees(delivered, "delivered", ["b"], None)
    assert not category_agrees(delivered, "pending", None, None)
    withheld = {"status": "denied", "reason": "purpose_not_allowed", "visible": False}
    assert category_agrees({**withheld, "entries": None}, "denied", None, "purpose_not_allowed")
    assert not category_agrees(
        {**withheld, "entries": ["a"]}, "denied", None, "purpose_not_allowed"
    )
    assert not category_agrees({**withheld, "entries": None}, "denied", None, "no_detail_rule")
    assert not category_agrees(None, "denied", None, "purpose_not_allowed")


def test_without_a_hit_in_the_questions_the_stage_asks_a_round_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = demo_run.build_scenario

    def no_query(n: int, seed: int) -> Scenario:
        sc = real(n, seed)
        sc.detail_case = dataclasses.replace(sc.detail_case, query=None, subject_index=0)
        return sc

    monkeypatch.setattr(demo_run, "build_scenario", no_query)
    report = run_demo(50, seed=5)
    assert report["ok"] is True, report["error"] or report["details"]["checks"]
    d = report["details"]
    assert d["query"] is None
    assert d["case_ref"] == "ZVH-BRD-2026-DETAIL"
    assert d["round_trace_id"] not in {q["result"]["trace_id"] for q in report["queries"]}
    final = _categories(d["final_view"])
    assert final[ANTECEDENTS]["entries"] == d["expected"][ANTECEDENTS]["entries"]
    for node in report["nodes"]:
        assert not _alive(node["pid"]), node["node_id"]
