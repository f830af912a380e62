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


def print_summary(report: Mapping[str, Any]) -> None:
    queries = report["queries"]
    agreed = sum(q["agrees"] for q in queries)
    click.echo(f"queries: {agreed}/{len(queries)} agree with the ground truth")
    for q in queries:
        if not q["agrees"]:
            click.echo(f"  ✗ {q['name']}")
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
        "OK: every answer matches the ground truth and every log verifies"
        if report["ok"]
        else "FAILED"
    )
