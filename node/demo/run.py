"""One whole demo run: generate, set up, start, ask, stop, verify; the report of docs/demo.md."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from node.config import DB_FILE
from node.demo.details import check_logs, run_detail_stage
from node.demo.federation import (
    HEALTH_DEADLINE_SECONDS,
    DemoNode,
    Tokens,
    free_ports,
    http_json,
    set_up,
    sigterm_raises,
    start_nodes,
    stop_nodes,
    verify_home,
    wait_healthy,
)
from node.demo.partners import CONVENANT_ID, COORDINATOR_NODE, PARTNERS, DemoError
from node.demo.render import render_detail_logs, render_details, render_query
from node.demo.scenario import Scenario, build_scenario
from node.demo.truth import result_agrees
from node.demo.ui import UiFederation, WebLogin, enrol_web_users, make_ready
from node.errors import VhnodeError


def run_demo(
    subjects_per_partner: int = 3000,
    seed: int = 2026,
    keep: Path | None = None,
    say: Callable[[str], None] | None = None,
    health_deadline_s: float = HEALTH_DEADLINE_SECONDS,
    ui: Callable[[UiFederation], None] | None = None,
    mutual_tls: bool = True,
) -> dict[str, Any]:
    """Run the whole demo; return the report (docs/demo.md). Never leaves a process behind.

    ``say`` receives progress and the per-query tables as they happen (None: silent).
    ``ui``: the nodes get web users first, and after the scripted run this is called with
    the running federation (``vhnode demo --ui`` waits in it for Ctrl-C); the nodes are
    stopped when it returns or raises. ``mutual_tls``: peers speak mutual TLS, each node
    with a self-signed certificate of its own (the default); else plain HTTP.
    """
    emit = say or (lambda _text: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    report: dict[str, Any] = {
        "ok": False,
        "error": None,
        "nodes": [],
        "queries": [],
        "details": None,
        "logs": {},
        "timings_s": timings,
    }
    nodes: list[DemoNode] = []
    scenario: Scenario | None = None
    with ExitStack() as stack:
        if keep is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vhnode-demo-")))
        else:
            root = keep.expanduser().resolve()
            if root.exists() and any(root.iterdir()):
                raise DemoError(f"--keep {root}: directory exists and is not empty")
            root.mkdir(parents=True, exist_ok=True)
        report["dir"] = str(root)
        ports = free_ports(2 * len(PARTNERS))
        nodes = [
            DemoNode(spec, root / spec.node_id, port, tls_port=tls_port if mutual_tls else None)
            for spec, port, tls_port in zip(PARTNERS, ports[::2], ports[1::2], strict=True)
        ]
        report["mutual_tls"] = mutual_tls
        stack.enter_context(sigterm_raises())
        try:
            t = time.perf_counter()
            scenario = build_scenario(subjects_per_partner, seed)
            timings["generate"] = time.perf_counter() - t
            emit(
                f"generated {len(scenario.population)} synthetic persons (seed {seed}) and "
                f"{len(PARTNERS)} registries of {subjects_per_partner} in "
                f"{timings['generate']:.1f} s"
            )
            tokens = set_up(nodes, scenario, emit, timings)
            if keep is not None:  # to ask the kept federation again with `vhnode query`
                for name, value in (
                    ("coordinator", tokens.coordinator),
                    ("liaison", tokens.liaison),
                ):
                    token_file = root / f"{name}.token"
                    token_file.touch(mode=0o600)
                    token_file.write_text(value + "\n")
            logins: list[WebLogin] = []
            if ui is not None:
                t = time.perf_counter()
                logins = enrol_web_users(nodes)
                timings["web_users"] = time.perf_counter() - t
                emit(f"enrolled {len(logins)} web users (password and TOTP second factor)")

            t = time.perf_counter()
            start_nodes(nodes)
            wait_healthy(nodes, health_deadline_s)
            timings["start"] = time.perf_counter() - t
            emit(f"started {len(nodes)} node processes, all healthy in {timings['start']:.1f} s")
            emit("")

            t = time.perf_counter()
            _run_queries(nodes, scenario, tokens.coordinator, report, emit)
            timings["queries"] = time.perf_counter() - t

            t = time.perf_counter()
            _run_details(nodes, scenario, tokens, report, emit)
            timings["details"] = time.perf_counter() - t

            if ui is not None:
                fed = make_ready(root, nodes, logins, scenario, tokens, health_deadline_s)
                ui(fed)
        except VhnodeError as e:  # DemoError, or an admin step refusing (reported, not raised)
            report["error"] = e.detail
        except KeyboardInterrupt:
            emit("interrupted: stopping the node processes")
            raise
        finally:
            t = time.perf_counter()
            stop_nodes(nodes)
            timings["stop"] = time.perf_counter() - t
        t = time.perf_counter()
        for node in nodes:
            if (node.home / DB_FILE).exists():
                report["logs"][node.node_id] = verify_home(node.home, node.node_id)
        if report["details"] is not None:
            check_logs({n.node_id: n for n in nodes}, report["details"])
            for line in render_detail_logs(report["details"]):
                emit(line)
        timings["verify_logs"] = time.perf_counter() - t
        report["nodes"] = [n.as_json(scenario.truth if scenario else None) for n in nodes]
    timings["total"] = time.perf_counter() - started
    for k, v in timings.items():
        timings[k] = round(v, 3)
    report["ok"] = (
        report["error"] is None
        and bool(report["queries"])
        and all(q["agrees"] for q in report["queries"])
        and report["details"] is not None
        and report["details"]["agrees"]
        and len(report["logs"]) == len(nodes)
        and all(entry["ok"] for entry in report["logs"].values())
        and all(n["started"] for n in report["nodes"])
    )
    return report


def _run_queries(
    nodes: Sequence[DemoNode],
    scenario: Scenario,
    token: str,
    report: dict[str, Any],
    emit: Callable[[str], None],
) -> None:
    by_id = {n.node_id: n for n in nodes}
    url = by_id[COORDINATOR_NODE].url + "/api/v1/bekendheid"
    providers = [p.node_id for p in PARTNERS]
    for i, query in enumerate(scenario.queries):
        for down in sorted(query.down):
            stop_nodes([by_id[down]])
            proc = by_id[down].process
            code = proc.returncode if proc is not None else None
            emit(f"stopped {down} ({by_id[down].stopped_by}, exit code {code}) before asking")
        body = {
            "convenant_id": CONVENANT_ID,
            "purpose": query.purpose,
            "case_ref": f"ZVH-BRD-2026-{i + 1:04d}",
            "subjects": [s.wire for s in query.subjects],
        }
        status, result = http_json("POST", url, token, body)
        expected = query.expected(scenario.truth, providers)
        agrees = (
            status == 200 and isinstance(result, dict) and result_agrees(query, expected, result)
        )
        entry = {
            "name": query.name,
            "description": query.description,
            "subjects": len(query.subjects),
            "expected": expected,
            "result": result,
            "agrees": agrees,
        }
        report["queries"].append(entry)
        for line in render_query(chr(ord("a") + i), entry, query):
            emit(line)
        emit("")
        if status != 200:
            raise DemoError(f"query {query.name}: HTTP {status}: {result}")


def _run_details(
    nodes: Sequence[DemoNode],
    scenario: Scenario,
    tokens: Tokens,
    report: dict[str, Any],
    emit: Callable[[str], None],
) -> None:
    by_id = {n.node_id: n for n in nodes}
    details = run_detail_stage(by_id, scenario.detail_case, report["queries"], tokens)
    report["details"] = details
    for line in render_details(chr(ord("a") + len(report["queries"])), details):
        emit(line)
    emit("")
