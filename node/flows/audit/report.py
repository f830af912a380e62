"""The privacy officer's report over the log: who asked what, under which convenant and
purpose, with which outcome, and what looks unusual (docs/audit.md "Report").

Pure over :class:`node.flows.audit.Entry` values: :func:`build` folds entries into a
:class:`Report`; :meth:`Report.as_json` and ``render`` (text, CSV) only
format it. The SQL stays at the edge, in :func:`report_for` (time and convenant narrow
the read through their indexes; the other filters are applied here, on the entry).

Nothing in a report identifies a data subject: pseudonyms are only counted, never shown.

This module is the report's public face; its parts live beside it: ``kinds`` (the entry
kinds counted), ``filters`` (which entries count), ``anomalies`` (the rules for what looks
unusual, and their thresholds) and ``render`` (text and CSV).
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node.flows.audit import Entry, stream_entries
from node.flows.audit.anomalies import (
    BURST_WINDOW_SECONDS,
    DEFAULT_REQUESTS_PER_MINUTE,
    DEFAULT_SUBJECTS_PER_DAY,
    Anomaly,
    Thresholds,
    Window,
    burst_anomalies,
    epoch,
    forked_log_anomalies,
    many_subjects,
    parse_thresholds,
    probe_anomalies,
    refusal_anomalies,
    restored_log_anomalies,
    unauthenticated_anomalies,
)
from node.flows.audit.filters import Filters, matches, parse_date, parse_filters, requesting_party
from node.flows.audit.kinds import (
    ADMIN_KINDS,
    ALERT_KINDS,
    ANSWERED_COUNTS,
    ASK_KINDS,
    DETAIL_ANSWER_KINDS,
    DETAIL_KINDS,
    EVALUATION_KINDS,
    PROBE_REASONS,
    PROVIDER_KINDS,
    REFUSAL_KINDS,
    RESTORE_KINDS,
    STATUSES,
    SUSPECT_REASONS,
    TAG_SET_SERVE_KINDS,
    UNAUTHENTICATED_KIND,
)
from node.protocol.models import rfc3339
from node.store.log_kinds import LogKind

__all__ = [
    "ADMIN_KINDS",
    "ALERT_KINDS",
    "ASK_KINDS",
    "BURST_WINDOW_SECONDS",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "DEFAULT_SUBJECTS_PER_DAY",
    "DETAIL_KINDS",
    "EVALUATION_KINDS",
    "PROVIDER_KINDS",
    "REFUSAL_KINDS",
    "STATUSES",
    "SUSPECT_REASONS",
    "TAG_SET_SERVE_KINDS",
    "Anomaly",
    "Filters",
    "Report",
    "Thresholds",
    "build",
    "matches",
    "parse_date",
    "parse_filters",
    "parse_thresholds",
    "report_for",
    "requesting_party",
]

# --- the report -------------------------------------------------------------------------


@dataclass
class Report:
    node_id: str
    generated_at: str
    filters: Filters
    thresholds: Thresholds
    entries: int = 0
    first_time: str | None = None
    last_time: str | None = None
    rounds: int = 0
    rounds_unfinished: int = 0
    """Rounds whose intent (``bekendheid.round``) is logged but no partner's outcome: the
    node stopped mid-round. Their partners may have evaluated them (same ``trace_id``)."""
    subjects_asked: int = 0
    asked: dict[str, dict[str, int]] = field(default_factory=dict)
    asked_per_day: dict[str, dict[str, int]] = field(default_factory=dict)
    """UTC day → rounds started that day and the per-subject statuses of its answers
    (the web app's charts of a period; a round spans midnight only by seconds)."""
    answered: dict[str, dict[str, int]] = field(default_factory=dict)
    refusals_given: dict[tuple[str, str], int] = field(default_factory=dict)
    refusals_received: dict[tuple[str, str], int] = field(default_factory=dict)
    unauthenticated: dict[tuple[str, str], int] = field(default_factory=dict)
    """(claimed requester, "" for an unknown name; reason) → requests (§6.6 steps 3–6)."""
    tag_sets_published: dict[str, dict[str, int]] = field(default_factory=dict)
    registry: dict[str, int] = field(default_factory=dict)
    admin: dict[str, int] = field(default_factory=dict)
    details: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "generated_at": self.generated_at,
            "filters": self.filters.as_json(),
            "thresholds": self.thresholds.as_json(),
            "entries": self.entries,
            "first_entry_time": self.first_time,
            "last_entry_time": self.last_time,
            "asked": {
                "rounds": self.rounds,
                "rounds_unfinished": self.rounds_unfinished,
                "requests": sum(p["requests"] for p in self.asked.values()),
                "subjects": self.subjects_asked,
                "partners": [{"partner": k, **v} for k, v in sorted(self.asked.items())],
                "per_day": [{"day": k, **v} for k, v in sorted(self.asked_per_day.items())],
            },
            "answered": [{"requester": k, **v} for k, v in sorted(self.answered.items())],
            "refusals": {
                "given": _refusal_rows(self.refusals_given),
                "received": _refusal_rows(self.refusals_received),
            },
            "unauthenticated": [
                {"claimed": claimed or None, "reason": reason, "count": n}
                for (claimed, reason), n in sorted(self.unauthenticated.items())
            ],
            "tag_sets_published": [
                {"convenant": k, **v} for k, v in sorted(self.tag_sets_published.items())
            ],
            "registry": dict(self.registry),
            "admin": dict(self.admin),
            "details": dict(self.details),
            "entries_by_kind": dict(sorted(self.by_kind.items())),
            "anomalies": [a.as_json() for a in self.anomalies],
        }


def _refusal_rows(counts: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    return [
        {"party": party, "reason": reason, "count": n}
        for (party, reason), n in sorted(counts.items())
    ]


def _new_asked() -> dict[str, int]:
    return {"requests": 0, "subjects": 0, **dict.fromkeys(STATUSES, 0)}


def _new_day() -> dict[str, int]:
    return {"rounds": 0, **dict.fromkeys(STATUSES, 0)}


def _new_answered() -> dict[str, int]:
    return dict.fromkeys(ANSWERED_COUNTS, 0)


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def build(
    entries: Iterable[Entry],
    node_id: str,
    now: datetime,
    filters: Filters | None = None,
    thresholds: Thresholds | None = None,
) -> Report:
    """Fold the entries that match ``filters`` into a report. One pass; memory grows with
    the number of distinct (party, convenant, day/second) keys, not with the log."""
    f = filters or Filters()
    th = thresholds or Thresholds()
    rep = Report(node_id=node_id, generated_at=rfc3339(now), filters=f, thresholds=th)
    rounds: set[str] = set()
    started: set[str] = set()  # traces of rounds whose intent was logged
    round_subjects: dict[str, int] = {}
    by_kind: Counter[str] = Counter()
    # many_subjects: blind requests carry only an element count (an upper bound on the
    # distinct subjects); our own asks carry pseudonyms, so there the count is exact.
    elements_per_day: Counter[tuple[str, str, str]] = Counter()
    pseudonyms_per_day: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
    # Requests per (party, convenant) for bursts: evaluate requests we answered, and our
    # own rounds apart (a node that asks itself must not count one round twice).
    requests: defaultdict[tuple[str, str], Window] = defaultdict(Window)
    own_rounds: defaultdict[tuple[str, str], Window] = defaultdict(Window)
    own_round_times: dict[str, tuple[str, str]] = {}  # trace → (convenant, time)
    rate_limited: defaultdict[tuple[str, str, str], Window] = defaultdict(Window)
    suspect: defaultdict[tuple[str, str, str], Window] = defaultdict(Window)
    probes: defaultdict[tuple[str, str, str], Window] = defaultdict(Window)
    alerts: defaultdict[tuple[str, str], Window] = defaultdict(Window)
    restores: defaultdict[tuple[str, str], Window] = defaultdict(Window)
    unauthenticated: defaultdict[tuple[str, str], Window] = defaultdict(Window)
    refusals_given: Counter[tuple[str, str]] = Counter()
    refusals_received: Counter[tuple[str, str]] = Counter()
    registry: Counter[str] = Counter()

    for e in entries:
        if not matches(e, f, node_id):
            continue
        rep.entries += 1
        by_kind[e.kind] += 1
        if rep.first_time is None or e.time < rep.first_time:
            rep.first_time = e.time
        if rep.last_time is None or e.time > rep.last_time:
            rep.last_time = e.time
        conv = e.convenant_id or ""
        day = e.time[:10]
        party = e.counterparty or "?"

        if e.kind == LogKind.BEKENDHEID_ROUND and e.trace_id is not None:
            started.add(e.trace_id)
        elif e.kind in ASK_KINDS:
            row = rep.asked.setdefault(party, _new_asked())
            row["requests"] += 1
            row["subjects"] += len(e.subjects)
            statuses = e.data.get("subjects")
            if not isinstance(statuses, list) or len(statuses) != len(e.subjects):
                # Older or damaged entry: every subject shares the partner's outcome.
                statuses = [e.outcome] * len(e.subjects)
            per_day = rep.asked_per_day.setdefault(day, _new_day())
            for s in statuses:
                if s in STATUSES:
                    row[s] += 1
                    per_day[s] += 1
            if e.trace_id is not None:
                rounds.add(e.trace_id)
                round_subjects[e.trace_id] = len(e.subjects)
                own_round_times.setdefault(e.trace_id, (conv, e.time))
            pseudonyms_per_day[(node_id, conv, day)].update(e.subjects)
            if e.outcome == "refused":
                refusals_received[(party, e.reason or "?")] += 1
                if e.reason == "rate_limited":
                    rate_limited[("received", party, conv)].add(e.time)
        elif e.kind in PROVIDER_KINDS:
            row = rep.answered.setdefault(party, _new_answered())
            if e.kind == LogKind.BEKENDHEID_EVALUATED:
                row["evaluations"] += 1
                row["elements"] += _int(e.data.get("elements"))
            elif e.kind == LogKind.BEKENDHEID_REFUSED:
                row["refused"] += 1
            elif e.kind == LogKind.TAG_SET_SERVED:
                row["tag_sets_served"] += 1
            else:
                row["tag_sets_refused"] += 1
            if e.kind in EVALUATION_KINDS:
                elements_per_day[(party, conv, day)] += _int(e.data.get("elements"))
                window = requests[(party, conv)]
                window.add(e.time)
                if (t := epoch(e.time)) is not None:
                    window.per_second[t] += 1
            if e.kind in REFUSAL_KINDS:
                reason = e.reason or "?"
                refusals_given[(party, reason)] += 1
                if reason == "rate_limited":
                    rate_limited[("given", party, conv)].add(e.time)
                if reason in SUSPECT_REASONS:
                    suspect[(party, conv, reason)].add(e.time)
        elif e.kind in DETAIL_ANSWER_KINDS and e.outcome == "refused":
            reason = e.reason or "?"
            refusals_given[(party, reason)] += 1
            if reason == "rate_limited":
                rate_limited[("given", party, conv)].add(e.time)
            if reason in SUSPECT_REASONS:
                suspect[(party, conv, reason)].add(e.time)
            if reason in PROBE_REASONS:
                probes[(party, conv, reason)].add(e.time)
        elif e.kind == LogKind.TAG_SET_PUBLISHED:
            pub = rep.tag_sets_published.setdefault(conv, {"versions": 0, "latest_version": 0})
            pub["versions"] += 1
            pub["latest_version"] = max(pub["latest_version"], _int(e.data.get("version")))
        elif e.kind == LogKind.REGISTRY_CHANGED:
            registry["batches"] += 1
            for key in ("upserted", "removed", "unchanged"):
                registry[key] += _int(e.data.get(key))
        elif e.kind == UNAUTHENTICATED_KIND:
            claimed = e.data.get("claimed")
            reasons = e.data.get("reasons")
            start, end = e.data.get("window_start"), e.data.get("window_end")
            for reason, n in (reasons if isinstance(reasons, dict) else {}).items():
                w = unauthenticated[(claimed if isinstance(claimed, str) else "", str(reason))]
                w.add(str(start or e.time), _int(n))
                w.last = max(w.last, str(end or e.time))
        if e.kind in ALERT_KINDS:
            alerts[(e.kind, party)].add(e.time)
        elif e.kind in RESTORE_KINDS:
            # log.restored is this node's own restore: no counterparty.
            restores[(e.kind, e.counterparty or node_id)].add(e.time)

    for conv, time_text in own_round_times.values():
        rep.asked_per_day.setdefault(time_text[:10], _new_day())["rounds"] += 1
        window = own_rounds[(node_id, conv)]
        window.add(time_text)
        if (t := epoch(time_text)) is not None:
            window.per_second[t] += 1

    rep.rounds = len(rounds)
    rep.rounds_unfinished = len(started - rounds)
    rep.subjects_asked = sum(round_subjects.values())
    rep.refusals_given = dict(refusals_given)
    rep.refusals_received = dict(refusals_received)
    rep.unauthenticated = {k: w.count for k, w in unauthenticated.items()}
    rep.registry = {k: registry[k] for k in ("batches", "upserted", "removed", "unchanged")}
    rep.admin = {str(k): by_kind[k] for k in ADMIN_KINDS}
    rep.details = {label: by_kind[kind] for label, kind in DETAIL_KINDS.items()}
    rep.by_kind = dict(by_kind)
    rep.anomalies = [
        *many_subjects(node_id, th, elements_per_day, pseudonyms_per_day),
        *burst_anomalies(th, requests, "evaluate requests"),
        *burst_anomalies(th, own_rounds, f"rounds asked by {node_id}"),
        *refusal_anomalies(rate_limited, suspect),
        *unauthenticated_anomalies(unauthenticated),
        *probe_anomalies(probes),
        *forked_log_anomalies(alerts),
        *restored_log_anomalies(restores),
    ]
    return rep


# --- the edge: SQL ------------------------------------------------------------------------


def report_for(
    conn: sqlite3.Connection,
    node_id: str,
    now: datetime,
    filters: Filters | None = None,
    thresholds: Thresholds | None = None,
) -> Report:
    """Build the report from the node's log, in one read transaction (a consistent view
    even while the node keeps appending)."""
    f = filters or Filters()
    own_tx = not conn.in_transaction
    if own_tx:
        conn.execute("BEGIN")
    try:
        entries = stream_entries(
            conn,
            time_from=f.time_from(),
            time_before=f.time_before(),
            convenant_id=f.convenant,
        )
        return build(entries, node_id, now, f, thresholds)
    finally:
        if own_tx:
            conn.execute("ROLLBACK")
