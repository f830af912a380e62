"""The demo's text output: a table per query, and the closing summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from node.demo.truth import DemoQuery, partner_agrees

_MARK = {True: "✓", False: "✗"}


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def render_query(letter: str, q: Mapping[str, Any], query: DemoQuery) -> list[str]:
    lines = [f"{letter}. {q['name']}: {q['description']}  {_MARK[q['agrees']]}"]
    lines += [f"     subject {i + 1}: {s.label}" for i, s in enumerate(query.subjects)]
    result = q["result"]
    if not isinstance(result, dict) or "partners" not in result:
        lines.append(f"     the API did not answer: {result}")
        return lines
    lines.append(
        f"     purpose {result['purpose']}, case {result['case_ref']}, "
        f"trace {result['trace_id'][:16]}…"
    )
    rows = [["partner", "org type", "status per subject", "reason", "ms", "truth"]]
    for p in result["partners"]:
        expected = q["expected"].get(p["partner"], [])
        ok = partner_agrees(query, expected, p)
        status = " ".join(p["subjects"])
        truth = _MARK[ok] if ok else f"✗ expected {' '.join(expected)}"
        rows.append(
            [
                p["partner"],
                p["org_type"],
                status,
                p.get("reason") or "",
                f"{p['elapsed_ms']:.1f}",
                truth,
            ]
        )
    lines += ["   " + line for line in _table(rows)]
    return lines


def _short(text: str, width: int = 96) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_details(letter: str, d: Mapping[str, Any]) -> list[str]:
    """Stage 2: per category the first answer, the answer after approval, and the truth."""
    lines = [
        f"{letter}. details: {d['partner']} asked for {len(d['categories'])} categories of "
        f"subject {d['subject_index'] + 1} of {d['query'] or 'a round of its own'}  "
        f"{_MARK[d['agrees']]}",
        f"     subject: {d['subject']}, registered at {d['partner']} as {d['ref']}",
    ]
    if d["trace_id"]:
        lines.append(
            f"     purpose {d['purpose']}, case {d['case_ref']}, trace {d['trace_id'][:16]}…, "
            f"round {(d['round_trace_id'] or '')[:16]}…"
        )
    first = {c["category"]: c for c in (d["first_view"] or {}).get("categories", [])}
    final = {c["category"]: c for c in (d["final_view"] or {}).get("categories", [])}
    checks = {c["name"]: c for c in d["checks"]}
    rows = [["category", "asked", "after approval", "rule / reason", "truth"]]
    for cat in d["categories"]:
        a, b = first.get(cat, {}), final.get(cat, {})
        ok = [checks.get(f"first:{cat}"), checks.get(f"final:{cat}")]
        fine = all(c is not None and c["ok"] for c in ok)
        why = b.get("reason") or b.get("rule") or ""
        want = d["expected"][cat]
        rows.append(
            [
                cat,
                str(a.get("status", "-")),
                str(b.get("status", "-")),
                why,
                _MARK[True] if fine else f"✗ expected {want['first']} then {want['status']}",
            ]
        )
    lines += ["   " + line for line in _table(rows)]
    for cat in d["categories"]:
        for text in final.get(cat, {}).get("entries") or ():
            lines.append(f"     {cat}: {_short(text)}")
    for name in ("inbox", "hit_notice", "approved"):
        c = checks.get(name)
        if c is not None:
            lines.append(f"     {_MARK[c['ok']]} {c['detail']}")
    if d["received_via"]:
        how = (
            "the partner's decision notice (the node polled by itself)"
            if d["received_via"] == "notice"
            else "a poll by the demo (no notice-triggered poll in time)"
        )
        lines.append(f"     approved text received via {how} after {d['wait_s']:.2f} s")
    for c in d["checks"]:
        if not c["ok"] and c["name"] in ("round", "asked"):
            lines.append(f"     ✗ {c['detail']}")
    return lines


def render_detail_logs(d: Mapping[str, Any]) -> list[str]:
    """Stage 2 as the stopped nodes' logs show it."""
    return [
        f"{_MARK[c['ok']]} {c['detail']}"
        for c in d["checks"]
        if c["name"].startswith("logged:") or c["name"] in ("notice_poll", "no_text_in_logs")
    ]


def print_summary(report: Mapping[str, Any]) -> None:
    queries = report["queries"]
    agreed = sum(q["agrees"] for q in queries)
    click.echo(f"queries: {agreed}/{len(queries)} agree with the ground truth")
    for q in queries:
        if not q["agrees"]:
            click.echo(f"  ✗ {q['name']}")
    details = report.get("details")
    if details is not None:
        passed = sum(c["ok"] for c in details["checks"])
        click.echo(
            f"details: {passed}/{len(details['checks'])} checks of stage 2 agree with what "
            f"{details['partner']} registered"
        )
        for c in details["checks"]:
            if not c["ok"]:
                click.echo(f"  ✗ {c['name']}: {c['detail']}")
    logs = report["logs"]
    for node in report["nodes"]:
        v = logs.get(node["node_id"])
        state = (
            "no log"
            if v is None
            else (
                f"log OK ({v['entries']} entries, {v['heads']} signed heads)"
                if v["ok"]
                else f"log FAILS: {v['problems'][:1]}"
            )
        )
        click.echo(
            f"  {node['node_id']:<24} pid {node['pid']!s:<8} exit {node['returncode']!s:<4} "
            f"{node['in_scope_registrations'] or 0:>6}/{node['registrations']:<6} in scope  "
            f"{state}"
        )
    t = report["timings_s"]
    click.echo("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
    if report.get("error"):
        click.echo(f"error: {report['error']}", err=True)
    click.echo(
        "OK: every answer and every detail matches the ground truth and every log verifies"
        if report["ok"]
        else "FAILED"
    )
