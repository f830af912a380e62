"""Which detail may a provider share, per category? Pure decisions (docs/protocol.md §7.4).

A decision is made per category by a chain of small checks (``CHECKS``), run in the
order of §7.4; the first that decides ends the chain, so every decision names the rule
that made it. A check passes (returns None) or decides: ``deny`` with a refusal, or
``needs_approval``. Only the last check, ``allow``, ever allows, and a chain that runs
out without a decision denies: like an empty ``AllOf`` it fails closed, so a missing or
reordered check can never turn into an allow.

This module sees only the convenant, the installed withdrawals from it, the question and
``now``. Whether the convenant is
installed, the newest version and signed by every party (§5.4, §7.1 rules 1–3), and
whether the requester's message is authentic, is decided before it is asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from node.errors import (
    CategoryNotInCatalogue,
    ConvenantNotInForce,
    InputError,
    NoDetailRule,
    PartyWithdrawn,
    PurposeNotAllowed,
    RecipientNotAllowed,
    Refusal,
    RoleNotAllowed,
)
from node.protocol.convenant import Convenant, DetailRule
from node.protocol.models import rfc3339
from node.protocol.withdrawal import Withdrawal, withdrawn

Outcome = Literal["allow", "deny", "needs_approval"]

# Rule names, as logged and as in §7.4.
PARTIES_NOT_WITHDRAWN = "parties-not-withdrawn"
CONVENANT_PERIOD = "convenant-period"
CATEGORY_IN_CATALOGUE = "category-in-catalogue"
DETAIL_RULE_EXISTS = "detail-rule-exists"
RECIPIENT_LISTED = "recipient-listed"
ROLE_ALLOWED = "recipient-role-allowed"
PURPOSE_ALLOWED = "purpose-allowed"
LIAISON_APPROVAL = "liaison-approval"
ALLOW = "allow"
FAIL_CLOSED = "fail-closed"


@dataclass(frozen=True)
class DetailQuestion:
    """One category asked of ``provider`` by ``requester`` (a node id) for ``purpose``.

    ``requester_role`` is the local API role, at the requester, of the user who asks; the
    requester's node vouches for it in its signed request.
    """

    conv: Convenant
    provider: str
    requester: str
    requester_role: str
    purpose: str
    category: str
    now: datetime
    # Installed withdrawals from this convenant id (§5.7); the caller passes them from its
    # trust snapshot. Empty: nobody withdrew.
    withdrawals: tuple[Withdrawal, ...] = ()

    @property
    def rule(self) -> DetailRule | None:
        return self.conv.detail_rule(self.provider, self.category)


@dataclass(frozen=True)
class CategoryDecision:
    category: str
    outcome: Outcome
    rule: str
    refusal: Refusal | None = None
    # The convenant's detail rule that applies, once one was found: the caller needs its
    # retention and approval settings, and the log names it.
    detail_rule: DetailRule | None = None

    @property
    def reason(self) -> str | None:
        return self.refusal.code if self.refusal else None


# A check returns None to pass the question on, or the decision that ends the chain.
Check = Callable[[DetailQuestion], CategoryDecision | None]


def _deny(q: DetailQuestion, rule: str, refusal: Refusal) -> CategoryDecision:
    return CategoryDecision(q.category, "deny", rule, refusal, q.rule)


def parties_not_withdrawn(q: DetailQuestion) -> CategoryDecision | None:
    # First: a party that withdrew neither shares nor receives anything from then on,
    # whatever the convenant's rules still say about it.
    for who, node_id in (("provider", q.provider), ("recipient", q.requester)):
        w = withdrawn(q.withdrawals, q.conv, node_id, q.now)
        if w is not None:
            return _deny(
                q,
                PARTIES_NOT_WITHDRAWN,
                PartyWithdrawn(
                    f"{who} {node_id} withdrew from convenant {q.conv.id} "
                    f"at {rfc3339(w.withdrawn_at)}"
                ),
            )
    return None


def convenant_period(q: DetailQuestion) -> CategoryDecision | None:
    # To the second, as §5.4: valid_from ≤ now < valid_until.
    if q.now < q.conv.valid_from:
        return _deny(
            q,
            CONVENANT_PERIOD,
            ConvenantNotInForce(
                f"convenant {q.conv.id} v{q.conv.version} starts {q.conv.valid_from:%Y-%m-%d}"
            ),
        )
    if q.now >= q.conv.valid_until:
        return _deny(
            q,
            CONVENANT_PERIOD,
            ConvenantNotInForce(
                f"convenant {q.conv.id} v{q.conv.version} expired {q.conv.valid_until:%Y-%m-%d}"
            ),
        )
    return None


def category_in_catalogue(q: DetailQuestion) -> CategoryDecision | None:
    if q.conv.category(q.category) is None:
        return _deny(
            q,
            CATEGORY_IN_CATALOGUE,
            CategoryNotInCatalogue(f"{q.category!r} is not a category of convenant {q.conv.id}"),
        )
    return None


def detail_rule_exists(q: DetailQuestion) -> CategoryDecision | None:
    # Also refuses a provider that is no party or no provider: rules name providers only.
    if q.rule is None:
        return _deny(
            q,
            DETAIL_RULE_EXISTS,
            NoDetailRule(f"{q.provider} shares no {q.category!r} under {q.conv.id}"),
        )
    return None


def recipient_listed(q: DetailQuestion) -> CategoryDecision | None:
    # Before role and purpose: a node that is not a recipient is refused whatever it
    # claims about its user or its reason for asking.
    rule = q.rule
    if rule is None or q.requester not in rule.recipients:
        return _deny(
            q,
            RECIPIENT_LISTED,
            RecipientNotAllowed(f"{q.requester} may not receive {q.category!r} of {q.provider}"),
        )
    return None


def role_allowed(q: DetailQuestion) -> CategoryDecision | None:
    rule = q.rule
    if rule is None or q.requester_role not in rule.recipient_roles:
        return _deny(
            q,
            ROLE_ALLOWED,
            RoleNotAllowed(f"role {q.requester_role!r} may not see {q.category!r}"),
        )
    return None


def purpose_allowed(q: DetailQuestion) -> CategoryDecision | None:
    rule = q.rule
    if rule is None or q.purpose not in rule.purposes:
        return _deny(
            q,
            PURPOSE_ALLOWED,
            PurposeNotAllowed(f"{q.category!r} is not shared for purpose {q.purpose!r}"),
        )
    return None


def liaison_approval(q: DetailQuestion) -> CategoryDecision | None:
    rule = q.rule
    if rule is not None and rule.approval == "liaison":
        return CategoryDecision(q.category, "needs_approval", LIAISON_APPROVAL, None, rule)
    return None


def allow(q: DetailQuestion) -> CategoryDecision | None:
    # The one place that allows, and only with a rule in hand.
    rule = q.rule
    if rule is None:
        return None
    return CategoryDecision(q.category, "allow", ALLOW, None, rule)


# §7.4, in order.
CHECKS: tuple[Check, ...] = (
    parties_not_withdrawn,
    convenant_period,
    category_in_catalogue,
    detail_rule_exists,
    recipient_listed,
    role_allowed,
    purpose_allowed,
    liaison_approval,
    allow,
)


def first_decision(checks: Iterable[Check], q: DetailQuestion) -> CategoryDecision:
    """Run ``checks`` in order; the first decision wins. None decided (or none given): deny."""
    for check in checks:
        decision = check(q)
        if decision is not None:
            return decision
    return _deny(q, FAIL_CLOSED, NoDetailRule(f"no rule allows {q.category!r}"))


def decide_category(
    conv: Convenant,
    provider: str,
    requester: str,
    requester_role: str,
    purpose: str,
    category: str,
    now: datetime,
    withdrawals: tuple[Withdrawal, ...] = (),
) -> CategoryDecision:
    """§7.4: may ``provider`` give ``category`` to ``requester`` for ``purpose``, now?"""
    q = DetailQuestion(
        conv, provider, requester, requester_role, purpose, category, now, withdrawals
    )
    return first_decision(CHECKS, q)


def decide_request(
    conv: Convenant,
    provider: str,
    requester: str,
    requester_role: str,
    purpose: str,
    categories: Sequence[str],
    now: datetime,
    withdrawals: tuple[Withdrawal, ...] = (),
) -> tuple[CategoryDecision, ...]:
    """One decision per category, in the order asked.

    Raises InputError if a category is asked twice: one request, one decision per
    category, so an approval or a log entry can never be ambiguous about which it meant.
    """
    if len(set(categories)) != len(categories):
        raise InputError("a category is asked twice in one detail request")
    return tuple(
        decide_category(conv, provider, requester, requester_role, purpose, c, now, withdrawals)
        for c in categories
    )


def retention_deadline(rule: DetailRule, received_at: datetime) -> datetime:
    """When the recipient must have deleted detail received at ``received_at`` (§5.6).

    Raises InputError for a naive ``received_at``: a deadline in no time zone would be
    purged at a different instant on every host.
    """
    if received_at.tzinfo is None:
        raise InputError("received_at needs a time zone")
    return received_at + timedelta(days=rule.max_retention_days)


@dataclass(frozen=True)
class HitNotice:
    """Whether ``provider``'s liaison is told of a hit, and which categories' rules ask it."""

    required: bool
    rule: str
    categories: tuple[str, ...]


NOTIFY_HIT = "notify-hit"
NO_NOTIFY_HIT = "no-notify-hit"


def hit_notice_required(
    conv: Convenant,
    provider: str,
    categories: Iterable[str] | None = None,
    *,
    requester: str | None = None,
    purpose: str | None = None,
) -> HitNotice:
    """§5.6 ``notify_hit``: required iff a detail rule of ``provider`` asks for it.

    With ``categories``, only the rules of those categories count (the categories of a
    detail request); without, every rule of ``provider``. With ``requester``, only the
    rules that list it among their recipients: a notice tells the provider whom the
    requester discusses, which the convenant agreed to only for the rule's recipients.
    With ``purpose`` (the round's), only the rules that share for that purpose: a round
    for another purpose is none of the rule's business. No rule: no notice.
    """
    wanted = None if categories is None else set(categories)
    asking = tuple(
        r.category
        for r in conv.detail_rules
        if r.provider == provider
        and r.notify_hit
        and (wanted is None or r.category in wanted)
        and (requester is None or requester in r.recipients)
        and (purpose is None or purpose in r.purposes)
    )
    return HitNotice(bool(asking), NOTIFY_HIT if asking else NO_NOTIFY_HIT, asking)
