"""The privacy officer's report over the log: who asked what, under which convenant and
purpose, with which outcome, and what looks unusual (docs/audit.md "Report").

Pure over :class:`node.audit.Entry` values: :func:`build` folds entries into a
:class:`Report`; :func:`render_text`, :meth:`Report.as_json` and :func:`csv_text` only
format it. The SQL stays at the edge, in :func:`report_for` (time and convenant narrow
the read through their indexes; the other filters are applied here, on the entry).

Nothing in a report identifies a data subject: pseudonyms are only counted, never shown.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from node.audit import Entry, stream_entries
from node.errors import InputError
from node.protocol.models import rfc3339

# --- the kinds counted (docs/protocol.md §9.1); a later kind is added by name here ------

ASK_KINDS = ("bekendheid.asked",)
"""This node asking partners: one entry per partner per round, subjects = pseudonyms."""
EVALUATION_KINDS = ("bekendheid.evaluated", "bekendheid.refused")
"""A partner asking this node: one entry per evaluate request (no subjects: blind)."""
TAG_SET_SERVE_KINDS = ("tag_set.served", "tag_set.refused")
PROVIDER_KINDS = EVALUATION_KINDS + TAG_SET_SERVE_KINDS
"""Kinds whose ``counterparty`` is the requesting party."""
REFUSAL_KINDS = ("bekendheid.refused", "tag_set.refused")
"""Refusals this node gave (the reasons it signed, §8.2)."""
ADMIN_KINDS = (
    "node.initialised",
    "peer.added",
    "peer.updated",
    "peer.rotated",
    "peer.revoked",
    "convenant.installed",
    "user.created",
    "user.revoked",
    "audit.inzage",
)
"""Administration and audit, always listed (zero when absent) so a report reads the same
from period to period."""
DETAIL_KINDS: Mapping[str, str] = {
    "disclosures": "detail.disclosed",
    "approvals": "detail.approved",
    "denials": "detail.denied",
    "purges": "detail.purged",
}
"""Detail sharing and retention (stage 2): label → entry kind. No code writes these kinds
yet; they are reported as zero rows so the report's shape is final. The issue that adds
detail sharing renames the kinds here if it chooses other names."""
SUSPECT_REASONS = ("unknown_requester", "revoked_requester", "bad_signature", "replayed_request")
"""Refusals that mean a request came from, or pretended to come from, a party this node
does not (or no longer) trust: always worth the privacy officer's attention."""
ALERT_KINDS = ("peer.log_forked",)
"""Entries that are anomalies by themselves (a partner signed two different logs)."""
STATUSES = ("hit", "no_hit", "refused", "unreachable", "timeout", "invalid")
"""Per-subject statuses of an ask (docs/protocol.md §8.1), in report order."""

DEFAULT_SUBJECTS_PER_DAY = 200
DEFAULT_REQUESTS_PER_MINUTE = 60
BURST_WINDOW_SECONDS = 60

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_FILTER_CHARS = 128

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


# --- filters and thresholds -------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """An entry counts when it matches every filter given. A filter on a field the entry
    does not have (a purpose on a peer.added entry, say) leaves the entry out."""

    start: date | None = None
    """First day, inclusive, UTC."""
    end: date | None = None
    """Last day, inclusive, UTC."""
    convenant: str | None = None
    purpose: str | None = None
    party: str | None = None
    """The requesting party: the counterparty of a request this node answered, or this
    node itself for the rounds it asked."""
    user: str | None = None
    """The entry's ``actor``: a local user, or at a partner the remote requesting user."""

    def time_from(self) -> str | None:
        return None if self.start is None else f"{self.start.isoformat()}T00:00:00Z"

    def time_before(self) -> str | None:
        # Exclusive bound: the day after ``end``, so every second of ``end`` is in.
        return (
            None if self.end is None else f"{(self.end + timedelta(days=1)).isoformat()}T00:00:00Z"
        )

    def as_json(self) -> dict[str, str | None]:
        return {
            "from": None if self.start is None else self.start.isoformat(),
            "to": None if self.end is None else self.end.isoformat(),
            "convenant": self.convenant,
            "purpose": self.purpose,
            "party": self.party,
            "user": self.user,
        }


@dataclass(frozen=True)
class Thresholds:
    subjects_per_day: int = DEFAULT_SUBJECTS_PER_DAY
    """``many_subjects`` fires above this many subjects asked by one requesting party
    under one convenant in one UTC day."""
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    """``burst`` fires above this many requests by one party under one convenant within
    any 60 seconds."""

    def as_json(self) -> dict[str, int]:
        return {
            "subjects_per_day": self.subjects_per_day,
            "requests_per_minute": self.requests_per_minute,
        }


def parse_date(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    if not _DATE.fullmatch(value.strip()):
        raise InputError(f"{name}: {value[:32]!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value.strip())
    except ValueError as e:
        raise InputError(f"{name}: {value[:32]!r} is not a date (YYYY-MM-DD)") from e


def _filter_text(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > _MAX_FILTER_CHARS or not value.isprintable():
        raise InputError(f"{name}: at most {_MAX_FILTER_CHARS} printable characters")
    return value


def _positive(name: str, value: str | int | None, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InputError(f"{name}: {value[:32]!r} is not a whole number")
        value = int(value)
    if not 1 <= value <= 10**9:
        raise InputError(f"{name}: must be from 1 to 1000000000")
    return value


def parse_filters(
    *,
    start: str | None = None,
    end: str | None = None,
    convenant: str | None = None,
    purpose: str | None = None,
    party: str | None = None,
    user: str | None = None,
) -> Filters:
    """Filters from text (CLI options, query parameters); InputError names the bad one."""
    f = Filters(
        start=parse_date("from", start),
        end=parse_date("to", end),
        convenant=_filter_text("convenant", convenant),
        purpose=_filter_text("purpose", purpose),
        party=_filter_text("party", party),
        user=_filter_text("user", user),
    )
    if f.start is not None and f.end is not None and f.start > f.end:
        raise InputError(f"from ({f.start}) is after to ({f.end})")
    return f


def parse_thresholds(
    subjects_per_day: str | int | None = None, requests_per_minute: str | int | None = None
) -> Thresholds:
    return Thresholds(
        subjects_per_day=_positive("subjects_per_day", subjects_per_day, DEFAULT_SUBJECTS_PER_DAY),
        requests_per_minute=_positive(
            "requests_per_minute", requests_per_minute, DEFAULT_REQUESTS_PER_MINUTE
        ),
    )


def requesting_party(entry: Entry, node_id: str) -> str | None:
    """Who asked: the counterparty of a request we answered, us for our own rounds, and
    nobody for entries that record no request (admin, registry, publications)."""
    if entry.kind in PROVIDER_KINDS:
        return entry.counterparty
    if entry.kind in ASK_KINDS:
        return node_id
    return None


def matches(entry: Entry, f: Filters, node_id: str) -> bool:
    t_from, t_before = f.time_from(), f.time_before()
    # Bodies hold "YYYY-MM-DDTHH:MM:SSZ" (§2.2): text order is time order.
    if t_from is not None and entry.time < t_from:
        return False
    if t_before is not None and entry.time >= t_before:
        return False
    if f.convenant is not None and entry.convenant_id != f.convenant:
        return False
    if f.purpose is not None and entry.purpose != f.purpose:
        return False
    if f.party is not None and requesting_party(entry, node_id) != f.party:
        return False
    return f.user is None or entry.actor == f.user


# --- the report -------------------------------------------------------------------------


@dataclass(frozen=True)
class Anomaly:
    rule: str
    """``many_subjects``, ``burst``, ``rate_limited``, ``suspect_requester``,
    ``forked_peer_log``."""
    party: str | None
    convenant: str | None
    window: str
    """A UTC day, or ``first/last`` timestamps of the requests concerned."""
    count: int
    threshold: int | None = None
    reason: str | None = None
    side: str | None = None
    """For refusals: ``given`` (this node refused) or ``received`` (a partner refused us)."""
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "party": self.party,
            "convenant": self.convenant,
            "window": self.window,
            "count": self.count,
            "threshold": self.threshold,
            "reason": self.reason,
            "side": self.side,
            "detail": self.detail,
        }


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
    subjects_asked: int = 0
    asked: dict[str, dict[str, int]] = field(default_factory=dict)
    answered: dict[str, dict[str, int]] = field(default_factory=dict)
    refusals_given: dict[tuple[str, str], int] = field(default_factory=dict)
    refusals_received: dict[tuple[str, str], int] = field(default_factory=dict)
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
                "requests": sum(p["requests"] for p in self.asked.values()),
                "subjects": self.subjects_asked,
                "partners": [{"partner": k, **v} for k, v in sorted(self.asked.items())],
            },
            "answered": [{"requester": k, **v} for k, v in sorted(self.answered.items())],
            "refusals": {
                "given": _refusal_rows(self.refusals_given),
                "received": _refusal_rows(self.refusals_received),
            },
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


def _new_answered() -> dict[str, int]:
    return {
        "evaluations": 0,
        "elements": 0,
        "refused": 0,
        "tag_sets_served": 0,
        "tag_sets_refused": 0,
    }


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _epoch(time_text: str) -> int | None:
    try:
        return int(datetime.fromisoformat(time_text).timestamp())
    except ValueError:
        return None


@dataclass
class _Window:
    """Occurrences of one (party, convenant): per second for bursts, first/last time."""

    per_second: Counter[int] = field(default_factory=Counter)
    first: str = ""
    last: str = ""
    count: int = 0

    def add(self, time_text: str, n: int = 1) -> None:
        if not self.first or time_text < self.first:
            self.first = time_text
        self.last = max(self.last, time_text)
        self.count += n


def _bursts(per_second: Mapping[int, int], limit: int) -> list[tuple[int, int, int]]:
    """Episodes in which more than ``limit`` requests fall within 60 seconds.

    A sliding window over the seconds with requests; overlapping windows that exceed the
    limit merge into one episode ``(first second, last second, peak count)``, so a long
    burst is one line, not one per second.
    """
    secs = sorted(per_second)
    episodes: list[tuple[int, int, int]] = []
    lo = 0
    total = 0
    for t in secs:
        total += per_second[t]
        while secs[lo] <= t - BURST_WINDOW_SECONDS:
            total -= per_second[secs[lo]]
            lo += 1
        if total <= limit:
            continue
        start = secs[lo]
        if episodes and start <= episodes[-1][1]:
            first, _, peak = episodes[-1]
            episodes[-1] = (first, t, max(peak, total))
        else:
            episodes.append((start, t, total))
    return episodes


def _utc_text(epoch: int) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, UTC))


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
    round_subjects: dict[str, int] = {}
    by_kind: Counter[str] = Counter()
    # many_subjects: blind requests carry only an element count (an upper bound on the
    # distinct subjects); our own asks carry pseudonyms, so there the count is exact.
    elements_per_day: Counter[tuple[str, str, str]] = Counter()
    pseudonyms_per_day: defaultdict[tuple[str, str, str], set[str]] = defaultdict(set)
    # Requests per (party, convenant) for bursts: evaluate requests we answered, and our
    # own rounds apart (a node that asks itself must not count one round twice).
    requests: defaultdict[tuple[str, str], _Window] = defaultdict(_Window)
    own_rounds: defaultdict[tuple[str, str], _Window] = defaultdict(_Window)
    own_round_times: dict[str, tuple[str, str]] = {}  # trace → (convenant, time)
    rate_limited: defaultdict[tuple[str, str, str], _Window] = defaultdict(_Window)
    suspect: defaultdict[tuple[str, str, str], _Window] = defaultdict(_Window)
    alerts: defaultdict[tuple[str, str], _Window] = defaultdict(_Window)
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

        if e.kind in ASK_KINDS:
            row = rep.asked.setdefault(party, _new_asked())
            row["requests"] += 1
            row["subjects"] += len(e.subjects)
            statuses = e.data.get("subjects")
            if not isinstance(statuses, list) or len(statuses) != len(e.subjects):
                # Older or damaged entry: every subject shares the partner's outcome.
                statuses = [e.outcome] * len(e.subjects)
            for s in statuses:
                if s in STATUSES:
                    row[s] += 1
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
            if e.kind == "bekendheid.evaluated":
                row["evaluations"] += 1
                row["elements"] += _int(e.data.get("elements"))
            elif e.kind == "bekendheid.refused":
                row["refused"] += 1
            elif e.kind == "tag_set.served":
                row["tag_sets_served"] += 1
            else:
                row["tag_sets_refused"] += 1
            if e.kind in EVALUATION_KINDS:
                elements_per_day[(party, conv, day)] += _int(e.data.get("elements"))
                window = requests[(party, conv)]
                window.add(e.time)
                if (t := _epoch(e.time)) is not None:
                    window.per_second[t] += 1
            if e.kind in REFUSAL_KINDS:
                reason = e.reason or "?"
                refusals_given[(party, reason)] += 1
                if reason == "rate_limited":
                    rate_limited[("given", party, conv)].add(e.time)
                if reason in SUSPECT_REASONS:
                    suspect[(party, conv, reason)].add(e.time)
        elif e.kind == "tag_set.published":
            pub = rep.tag_sets_published.setdefault(conv, {"versions": 0, "latest_version": 0})
            pub["versions"] += 1
            pub["latest_version"] = max(pub["latest_version"], _int(e.data.get("version")))
        elif e.kind == "registry.changed":
            registry["batches"] += 1
            for key in ("upserted", "removed", "unchanged"):
                registry[key] += _int(e.data.get(key))
        if e.kind in ALERT_KINDS:
            alerts[(e.kind, party)].add(e.time)

    for conv, time_text in own_round_times.values():
        window = own_rounds[(node_id, conv)]
        window.add(time_text)
        if (t := _epoch(time_text)) is not None:
            window.per_second[t] += 1

    rep.rounds = len(rounds)
    rep.subjects_asked = sum(round_subjects.values())
    rep.refusals_given = dict(refusals_given)
    rep.refusals_received = dict(refusals_received)
    rep.registry = {k: registry[k] for k in ("batches", "upserted", "removed", "unchanged")}
    rep.admin = {k: by_kind[k] for k in ADMIN_KINDS}
    rep.details = {label: by_kind[kind] for label, kind in DETAIL_KINDS.items()}
    rep.by_kind = dict(by_kind)
    rep.anomalies = [
        *_many_subjects(node_id, th, elements_per_day, pseudonyms_per_day),
        *_burst_anomalies(th, requests, "evaluate requests"),
        *_burst_anomalies(th, own_rounds, f"rounds asked by {node_id}"),
        *_refusal_anomalies(rate_limited, suspect),
        *(
            Anomaly(
                "forked_peer_log",
                party,
                None,
                f"{w.first}/{w.last}",
                w.count,
                detail=f"{kind}: the partner signed two different logs of one size",
            )
            for (kind, party), w in sorted(alerts.items())
        ),
    ]
    return rep


def _many_subjects(
    node_id: str,
    th: Thresholds,
    elements_per_day: Mapping[tuple[str, str, str], int],
    pseudonyms_per_day: Mapping[tuple[str, str, str], set[str]],
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for (party, conv, day), n in sorted(elements_per_day.items()):
        if n > th.subjects_per_day:
            detail = "subjects in evaluate requests (blind: a repeated subject counts again)"
            out.append(
                Anomaly(
                    "many_subjects", party, conv or None, day, n, th.subjects_per_day, detail=detail
                )
            )
    for (party, conv, day), seen in sorted(pseudonyms_per_day.items()):
        if len(seen) > th.subjects_per_day:
            detail = f"distinct subjects in rounds asked by {node_id}"
            out.append(
                Anomaly(
                    "many_subjects",
                    party,
                    conv or None,
                    day,
                    len(seen),
                    th.subjects_per_day,
                    detail=detail,
                )
            )
    return out


def _burst_anomalies(
    th: Thresholds, windows: Mapping[tuple[str, str], _Window], what: str
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for (party, conv), window in sorted(windows.items()):
        for first, last, peak in _bursts(window.per_second, th.requests_per_minute):
            out.append(
                Anomaly(
                    "burst",
                    party,
                    conv or None,
                    f"{_utc_text(first)}/{_utc_text(last)}",
                    peak,
                    th.requests_per_minute,
                    detail=f"peak {what} within {BURST_WINDOW_SECONDS} s",
                )
            )
    return out


def _refusal_anomalies(
    rate_limited: Mapping[tuple[str, str, str], _Window],
    suspect: Mapping[tuple[str, str, str], _Window],
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for (side, party, conv), w in sorted(rate_limited.items()):
        out.append(
            Anomaly(
                "rate_limited",
                party,
                conv or None,
                f"{w.first}/{w.last}",
                w.count,
                reason="rate_limited",
                side=side,
                detail="refused for exceeding the evaluation rate limit",
            )
        )
    for (party, conv, reason), w in sorted(suspect.items()):
        out.append(
            Anomaly(
                "suspect_requester",
                party,
                conv or None,
                f"{w.first}/{w.last}",
                w.count,
                reason=reason,
                side="given",
                detail="request from an unknown, revoked or impersonated party",
            )
        )
    return out


# --- output -------------------------------------------------------------------------------


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
    add("asked_total", "subjects", rep.subjects_asked)
    for partner, counts in sorted(rep.asked.items()):
        for metric, n in counts.items():
            add("asked", metric, n, party=partner)
    for requester, counts in sorted(rep.answered.items()):
        for metric, n in counts.items():
            add("answered", metric, n, party=requester)
    for (party, reason), n in sorted(rep.refusals_given.items()):
        add("refusals_given", "count", n, party=party, reason=reason)
    for (party, reason), n in sorted(rep.refusals_received.items()):
        add("refusals_received", "count", n, party=party, reason=reason)
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
        f"Queries asked by this node: {rep.rounds} round(s), {rep.subjects_asked} subject(s)",
        _table(["partner", "requests", "subjects", *STATUSES], asked) if asked else [],
    )
    answered = [[p, *(str(v) for v in c.values())] for p, c in sorted(rep.answered.items())]
    section(
        "Requests answered by this node (subjects unknown to it: the protocol is blind)",
        _table(["requester", *_new_answered()], answered) if answered else [],
    )
    for title, counts in (
        ("Refusals given by this node", rep.refusals_given),
        ("Refusals received from partners", rep.refusals_received),
    ):
        rows = [[p, r, str(n)] for (p, r), n in sorted(counts.items())]
        section(title, _table(["party", "reason", "count"], rows) if rows else [])
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
