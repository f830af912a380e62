"""One constructor per log entry kind (docs/protocol.md §9.1, §14.11).

Each function names what its kind records, so a flow writes
``entries.user_created(name=…, role=…)`` instead of filling a ``LogEntry`` by hand, and
the fields of one kind are decided in one place. Bodies are unchanged: the kind is the
same string (``LogKind``), the fields the same values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.protocol.restore import RestoreStatement
from node.store.log import LogEntry
from node.store.log_kinds import LogKind

# --- the node and its administration ---------------------------------------------------


def _by(data: dict[str, Any], by: str | None) -> dict[str, Any]:
    """An administration entry names the web admin who made the change (``by``). From the
    CLI it is absent: whoever runs commands on the node's host is in the host's records."""
    return data if by is None else {**data, "by": by}


def node_initialised(*, signing_key_fingerprint: str, org_type: str) -> LogEntry:
    return LogEntry(
        kind=LogKind.NODE_INITIALISED,
        outcome="ok",
        data={"signing_key_fingerprint": signing_key_fingerprint, "org_type": org_type},
    )


def card_renewed(
    *, signing_key_fingerprint: str, endpoint: str, valid_from: str, valid_until: str
) -> LogEntry:
    """This node issued a new card of its own (§4.1): when, for how long, reachable where."""
    return LogEntry(
        kind=LogKind.CARD_RENEWED,
        outcome="renewed",
        data={
            "signing_key_fingerprint": signing_key_fingerprint,
            "endpoint": endpoint,
            "valid_from": valid_from,
            "valid_until": valid_until,
        },
    )


def key_rotated(
    *, signing_key_fingerprint: str, previous_signing_key_fingerprint: str, compromised: bool
) -> LogEntry:
    """This node changed its signing key (§4.1.1): from which to which, and whether the
    old key cross-signed the new card (not when it is taken to be compromised)."""
    return LogEntry(
        kind=LogKind.KEY_ROTATED,
        outcome="rotated",
        data={
            "signing_key_fingerprint": signing_key_fingerprint,
            "previous_signing_key_fingerprint": previous_signing_key_fingerprint,
            "cross_signed": not compromised,
        },
    )


_PEER_KINDS = {
    "added": LogKind.PEER_ADDED,
    "updated": LogKind.PEER_UPDATED,
    "rotated": LogKind.PEER_ROTATED,
}


def peer_card_held(
    *,
    outcome: str,
    node_id: str,
    signing_key_fingerprint: str,
    by: str | None = None,
    via: str | None = None,
    previous_signing_key_fingerprint: str | None = None,
) -> LogEntry:
    """``peer.added``, ``peer.updated`` or ``peer.rotated``, as ``outcome`` says. A
    rotation names the key it replaced; ``via`` is ``"cross-signature"`` when the held key
    vouched for the new one (§4.2 step 5), absent when an admin accepted it by hand."""
    data: dict[str, Any] = {"signing_key_fingerprint": signing_key_fingerprint}
    if previous_signing_key_fingerprint is not None:
        data["previous_signing_key_fingerprint"] = previous_signing_key_fingerprint
    if via is not None:
        data["via"] = via
    return LogEntry(
        kind=_PEER_KINDS[outcome], counterparty=node_id, outcome=outcome, data=_by(data, by)
    )


def peer_revoked(*, node_id: str, by: str | None = None) -> LogEntry:
    return LogEntry(
        kind=LogKind.PEER_REVOKED, counterparty=node_id, outcome="revoked", data=_by({}, by)
    )


def convenant_installed(
    *, convenant_id: str, version: int, parties: list[str], by: str | None = None
) -> LogEntry:
    return LogEntry(
        kind=LogKind.CONVENANT_INSTALLED,
        convenant_id=convenant_id,
        convenant_version=version,
        outcome="installed",
        data=_by({"parties": parties}, by),
    )


def convenant_withdrawn(
    *, convenant_id: str, version: int, withdrawn_at: str, reason: str
) -> LogEntry:
    return LogEntry(
        kind=LogKind.CONVENANT_WITHDRAWN,
        convenant_id=convenant_id,
        convenant_version=version,
        outcome="withdrawn",
        data={"withdrawn_at": withdrawn_at, "reason": reason},
    )


def convenant_withdrawal_installed(
    *, convenant_id: str, version: int, party: str, withdrawn_at: str, by: str | None = None
) -> LogEntry:
    return LogEntry(
        kind=LogKind.CONVENANT_WITHDRAWAL_INSTALLED,
        convenant_id=convenant_id,
        convenant_version=version,
        counterparty=party,
        outcome="installed",
        data=_by({"withdrawn_at": withdrawn_at}, by),
    )


def user_created(*, name: str, role: str, by: str | None = None) -> LogEntry:
    return LogEntry(
        kind=LogKind.USER_CREATED, actor=name, outcome="created", data=_by({"role": role}, by)
    )


def user_revoked(*, name: str, by: str | None = None) -> LogEntry:
    return LogEntry(kind=LogKind.USER_REVOKED, actor=name, outcome="revoked", data=_by({}, by))


def user_credentials_set(
    *, name: str, password: bool, second_factor: bool, by: str | None = None
) -> LogEntry:
    """A user's web sign-in credentials set or replaced (which of the two, never values)."""
    return LogEntry(
        kind=LogKind.USER_CREDENTIALS_SET,
        actor=name,
        outcome="set",
        data=_by({"password": password, "second_factor": second_factor}, by),
    )


# --- the web application: signing in and out (docs/webapp.md) -------------------------------


def web_signed_in(*, name: str, role: str) -> LogEntry:
    return LogEntry(kind=LogKind.WEB_SIGNED_IN, actor=name, outcome="ok", data={"role": role})


def web_signed_out(*, name: str, why: str) -> LogEntry:
    """``why``: ``sign_out`` (the user), ``idle`` or ``absolute`` (a timeout ended it)."""
    return LogEntry(kind=LogKind.WEB_SIGNED_OUT, actor=name, outcome=why)


def web_sign_in_failed(*, name: str | None, reason: str) -> LogEntry:
    """``name`` only when it is a user of this node: a name nobody has may be a password
    or an identifier typed in the wrong field, and the log holds no plain identifier."""
    return LogEntry(kind=LogKind.WEB_SIGN_IN_FAILED, actor=name, outcome="failed", reason=reason)


def web_locked_out(*, name: str, until: str) -> LogEntry:
    return LogEntry(
        kind=LogKind.WEB_LOCKED_OUT, actor=name, outcome="locked", data={"until": until}
    )


def audit_inzage(
    *, actor: str | None, subjects: tuple[str, ...], data: Mapping[str, Any]
) -> LogEntry:
    return LogEntry(
        kind=LogKind.AUDIT_INZAGE, actor=actor, subjects=subjects, outcome="reported", data=data
    )


def audit_verified(
    *, actor: str | None, entries: int, heads: int, problems: Sequence[tuple[int | None, str]]
) -> LogEntry:
    """The log was verified (``vhnode audit verify``, the API, the web app): how far, and
    with what result. ``problems`` are (seq, kind) of the earliest findings, no details:
    enough to find them again with the next verify."""
    return LogEntry(
        kind=LogKind.AUDIT_VERIFIED,
        actor=actor,
        outcome="ok" if not problems else "failed",
        data={
            "entries": entries,
            "heads": heads,
            "problems": [{"seq": seq, "kind": kind} for seq, kind in problems],
        },
    )


# --- the registry and its tag sets ----------------------------------------------------------


def registry_changed(
    *,
    actor: str | None,
    subjects: tuple[str, ...],
    reason: str | None,
    upserted: int,
    removed: int,
    unchanged: int,
) -> LogEntry:
    return LogEntry(
        kind=LogKind.REGISTRY_CHANGED,
        actor=actor,
        subjects=subjects,
        outcome="changed",
        reason=reason,
        data={"upserted": upserted, "removed": removed, "unchanged": unchanged},
    )


def tag_set_published(
    *,
    convenant_id: str,
    convenant_version: int | None,
    actor: str | None,
    version: int,
    count: int,
    added: int,
    removed: int,
) -> LogEntry:
    return LogEntry(
        kind=LogKind.TAG_SET_PUBLISHED,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        actor=actor,
        outcome="published",
        data={"version": version, "count": count, "added": added, "removed": removed},
    )


def tag_set_epoch_started(
    *,
    convenant_id: str,
    epoch: int,
    oprf_public_key: str,
    version: int,
    previous_until: str,
) -> LogEntry:
    """§6.1.1: the OPRF key of a convenant changed; its public key is on record."""
    return LogEntry(
        kind=LogKind.TAG_SET_EPOCH_STARTED,
        convenant_id=convenant_id,
        outcome="started",
        data={
            "epoch": epoch,
            "oprf_public_key": oprf_public_key,
            "version": version,
            "previous_until": previous_until,
        },
    )


def tag_set_served(
    *, convenant_id: str, convenant_version: int, requester: str, data: Mapping[str, Any]
) -> LogEntry:
    return LogEntry(
        kind=LogKind.TAG_SET_SERVED,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        counterparty=requester,
        outcome="served",
        data=data,
    )


def tag_set_refused(
    *,
    convenant_id: str,
    convenant_version: int,
    requester: str,
    reason: str,
    data: Mapping[str, Any],
) -> LogEntry:
    return LogEntry(
        kind=LogKind.TAG_SET_REFUSED,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        counterparty=requester,
        outcome="refused",
        reason=reason,
        data=data,
    )


# --- bekendheid --------------------------------------------------------------------------


def bekendheid_round(
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    user: str,
    subjects: tuple[str, ...],
    case_ref: str,
    partners: list[str],
) -> LogEntry:
    """The round's intent, written before the fan-out (§6.8)."""
    return LogEntry(
        kind=LogKind.BEKENDHEID_ROUND,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=user,
        subjects=subjects,
        data={"case_ref": case_ref, "partners": partners},
    )


def bekendheid_asked(
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    user: str,
    partner: str,
    subjects: tuple[str, ...],
    status: str,
    reason: str | None,
    data: Mapping[str, Any],
) -> LogEntry:
    return LogEntry(
        kind=LogKind.BEKENDHEID_ASKED,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=user,
        counterparty=partner,
        subjects=subjects,
        outcome=status,
        reason=reason,
        data=data,
    )


def _bekendheid_answered(
    kind: LogKind,
    outcome: str,
    reason: str | None,
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    requesting_user: str,
    requester: str,
    case_ref: str,
    elements: int,
    rule: str,
    tag_set_version: int | None,
) -> LogEntry:
    """§6.6 step 10: subjects empty, the partner cannot know them."""
    return LogEntry(
        kind=kind,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=requesting_user,
        counterparty=requester,
        outcome=outcome,
        reason=reason,
        data={
            "case_ref": case_ref,
            "elements": elements,
            "rule": rule,
            "tag_set_version": tag_set_version,
        },
    )


def bekendheid_evaluated(**fields: Any) -> LogEntry:
    """Keyword arguments as ``_bekendheid_answered``."""
    return _bekendheid_answered(LogKind.BEKENDHEID_EVALUATED, "evaluated", None, **fields)


def bekendheid_refused(*, reason: str, **fields: Any) -> LogEntry:
    """Keyword arguments as ``_bekendheid_answered``, with the refusal's code."""
    return _bekendheid_answered(LogKind.BEKENDHEID_REFUSED, "refused", reason, **fields)


# --- logs and peers --------------------------------------------------------------------------


def log_consistency_served(*, requester: str, from_size: int, to_size: int) -> LogEntry:
    return LogEntry(
        kind=LogKind.LOG_CONSISTENCY_SERVED,
        counterparty=requester,
        outcome="served",
        data={"from_size": from_size, "to_size": to_size},
    )


def log_consistency_refused(
    *, requester: str, reason: str, from_size: int, to_size: int
) -> LogEntry:
    return LogEntry(
        kind=LogKind.LOG_CONSISTENCY_REFUSED,
        counterparty=requester,
        outcome="refused",
        reason=reason,
        data={"from_size": from_size, "to_size": to_size},
    )


def log_cross_checked(
    *, peer: str, verdict: str, held_size: int | None, current_size: int | None
) -> LogEntry:
    return LogEntry(
        kind=LogKind.LOG_CROSS_CHECKED,
        counterparty=peer,
        outcome=verdict,
        data={"held_size": held_size, "current_size": current_size},
    )


def peer_log_forked(*, partner: str, tree_size: int) -> LogEntry:
    return LogEntry(
        kind=LogKind.PEER_LOG_FORKED,
        counterparty=partner,
        outcome="conflict",
        data={"tree_size": tree_size},
    )


def peer_oprf_key_conflict(*, partner: str, convenant_id: str, epoch: int, source: str) -> LogEntry:
    """§6.8 step 4a, §9.6: two OPRF keys of one partner for one convenant and epoch."""
    return LogEntry(
        kind=LogKind.PEER_OPRF_KEY_CONFLICT,
        convenant_id=convenant_id,
        counterparty=partner,
        outcome="conflict",
        data={"epoch": epoch, "source": source},
    )


def key_pins_compared(
    *, requester: str, reason: str | None, received: int, compared: int, conflicts: int
) -> LogEntry:
    """§9.6, answering: a peer's pins compared with ours."""
    return LogEntry(
        kind=LogKind.KEY_PINS_COMPARED,
        counterparty=requester,
        outcome="refused" if reason else "served",
        reason=reason,
        data={"received": received, "compared": compared, "conflicts": conflicts},
    )


def key_pins_checked(*, peer: str, verdict: str, compared: int) -> LogEntry:
    """§9.6, asking: our pins compared with a peer's."""
    return LogEntry(
        kind=LogKind.KEY_PINS_CHECKED,
        counterparty=peer,
        outcome=verdict,
        data={"compared": compared},
    )


def peer_log_restored(*, partner: str, statement: RestoreStatement, held_size: int) -> LogEntry:
    """A partner's head of a new log epoch, with its restore statement (§9.7).
    ``held_size``: the largest head of the closed epoch we held, beside what it admits."""
    return LogEntry(
        kind=LogKind.PEER_LOG_RESTORED,
        counterparty=partner,
        outcome="restored",
        data={
            "epoch": statement.epoch,
            "restored_size": statement.restored.tree_size,
            "admitted_size": statement.held.tree_size,
            "held_size": held_size,
        },
    )


def log_held_head_served(*, requester: str, epoch: int | None, tree_size: int | None) -> LogEntry:
    return LogEntry(
        kind=LogKind.LOG_HELD_HEAD_SERVED,
        counterparty=requester,
        outcome="served",
        data={"epoch": epoch, "tree_size": tree_size},
    )


def log_held_head_refused(*, requester: str, reason: str) -> LogEntry:
    return LogEntry(
        kind=LogKind.LOG_HELD_HEAD_REFUSED,
        counterparty=requester,
        outcome="refused",
        reason=reason,
        data={},
    )


def log_restored(*, statement: RestoreStatement) -> LogEntry:
    """This node opened a new log epoch after a restore (§9.7): the statement's terms."""
    return LogEntry(
        kind=LogKind.LOG_RESTORED,
        outcome="restored",
        data={
            "epoch": statement.epoch,
            "restored_epoch": statement.restored.epoch,
            "restored_size": statement.restored.tree_size,
            "held_epoch": statement.held.epoch,
            "held_size": statement.held.tree_size,
            "peers_asked": statement.peers_asked,
            "peers_answered": statement.peers_answered,
        },
    )


def log_restore_checked(*, tree_size: int, peers_asked: int, peers_answered: int) -> LogEntry:
    """A restored copy whose peers all answered and hold nothing past it: no epoch needed."""
    return LogEntry(
        kind=LogKind.LOG_RESTORE_CHECKED,
        outcome="consistent",
        data={"tree_size": tree_size, "peers_asked": peers_asked, "peers_answered": peers_answered},
    )


def peer_unauthenticated(
    *,
    claimed: str | None,
    window_start: str,
    window_end: str,
    reasons: Mapping[str, int],
    messages: Mapping[str, int],
) -> LogEntry:
    """§6.6.1: the claim only in ``data``, never as ``counterparty`` (it is unproven)."""
    return LogEntry(
        kind=LogKind.PEER_UNAUTHENTICATED,
        outcome="refused",
        data={
            "claimed": claimed,
            "window_start": window_start,
            "window_end": window_end,
            "requests": sum(reasons.values()),
            "reasons": dict(reasons),
            "messages": dict(messages),
        },
    )


# --- the detail exchange, as the partner ------------------------------------------------------

_CATEGORY_KINDS = {
    "delivered": LogKind.DETAIL_DISCLOSED,
    "denied": LogKind.DETAIL_DENIED,
    "pending": LogKind.DETAIL_PENDING,
    "unavailable": LogKind.DETAIL_UNAVAILABLE,
}


def detail_category(
    *,
    status: str,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    actor: str | None,
    requester: str,
    subject: str,
    reason: str | None,
    data: Mapping[str, Any],
) -> LogEntry:
    """``detail.disclosed``, ``detail.denied``, ``detail.pending`` or
    ``detail.unavailable``: one category's state as it changed (§14.11)."""
    return LogEntry(
        kind=_CATEGORY_KINDS[status],
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=actor,
        counterparty=requester,
        subjects=(subject,),
        outcome=status,
        reason=reason,
        data=data,
    )


def detail_decided(
    *,
    approved: bool,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    liaison: str,
    requester: str,
    subject: str,
    reason: str | None,
    category: str,
    rule: str,
) -> LogEntry:
    """A liaison's decision (§14.7): ``detail.approved`` or ``detail.denied``."""
    return LogEntry(
        kind=LogKind.DETAIL_APPROVED if approved else LogKind.DETAIL_DENIED,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=liaison,
        counterparty=requester,
        subjects=(subject,),
        outcome="approved" if approved else "denied",
        reason=reason,
        data={"category": category, "rule": rule},
    )


def detail_requested(
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    requesting_user: str,
    requester: str,
    subjects: tuple[str, ...],
    outcome: str,
    reason: str | None,
    data: Mapping[str, Any],
) -> LogEntry:
    return LogEntry(
        kind=LogKind.DETAIL_REQUESTED,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=requesting_user,
        counterparty=requester,
        subjects=subjects,
        outcome=outcome,
        reason=reason,
        data=data,
    )


def detail_polled(
    *,
    trace_id: str,
    requester: str,
    outcome: str,
    reason: str | None = None,
    convenant_id: str | None = None,
    convenant_version: int | None = None,
    purpose: str | None = None,
    subjects: Sequence[str] = (),
) -> LogEntry:
    """A poll the partner answered (or refused)."""
    return LogEntry(
        kind=LogKind.DETAIL_POLLED,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        counterparty=requester,
        subjects=tuple(subjects),
        outcome=outcome,
        reason=reason,
    )


def detail_notice_sent(*, trace_id: str, requester: str, sent: bool) -> LogEntry:
    return LogEntry(
        kind=LogKind.DETAIL_NOTICE_SENT,
        trace_id=trace_id,
        counterparty=requester,
        outcome="sent" if sent else "unreachable",
    )


def detail_records_purged(*, requests: int, hit_notices: int) -> LogEntry:
    return LogEntry(
        kind=LogKind.DETAIL_RECORDS_PURGED,
        actor="retention",
        outcome="purged",
        data={"requests": requests, "hit_notices": hit_notices},
    )


def hit_notice_received(
    *,
    round_trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    requesting_user: str,
    requester: str,
    subjects: tuple[str, ...],
    reason: str | None,
    data: Mapping[str, Any],
) -> LogEntry:
    return LogEntry(
        kind=LogKind.HIT_NOTICE_RECEIVED,
        trace_id=round_trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=requesting_user,
        counterparty=requester,
        subjects=subjects,
        outcome="refused" if reason else "accepted",
        reason=reason,
        data=data,
    )


# --- the detail exchange, as the requester and recipient ---------------------------------------


def detail_exchanged(
    kind: LogKind,
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    actor: str,
    partner: str,
    subject: str,
    outcome: str,
    reason: str | None,
    data: Mapping[str, Any],
) -> LogEntry:
    """``detail.asked`` or ``detail.polled`` at the requester: what the partner answered."""
    if kind not in (LogKind.DETAIL_ASKED, LogKind.DETAIL_POLLED):
        raise ValueError(f"{kind} is not an exchange the requester logs")
    return LogEntry(
        kind=kind,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=actor,
        counterparty=partner,
        subjects=(subject,),
        outcome=outcome,
        reason=reason,
        data=data,
    )


def detail_received(exchanged: LogEntry, *, category: str, retain_until: str | None) -> LogEntry:
    """One category stored at the recipient, in the context of its exchange entry."""
    return LogEntry(
        kind=LogKind.DETAIL_RECEIVED,
        trace_id=exchanged.trace_id,
        convenant_id=exchanged.convenant_id,
        convenant_version=exchanged.convenant_version,
        purpose=exchanged.purpose,
        actor=exchanged.actor,
        counterparty=exchanged.counterparty,
        subjects=exchanged.subjects,
        outcome="received",
        data={"category": category, "retain_until": retain_until},
    )


def detail_viewed(
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    user: str,
    partner: str,
    subject: str,
    categories: list[str],
    role: str,
) -> LogEntry:
    return LogEntry(
        kind=LogKind.DETAIL_VIEWED,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=user,
        counterparty=partner,
        subjects=(subject,),
        outcome="viewed",
        data={"categories": categories, "role": role},
    )


def detail_purged(
    *,
    trace_id: str,
    convenant_id: str,
    convenant_version: int,
    actor: str,
    partner: str,
    subject: str,
    category: str,
) -> LogEntry:
    return LogEntry(
        kind=LogKind.DETAIL_PURGED,
        trace_id=trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        actor=actor,
        counterparty=partner,
        subjects=(subject,),
        outcome="purged",
        data={"category": category},
    )


def hit_notice_sent(
    *,
    round_trace_id: str,
    convenant_id: str,
    convenant_version: int,
    purpose: str,
    user: str,
    partner: str,
    subjects: tuple[str, ...],
    outcome: str,
    reason: str | None,
    data: Mapping[str, Any],
) -> LogEntry:
    return LogEntry(
        kind=LogKind.HIT_NOTICE_SENT,
        trace_id=round_trace_id,
        convenant_id=convenant_id,
        convenant_version=convenant_version,
        purpose=purpose,
        actor=user,
        counterparty=partner,
        subjects=subjects,
        outcome=outcome,
        reason=reason,
        data=data,
    )
