"""Every kind of log entry, one enumeration (docs/protocol.md §9.1, §14.11).

The value is the string the entry's body carries, so an entry made with a member is
byte-identical to one made with the bare string. The constructors that build each kind
with its fields live in ``node/flows/log_entries.py``; the report counts kinds by these
members (``node/flows/audit/kinds.py``).
"""

from __future__ import annotations

from enum import StrEnum


class LogKind(StrEnum):
    # The node and its administration
    NODE_INITIALISED = "node.initialised"
    CARD_RENEWED = "card.renewed"
    KEY_ROTATED = "key.rotated"
    PEER_ADDED = "peer.added"
    PEER_UPDATED = "peer.updated"
    PEER_ROTATED = "peer.rotated"
    PEER_REVOKED = "peer.revoked"
    CONVENANT_INSTALLED = "convenant.installed"
    CONVENANT_WITHDRAWN = "convenant.withdrawn"
    CONVENANT_WITHDRAWAL_INSTALLED = "convenant.withdrawal_installed"
    USER_CREATED = "user.created"
    USER_REVOKED = "user.revoked"
    AUDIT_INZAGE = "audit.inzage"
    AUDIT_VERIFIED = "audit.verified"
    USER_CREDENTIALS_SET = "user.credentials_set"
    # The web application (docs/webapp.md): who signed in and out, and who could not
    WEB_SIGNED_IN = "web.signed_in"
    WEB_SIGNED_OUT = "web.signed_out"
    WEB_SIGN_IN_FAILED = "web.sign_in_failed"
    WEB_LOCKED_OUT = "web.locked_out"
    # The registry and its tag sets
    REGISTRY_CHANGED = "registry.changed"
    TAG_SET_PUBLISHED = "tag_set.published"
    TAG_SET_SERVED = "tag_set.served"
    TAG_SET_REFUSED = "tag_set.refused"
    TAG_SET_EPOCH_STARTED = "tag_set.epoch_started"
    # Bekendheid: asking (§6.8) and answering (§6.6)
    BEKENDHEID_ROUND = "bekendheid.round"
    BEKENDHEID_ASKED = "bekendheid.asked"
    BEKENDHEID_EVALUATED = "bekendheid.evaluated"
    BEKENDHEID_REFUSED = "bekendheid.refused"
    # Logs and peers (§9)
    LOG_CONSISTENCY_SERVED = "log.consistency_served"
    LOG_CONSISTENCY_REFUSED = "log.consistency_refused"
    LOG_CROSS_CHECKED = "log.cross_checked"
    PEER_LOG_FORKED = "peer.log_forked"
    PEER_OPRF_KEY_CONFLICT = "peer.oprf_key_conflict"
    KEY_PINS_COMPARED = "key_pins.compared"
    KEY_PINS_CHECKED = "key_pins.checked"
    PEER_LOG_RESTORED = "peer.log_restored"
    LOG_HELD_HEAD_SERVED = "log.held_head_served"
    LOG_HELD_HEAD_REFUSED = "log.held_head_refused"
    LOG_RESTORED = "log.restored"
    LOG_RESTORE_CHECKED = "log.restore_checked"
    PEER_UNAUTHENTICATED = "peer.unauthenticated"
    # The detail exchange, as the partner (§14.11)
    DETAIL_REQUESTED = "detail.requested"
    DETAIL_DISCLOSED = "detail.disclosed"
    DETAIL_PENDING = "detail.pending"
    DETAIL_APPROVED = "detail.approved"
    DETAIL_DENIED = "detail.denied"
    DETAIL_UNAVAILABLE = "detail.unavailable"
    DETAIL_POLLED = "detail.polled"
    DETAIL_NOTICE_SENT = "detail.notice_sent"
    DETAIL_RECORDS_PURGED = "detail.records_purged"
    HIT_NOTICE_RECEIVED = "hit_notice.received"
    # The detail exchange, as the requester and recipient
    DETAIL_ASKED = "detail.asked"
    DETAIL_RECEIVED = "detail.received"
    DETAIL_VIEWED = "detail.viewed"
    DETAIL_PURGED = "detail.purged"
    HIT_NOTICE_SENT = "hit_notice.sent"
