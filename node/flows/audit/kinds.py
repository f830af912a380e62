"""The log entry kinds the privacy officer's report counts (docs/protocol.md §9.1).

Kinds are members of ``LogKind`` (node/store/log_kinds.py); a later kind is added there
and named here.
"""

from __future__ import annotations

from collections.abc import Mapping

from node.store.log_kinds import LogKind

ASK_KINDS = (LogKind.BEKENDHEID_ASKED,)
"""This node asking partners: one entry per partner per round, subjects = pseudonyms."""
EVALUATION_KINDS = (LogKind.BEKENDHEID_EVALUATED, LogKind.BEKENDHEID_REFUSED)
"""A partner asking this node: one entry per evaluate request (no subjects: blind)."""
TAG_SET_SERVE_KINDS = (LogKind.TAG_SET_SERVED, LogKind.TAG_SET_REFUSED)
PROVIDER_KINDS = EVALUATION_KINDS + TAG_SET_SERVE_KINDS
"""Kinds whose ``counterparty`` is the requesting party."""
REFUSAL_KINDS = (LogKind.BEKENDHEID_REFUSED, LogKind.TAG_SET_REFUSED)
"""Refusals this node gave (the reasons it signed, §8.2)."""
ADMIN_KINDS = (
    LogKind.NODE_INITIALISED,
    LogKind.CARD_RENEWED,
    LogKind.KEY_ROTATED,
    LogKind.PEER_ADDED,
    LogKind.PEER_UPDATED,
    LogKind.PEER_ROTATED,
    LogKind.PEER_REVOKED,
    LogKind.CONVENANT_INSTALLED,
    LogKind.CONVENANT_WITHDRAWN,
    LogKind.CONVENANT_WITHDRAWAL_INSTALLED,
    LogKind.USER_CREATED,
    LogKind.USER_REVOKED,
    LogKind.AUDIT_INZAGE,
    LogKind.AUDIT_VERIFIED,
    LogKind.USER_CREDENTIALS_SET,
    LogKind.WEB_SIGNED_IN,
    LogKind.WEB_SIGNED_OUT,
    LogKind.WEB_SIGN_IN_FAILED,
    LogKind.WEB_LOCKED_OUT,
)
"""Administration and audit, always listed (zero when absent) so a report reads the same
from period to period."""
DETAIL_KINDS: Mapping[str, LogKind] = {
    # As the partner (docs/protocol.md §14.11).
    "requests_answered": LogKind.DETAIL_REQUESTED,
    "disclosures": LogKind.DETAIL_DISCLOSED,
    "pending": LogKind.DETAIL_PENDING,
    "approvals": LogKind.DETAIL_APPROVED,
    "denials": LogKind.DETAIL_DENIED,
    "unavailable": LogKind.DETAIL_UNAVAILABLE,
    "hit_notices_received": LogKind.HIT_NOTICE_RECEIVED,
    "records_purged": LogKind.DETAIL_RECORDS_PURGED,
    # As the requester and recipient.
    "asked": LogKind.DETAIL_ASKED,
    "received": LogKind.DETAIL_RECEIVED,
    "viewed": LogKind.DETAIL_VIEWED,
    "purges": LogKind.DETAIL_PURGED,
    "hit_notices_sent": LogKind.HIT_NOTICE_SENT,
}
"""The detail exchange, both sides: label → entry kind, always listed (zero when absent)."""
DETAIL_ANSWER_KINDS = (
    LogKind.DETAIL_REQUESTED,
    LogKind.DETAIL_POLLED,
    LogKind.HIT_NOTICE_RECEIVED,
)
"""A partner answering the detail exchange (§14): refusals among them are refusals given."""
PROBE_REASONS = ("bad_hit_proof", "unknown_round", "round_purpose_mismatch")
"""Detail refusals that mean a party asked about someone it never found in a round with
this node: a tag lifted from the published set, or another party's round; or detail for
another purpose than its round's. Always worth the privacy officer's attention (an
honest node cannot produce them: it refuses the last locally)."""
SUSPECT_REASONS = ("unknown_requester", "revoked_requester", "bad_signature", "replayed_request")
"""Refusals that mean a request came from, or pretended to come from, a party this node
does not (or no longer) trust: always worth the privacy officer's attention."""
UNAUTHENTICATED_KIND = LogKind.PEER_UNAUTHENTICATED
"""Requests refused at §6.6 steps 3–6, counted per window and claimed requester: the
claim is unproven, so they are never counted as that party's requests."""
ALERT_KINDS = (LogKind.PEER_LOG_FORKED, LogKind.PEER_OPRF_KEY_CONFLICT)
"""Entries that are anomalies by themselves (a partner signed two different logs, or
showed two OPRF keys for one epoch)."""
RESTORE_KINDS = (LogKind.PEER_LOG_RESTORED, LogKind.LOG_RESTORED)
"""A partner, or this node, restored from a backup and opened a new log epoch admitting
lost entries (docs/protocol.md §9.7): not a fork, but always worth the privacy officer's
attention."""
STATUSES = ("hit", "no_hit", "refused", "unreachable", "timeout", "invalid")
"""Per-subject statuses of an ask (docs/protocol.md §8.1), in report order."""
ANSWERED_COUNTS = ("evaluations", "elements", "refused", "tag_sets_served", "tag_sets_refused")
"""Per requesting party, what this node counted of the requests it answered, in report order."""
