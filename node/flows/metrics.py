"""The node's Prometheus figures (docs/operations.md "Metrics").

One ``NodeMetrics`` per node context, each with its own ``CollectorRegistry``: tests and
the demo run several nodes in one process, and the global registry would add their
counts together. Counters move when what they count is committed (a round's outcomes
once its log entries are, a refusal once its signed answer leaves), so over a period
they equal the privacy officer's report of the same log. Gauges are read at scrape
time (node/flows/monitoring.py).

No label carries a subject identifier, a case reference or a user name: labels are
partner node ids (organisations, on their peer cards), convenant ids, statuses,
reasons and check names — fixed vocabularies or the federation's own public names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A partner answers a round in tens of milliseconds on a LAN, seconds when it has to
# fetch a tag set or is slow; the round's own deadline is 30 s by default.
ANSWER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class PartnerOutcome:
    """One partner's part in a round, as the round's ``bekendheid.asked`` entry logs it."""

    partner: str
    status: str
    reason: str | None
    subject_statuses: tuple[str, ...]
    seconds: float
    # Evaluate requests sent to the partner (``tries`` in the entry): more than one when
    # it failed fast and was asked again (docs/protocol.md §6.8 "Retries").
    tries: int = 1


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rounds = Counter(
            "vhnode_rounds", "Bekendheid rounds this node asked", ["convenant"], registry=r
        )
        self.answers = Counter(
            "vhnode_answers",
            "Partners' outcomes of this node's rounds, one per partner per round",
            ["partner", "status"],
            registry=r,
        )
        self.answer_subjects = Counter(
            "vhnode_answer_subjects",
            "Per-subject statuses of partners' answers to this node's rounds",
            ["partner", "status"],
            registry=r,
        )
        self.answer_seconds = Histogram(
            "vhnode_answer_seconds",
            "Time from asking a partner to its outcome, per partner",
            ["partner"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.refusals_given = Counter(
            "vhnode_refusals_given",
            "Signed refusals this node gave to authenticated peer requests, by reason",
            ["reason"],
            registry=r,
        )
        self.refusals_received = Counter(
            "vhnode_refusals_received",
            "Refusals partners gave to this node's rounds, by partner and reason",
            ["partner", "reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "vhnode_rate_limit_rejections",
            "Requests turned away by a rate limit: a requester's budget (requests, a "
            "rate_limited refusal) or an address's bad-request bucket (bad_peer_requests)",
            ["limit"],
            registry=r,
        )
        self.tag_set_version = Gauge(
            "vhnode_tag_set_version",
            "Version of this node's newest published tag set",
            ["convenant"],
            registry=r,
        )
        self.tag_set_tags = Gauge(
            "vhnode_tag_set_tags",
            "Tags in this node's newest published tag set",
            ["convenant"],
            registry=r,
        )
        self.log_entries = Gauge("vhnode_log_entries", "Entries in the node's log", registry=r)
        self.since_verify = Gauge(
            "vhnode_seconds_since_last_verify",
            "Seconds since the log was last verified (audit.verified); since the node's "
            "first entry if never",
            registry=r,
        )
        self.since_cross_check = Gauge(
            "vhnode_seconds_since_last_cross_check",
            "Seconds since the last cross-check of peers' logs (log.cross_checked); since "
            "the node's first entry if never",
            registry=r,
        )
        self.database_bytes = Gauge(
            "vhnode_database_bytes",
            "Size of the node's database on disk, write-ahead log included",
            registry=r,
        )
        self.peer_log_forks = Gauge(
            "vhnode_peer_log_forks",
            "Second signed heads held for a tree size of a partner's log: a fork seen",
            ["partner"],
            registry=r,
        )
        self.peer_retries = Counter(
            "vhnode_peer_retries",
            "Evaluate requests of this node's rounds sent again to a partner that failed "
            "fast (connection refused or cut, 502/503): each round's tries minus one",
            ["partner"],
            registry=r,
        )
        self.registry_api_changes = Counter(
            "vhnode_registry_api_changes",
            "Registrations the source system wrote (upserted, unchanged) or removed through "
            "the local API",
            ["change"],
            registry=r,
        )
        self.import_in_progress = Gauge(
            "vhnode_import_in_progress",
            "1 while a `vhnode registry import` runs (or was killed before it ended)",
            registry=r,
        )
        self.import_failed = Gauge(
            "vhnode_import_failed", "1 when the newest import stopped on an error", registry=r
        )
        self.import_rows = Gauge(
            "vhnode_import_rows",
            "Rows of the newest import committed so far: read, upserted, unchanged, refused",
            ["outcome"],
            registry=r,
        )
        self.import_refused_identifiers = Gauge(
            "vhnode_import_refused_identifiers",
            "Identifiers the newest import left out of rows it imported",
            registry=r,
        )
        self.import_started = Gauge(
            "vhnode_import_started_timestamp_seconds",
            "When the newest import started",
            registry=r,
        )
        self.import_progressed = Gauge(
            "vhnode_import_progress_timestamp_seconds",
            "When the newest import last committed a batch, or ended",
            registry=r,
        )
        self.peer_log_restores = Gauge(
            "vhnode_peer_log_restores",
            "Restore statements held of a partner: log epochs it opened after a restore",
            ["partner"],
            registry=r,
        )
        self.log_epoch = Gauge(
            "vhnode_log_epoch",
            "This node's log epoch: 0 until its first restore from a backup (protocol §9.7)",
            registry=r,
        )
        self.ready = Gauge("vhnode_ready", "1 when /readyz would answer 200", registry=r)
        self.readiness_check = Gauge(
            "vhnode_readiness_check",
            "1 when the readiness check passes, per check",
            ["check"],
            registry=r,
        )

    def round_asked(self, convenant_id: str, outcomes: Iterable[PartnerOutcome]) -> None:
        """A round whose outcomes are committed to the log."""
        self.rounds.labels(convenant_id).inc()
        for o in outcomes:
            self.answers.labels(o.partner, o.status).inc()
            for s in o.subject_statuses:
                self.answer_subjects.labels(o.partner, s).inc()
            self.answer_seconds.labels(o.partner).observe(o.seconds)
            if o.status == "refused":
                self.refusals_received.labels(o.partner, o.reason or "?").inc()
            self.peer_retries.labels(o.partner).inc(max(0, o.tries - 1))

    def registrations_changed(self, upserted: int, unchanged: int, removed: int) -> None:
        """A source system's PUT or DELETE, committed."""
        for change, n in (("upserted", upserted), ("unchanged", unchanged), ("removed", removed)):
            self.registry_api_changes.labels(change).inc(n)

    def refused(self, reason: str) -> None:
        """A signed refusal left for an authenticated peer request (and was logged)."""
        self.refusals_given.labels(reason).inc()
        if reason == "rate_limited":
            self.rate_limited.labels("requests").inc()

    def bad_peer_requests_limited(self) -> None:
        self.rate_limited.labels("bad_peer_requests").inc()
