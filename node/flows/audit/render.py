"""The report as text a privacy officer can print, and as CSV (docs/audit.md "CSV")."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from node.flows.audit.kinds import ANSWERED_COUNTS, DETAIL_KINDS, STATUSES

if TYPE_CHECKING:
    from node.flows.audit.report import Report

CSV_COLUMNS = (
    "section",
    "rule",
    "party",
    "convenant",
    "reason",
    "kind",
    "window",
    "metric",
    "value",
)


def csv_rows(rep: Report) -> list[dict[str, str]]:
    """The report as flat rows of :data:`CSV_COLUMNS` (docs/audit.md "CSV")."""
    rows: list[dict[str, str]] = []

    def add(section: str, metric: str, value: object, **keys: str | None) -> None:
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update({k: v for k, v in keys.items() if v is not None})
        row.update(section=section, metric=metric, value="" if value is None else str(value))
        rows.append(row)

    add("report", "node", rep.node_id)
    add("report", "generated_at", rep.generated_at)
    for name, value in rep.filters.as_json().items():
        if value is not None:
            add("filter", name, value)
    for name, n in rep.thresholds.as_json().items():
        add("threshold", name, n)
    add("report", "entries", rep.entries)
    add("asked_total", "rounds", rep.rounds)
    add("asked_total", "rounds_unfinished", rep.rounds_unfinished)
    add("asked_total", "subjects", rep.subjects_asked)
    for partner, counts in sorted(rep.asked.items()):
        for metric, n in counts.items():
            add("asked", metric, n, party=partner)
    for day, counts in sorted(rep.asked_per_day.items()):
        for metric, n in counts.items():
            add("asked_per_day", metric, n, window=day)
    for requester, counts in sorted(rep.answered.items()):
        for metric, n in counts.items():
            add("answered", metric, n, party=requester)
    for (party, reason), n in sorted(rep.refusals_given.items()):
        add("refusals_given", "count", n, party=party, reason=reason)
    for (party, reason), n in sorted(rep.refusals_received.items()):
        add("refusals_received", "count", n, party=party, reason=reason)
    for (claimed, reason), n in sorted(rep.unauthenticated.items()):
        add("unauthenticated", "count", n, party=claimed or "(unknown)", reason=reason)
    for conv, counts in sorted(rep.tag_sets_published.items()):
        for metric, n in counts.items():
            add("tag_sets_published", metric, n, convenant=conv)
    for metric, n in rep.registry.items():
        add("registry", metric, n)
    for kind, n in rep.admin.items():
        add("admin", "count", n, kind=kind)
    for label, n in rep.details.items():
        add("details", label, n, kind=DETAIL_KINDS[label])
    for kind, n in sorted(rep.by_kind.items()):
        add("entries_by_kind", "count", n, kind=kind)
    for a in rep.anomalies:
        keys = {
            "rule": a.rule,
            "party": a.party,
            "convenant": a.convenant,
            "reason": a.reason,
            "window": a.window,
        }
        add("anomaly", "count", a.count, **keys)
        if a.threshold is not None:
            add("anomaly", "threshold", a.threshold, **keys)
    return rows


def csv_text(rep: Report) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(csv_rows(rep))
    return buf.getvalue()


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Indented columns; counts right-aligned so they can be compared down a column."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    out = []
    for line in [headers, *rows]:
        cells = [
            c.rjust(w) if i and c.isdigit() else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def render_text(rep: Report) -> str:
    """The report as a readable text a privacy officer can print or attach."""
    lines: list[str] = [f"Audit report of node {rep.node_id}, generated {rep.generated_at}"]
    given = {k: v for k, v in rep.filters.as_json().items() if v is not None}
    lines.append(
        "filters: " + (", ".join(f"{k} {v}" for k, v in given.items()) if given else "none")
    )
    span = f"{rep.first_time} to {rep.last_time}" if rep.first_time else "no entries"
    lines.append(f"entries: {rep.entries} ({span})")

    def section(title: str, body: list[str]) -> None:
        lines.extend(["", title, *(body or ["  (none)"])])

    asked = [
        [p, *(str(c[k]) for k in ("requests", "subjects", *STATUSES))]
        for p, c in sorted(rep.asked.items())
    ]
    section(
        f"Queries asked by this node: {rep.rounds} round(s), {rep.subjects_asked} subject(s)"
        + (
            f"; {rep.rounds_unfinished} round(s) started but never finished"
            if rep.rounds_unfinished
            else ""
        ),
        _table(["partner", "requests", "subjects", *STATUSES], asked) if asked else [],
    )
    per_day = [
        [d, *(str(c[k]) for k in ("rounds", *STATUSES))]
        for d, c in sorted(rep.asked_per_day.items())
    ]
    section(
        "Queries asked by this node per day (UTC): rounds started, statuses per subject",
        _table(["day", "rounds", *STATUSES], per_day) if per_day else [],
    )
    answered = [[p, *(str(v) for v in c.values())] for p, c in sorted(rep.answered.items())]
    section(
        "Requests answered by this node (subjects unknown to it: the protocol is blind)",
        _table(["requester", *ANSWERED_COUNTS], answered) if answered else [],
    )
    for title, counts in (
        ("Refusals given by this node", rep.refusals_given),
        ("Refusals received from partners", rep.refusals_received),
    ):
        rows = [[p, r, str(n)] for (p, r), n in sorted(counts.items())]
        section(title, _table(["party", "reason", "count"], rows) if rows else [])
    unauth = [[c or "(unknown)", r, str(n)] for (c, r), n in sorted(rep.unauthenticated.items())]
    section(
        "Unauthenticated requests (counted, not attributed: the claim is unproven)",
        _table(["claimed", "reason", "count"], unauth) if unauth else [],
    )
    pubs = [
        [c, str(v["versions"]), str(v["latest_version"])]
        for c, v in sorted(rep.tag_sets_published.items())
    ]
    section(
        "Tag-set versions published",
        _table(["convenant", "versions", "latest"], pubs) if pubs else [],
    )
    reg = rep.registry
    section(
        "Registry changes",
        [
            f"  {reg['batches']} batch(es): {reg['upserted']} written, {reg['removed']} removed,"
            f" {reg['unchanged']} unchanged"
        ],
    )
    section(
        "Administration and audit",
        _table(["kind", "count"], [[k, str(n)] for k, n in rep.admin.items()]),
    )
    section(
        "Detail sharing and retention (stage 2)",
        _table(
            ["what", "kind", "count"],
            [[k, DETAIL_KINDS[k], str(n)] for k, n in rep.details.items()],
        ),
    )
    anomalies = [
        [
            a.rule,
            a.party or "",
            a.convenant or "",
            a.window,
            str(a.count),
            "" if a.threshold is None else str(a.threshold),
            a.reason or a.detail,
        ]
        for a in rep.anomalies
    ]
    section(
        f"Unusual patterns: {len(rep.anomalies)}",
        _table(["rule", "party", "convenant", "window", "count", "limit", "why"], anomalies)
        if anomalies
        else [],
    )
    return "\n".join(lines) + "\n"
