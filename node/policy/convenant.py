"""Is a bekendheid question allowed under a convenant? Pure decisions (docs/protocol.md §7).

Each check is one small rule; ``decide_evaluation`` runs them in the spec's order and
stops at the first that fails, so every refusal names the rule that made it. An empty
or unknown convenant fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from node.errors import (
    ConvenantNotInForce,
    NoQueryRight,
    NotAParty,
    NotAProvider,
    PartyWithdrawn,
    Refusal,
    UnknownConvenant,
)
from node.protocol import jws
from node.protocol.convenant import Convenant, party_signatures
from node.protocol.models import rfc3339
from node.protocol.withdrawal import Withdrawal, withdrawn


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    refusal: Refusal | None = None

    @property
    def reason(self) -> str | None:
        return self.refusal.code if self.refusal else None


ALLOW = "allow"


@dataclass(frozen=True)
class ConvenantState:
    """What the node holds of one convenant id: the version asked for and the newest."""

    asked: Convenant | None
    asked_document: jws.SignedDocument | None
    # The newest installed version that is in force now: an installed renewal whose
    # valid_from lies ahead does not yet supersede the version in force.
    newest_in_force: int | None
    # The installed withdrawals of parties from this convenant id (§5.7), whatever their
    # time: whether one is in effect is decided against ``now`` like the validity window.
    withdrawals: tuple[Withdrawal, ...] = ()


def withdrawal_refusal(
    conv: Convenant, withdrawals: tuple[Withdrawal, ...], party: str, now: datetime
) -> Refusal | None:
    """PartyWithdrawn if ``party`` has withdrawn from ``conv`` by ``now`` (§5.7), else None."""
    w = withdrawn(withdrawals, conv, party, now)
    if w is None:
        return None
    return PartyWithdrawn(f"{party} withdrew from convenant {conv.id} at {rfc3339(w.withdrawn_at)}")


def in_force(
    conv: Convenant, doc: jws.SignedDocument, party_keys: Mapping[str, bytes], now: datetime
) -> Refusal | None:
    """None if in force at ``now``: inside its window and signed by every party."""
    if now < conv.valid_from:
        return ConvenantNotInForce(
            f"convenant {conv.id} v{conv.version} starts {conv.valid_from:%Y-%m-%d}"
        )
    if now >= conv.valid_until:
        return ConvenantNotInForce(
            f"convenant {conv.id} v{conv.version} expired {conv.valid_until:%Y-%m-%d}"
        )
    unsigned = [s for s in party_signatures(conv, doc, party_keys) if s.state != "signed"]
    if unsigned:
        first = unsigned[0]
        why = (
            f"no card held for {first.node_id}"
            if first.state == "no_card"
            else f"lacks a valid signature of {first.node_id}"
        )
        return ConvenantNotInForce(f"convenant {conv.id} v{conv.version}: {why}")
    return None


def decide_standing(
    state: ConvenantState,
    convenant_id: str,
    version: int,
    requester: str,
    provider: str,
    party_keys: Mapping[str, bytes],
    now: datetime,
) -> Decision:
    """§7.1 rules 1–4: the convenant version is installed, current and in force, neither
    side has withdrawn and the requester is a party. Shared by every peer request under
    a convenant (bekendheid, tag sets, the detail exchange of §14)."""
    conv, doc = state.asked, state.asked_document
    if conv is None or doc is None:
        return Decision(
            False,
            "convenant-installed",
            UnknownConvenant(f"convenant {convenant_id} v{version} is not installed here"),
        )
    if state.newest_in_force is not None and state.newest_in_force > version:
        return Decision(
            False,
            "convenant-current-version",
            ConvenantNotInForce(
                f"convenant {convenant_id} v{version} is superseded by v{state.newest_in_force}"
            ),
        )
    refusal = in_force(conv, doc, party_keys, now)
    if refusal is not None:
        return Decision(False, "convenant-in-force", refusal)
    # Right after in-force: a withdrawn party is no party from withdrawn_at on, whichever
    # side it is on, so neither its questions nor its answers count any more.
    refusal = withdrawal_refusal(conv, state.withdrawals, requester, now)
    if refusal is not None:
        return Decision(False, "requester-not-withdrawn", refusal)
    refusal = withdrawal_refusal(conv, state.withdrawals, provider, now)
    if refusal is not None:
        return Decision(False, "provider-not-withdrawn", refusal)
    if conv.party(requester) is None:
        return Decision(
            False, "requester-is-party", NotAParty(f"{requester} is not a party to {convenant_id}")
        )
    return Decision(True, ALLOW)


def decide_evaluation(
    state: ConvenantState,
    convenant_id: str,
    version: int,
    requester: str,
    provider: str,
    purpose: str,
    party_keys: Mapping[str, bytes],
    now: datetime,
) -> Decision:
    """§7.1: may ``requester`` ask ``provider`` bekendheid under this convenant and purpose?"""
    standing = decide_standing(state, convenant_id, version, requester, provider, party_keys, now)
    if not standing.allowed:
        return standing
    conv = state.asked
    asking = conv.party(requester) if conv else None
    if conv is None or asking is None:  # decide_standing checked both; for the type checker
        return Decision(False, "requester-is-party", NotAParty(f"{requester} is not a party"))
    answering = conv.party(provider)
    if answering is None or "provider" not in answering.roles:
        return Decision(
            False,
            "provider-has-scope",
            NotAProvider(f"{provider} provides no bekendheid under {convenant_id}"),
        )
    if purpose not in asking.query_purposes:
        return Decision(
            False,
            "purpose-granted",
            NoQueryRight(f"{requester} may not ask bekendheid for purpose {purpose!r}"),
        )
    return Decision(True, ALLOW)


def decide_tag_set(
    state: ConvenantState,
    convenant_id: str,
    version: int,
    requester: str,
    provider: str,
    party_keys: Mapping[str, bytes],
    now: datetime,
) -> Decision:
    """§7.2: a tag set goes only to a party holding a query right for some purpose."""
    conv = state.asked
    if conv is not None:
        asking = conv.party(requester)
        if asking is not None and asking.query_purposes:
            return decide_evaluation(
                state,
                convenant_id,
                version,
                requester,
                provider,
                asking.query_purposes[0],
                party_keys,
                now,
            )
    if conv is not None and conv.party(requester) is not None:
        return Decision(
            False,
            "requester-may-query",
            NoQueryRight(f"{requester} holds no bekendheid query right under {convenant_id}"),
        )
    return decide_evaluation(state, convenant_id, version, requester, provider, "", party_keys, now)
