"""The log entry kinds the privacy officer's report counts (docs/protocol.md §9.1).

A later kind is added by name here.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    "convenant.withdrawn",
    "convenant.withdrawal_installed",
    "user.created",
    "user.revoked",
    "audit.inzage",
)
"""Administration and audit, always listed (zero when absent) so a report reads the same
from period to period."""
DETAIL_KINDS: Mapping[str, str] = {
    # As the partner (docs/protocol.md §14.11).
    "requests_answered": "detail.requested",
    "disclosures": "detail.disclosed",
    "pending": "detail.pending",
    "approvals": "detail.approved",
    "denials": "detail.denied",
    "unavailable": "detail.unavailable",
    "hit_notices_received": "hit_notice.received",
    "records_purged": "detail.records_purged",
    # As the requester and recipient.
    "asked": "detail.asked",
    "received": "detail.received",
    "viewed": "detail.viewed",
    "purges": "detail.purged",
    "hit_notices_sent": "hit_notice.sent",
}
"""The detail exchange, both sides: label → entry kind, always listed (zero when absent)."""
DETAIL_ANSWER_KINDS = ("detail.requested", "detail.polled", "hit_notice.received")
"""A partner answering the detail exchange (§14): refusals among them are refusals given."""
PROBE_REASONS = ("bad_hit_proof", "unknown_round")
"""Detail refusals that mean a party asked about someone it never found in a round with
this node: a tag lifted from the published set, or another party's round. Always worth
the privacy officer's attention (an honest node cannot produce them)."""
SUSPECT_REASONS = ("unknown_requester", "revoked_requester", "bad_signature", "replayed_request")
"""Refusals that mean a request came from, or pretended to come from, a party this node
does not (or no longer) trust: always worth the privacy officer's attention."""
UNAUTHENTICATED_KIND = "peer.unauthenticated"
"""Requests refused at §6.6 steps 3–6, counted per window and claimed requester: the
claim is unproven, so they are never counted as that party's requests."""
ALERT_KINDS = ("peer.log_forked",)
"""Entries that are anomalies by themselves (a partner signed two different logs)."""
STATUSES = ("hit", "no_hit", "refused", "unreachable", "timeout", "invalid")
"""Per-subject statuses of an ask (docs/protocol.md §8.1), in report order."""
ANSWERED_COUNTS = ("evaluations", "elements", "refused", "tag_sets_served", "tag_sets_refused")
"""Per requesting party, what this node counted of the requests it answered, in report order."""
