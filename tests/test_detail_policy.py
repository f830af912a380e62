"""Detail policy as data: the convenant's catalogue and detail rules, and the decisions.

Stage 2, first slice (docs/protocol.md §5.6, §7.4): pure decisions only, no flow. The
decision tables hold one small case each, like python-tuf's key-rotation tables; the
exhaustive test walks every combination of a small domain and checks the invariants a
decision must keep whatever the inputs (hypothesis is not a dependency; the domain is
small enough to enumerate).
"""

from __future__ import annotations

import itertools
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest

from node.errors import DETAIL_REFUSAL_CODES, REFUSAL_CODES, InputError, MalformedMessage
from node.policy import detail
from node.policy.detail import (
    CHECKS,
    CategoryDecision,
    DetailQuestion,
    decide_category,
    decide_request,
    first_decision,
    hit_notice_required,
    retention_deadline,
)
from node.protocol.convenant import (
    Convenant,
    RecipientRole,
    draft_from_toml,
    parse_convenant,
)
from node.protocol.models import parse_model
from node.protocol.withdrawal import Withdrawal
from node.store.users import Role as LocalRole
from tests.federation import (
    DEFAULT_PARTIES,
    OTHER_PURPOSE,
    PURPOSE,
    convenant_toml,
    toml_time,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2027, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)

CATALOGUE = textwrap.dedent("""
    [[categories]]
    id = "contactpersoon"
    description = "Naam en bereikbaarheid van de contactpersoon bij de partner"

    [[categories]]
    id = "lopend_traject"
    description = "Of er een lopend traject is, en welk"

    [[categories]]
    id = "toezicht"
    description = "Lopend toezicht en de bijzondere voorwaarden"

    [[categories]]
    id = "samenvatting_antecedenten"
    description = "Samenvatting van de antecedenten"

    [[categories]]
    id = "zorgcontact"
    description = "Of er zorgcontact is (ja/nee)"
    """)

RULES = textwrap.dedent(f"""
    [[detail_rules]]
    provider = "politie-test"
    category = "contactpersoon"
    recipients = ["vh-test"]
    recipient_roles = ["coordinator", "liaison"]
    purposes = ["{PURPOSE}", "{OTHER_PURPOSE}"]
    approval = "none"
    max_retention_days = 30
    notify_hit = false

    [[detail_rules]]
    provider = "politie-test"
    category = "samenvatting_antecedenten"
    recipients = ["vh-test"]
    recipient_roles = ["coordinator"]
    purposes = ["{PURPOSE}"]
    approval = "liaison"
    max_retention_days = 90
    notify_hit = true

    [[detail_rules]]
    provider = "om-test"
    category = "lopend_traject"
    recipients = ["vh-test", "politie-test"]
    recipient_roles = ["coordinator"]
    purposes = ["{PURPOSE}"]
    approval = "none"
    max_retention_days = 180
    notify_hit = false

    [[detail_rules]]
    provider = "ggz-test"
    category = "zorgcontact"
    recipients = ["vh-test"]
    recipient_roles = ["coordinator"]
    purposes = ["{PURPOSE}"]
    approval = "liaison"
    max_retention_days = 30
    notify_hit = true
    """)
# "toezicht" is in the catalogue but no party shares it: no_detail_rule, not unknown.

# The federation's parties plus a requester that provides nothing.
PARTIES = (*DEFAULT_PARTIES, ("gemeente-test", "gemeente", (), True))
CARDS = {
    node_id: {
        "organisation": f"{org} testregio",
        "org_type": org,
        "signing_fingerprint": f"{i:064x}",
        "encryption_fingerprint": f"{i + 100:064x}",
    }
    for i, (node_id, org, _, _) in enumerate(PARTIES)
}


def _toml(extra: str = CATALOGUE + RULES) -> str:
    base = convenant_toml(PARTIES, valid_from=toml_time(START), valid_until=toml_time(END))
    return base + extra


def _convenant(extra: str = CATALOGUE + RULES) -> Convenant:
    conv, _ = parse_convenant(draft_from_toml(_toml(extra), CARDS).to_json())
    return conv


CONV = _convenant()
BARE = _convenant("")  # a convenant from before stage 2: no catalogue, no rules
CATALOGUE_ONLY = _convenant(CATALOGUE)


# --- decisions, one case per row ----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    outcome: str
    rule: str
    reason: str | None = None
    category: str = "contactpersoon"
    provider: str = "politie-test"
    requester: str = "vh-test"
    role: str = "coordinator"
    purpose: str = PURPOSE
    now: datetime = NOW
    conv: Convenant = CONV
    withdrawals: tuple[Withdrawal, ...] = ()


def _withdrawal(party: str, at: datetime = NOW) -> tuple[Withdrawal, ...]:
    """``party``'s withdrawal from CONV (v1) taking effect at ``at`` (§5.7)."""
    return (
        Withdrawal(
            convenant_id=CONV.id,
            convenant_version=CONV.version,
            party=party,
            withdrawn_at=at,
            reason="Wij treden uit het convenant",
        ),
    )


CASES = [
    # allow: every condition of the rule met, no approval asked
    Case("allowed", "allow", "allow"),
    Case("allowed-other-listed-role", "allow", "allow", role="liaison"),
    Case("allowed-other-listed-purpose", "allow", "allow", purpose=OTHER_PURPOSE),
    Case(
        "allowed-second-recipient",
        "allow",
        "allow",
        provider="om-test",
        category="lopend_traject",
        requester="politie-test",
    ),
    Case("allowed-at-valid-from", "allow", "allow", now=START),
    Case("allowed-one-second-before-valid-until", "allow", "allow", now=END - SECOND),
    Case(
        "allowed-a-microsecond-before-valid-until",
        "allow",
        "allow",
        now=END - timedelta(microseconds=1),
    ),
    # needs_approval: everything allowed, but a person at the provider must agree
    Case(
        "antecedents-need-liaison",
        "needs_approval",
        "liaison-approval",
        category="samenvatting_antecedenten",
    ),
    Case(
        "care-contact-needs-liaison",
        "needs_approval",
        "liaison-approval",
        provider="ggz-test",
        category="zorgcontact",
    ),
    # rule 0: neither side has withdrawn (§5.7), from withdrawn_at on, to the second
    Case(
        "provider-withdrawn",
        "deny",
        "parties-not-withdrawn",
        "party_withdrawn",
        withdrawals=_withdrawal("politie-test"),
    ),
    Case(
        "recipient-withdrawn",
        "deny",
        "parties-not-withdrawn",
        "party_withdrawn",
        withdrawals=_withdrawal("vh-test", NOW - timedelta(days=1)),
    ),
    Case(
        "withdrawn-even-where-approval-would-be-asked",
        "deny",
        "parties-not-withdrawn",
        "party_withdrawn",
        category="samenvatting_antecedenten",
        withdrawals=_withdrawal("politie-test"),
    ),
    Case(
        "allowed-a-second-before-withdrawal",
        "allow",
        "allow",
        withdrawals=_withdrawal("politie-test", NOW + SECOND),
    ),
    Case(
        "withdrawal-of-a-bystander-changes-nothing",
        "allow",
        "allow",
        withdrawals=_withdrawal("ggz-test"),
    ),
    # rule 1: the convenant's period, to the second
    Case("at-valid-until", "deny", "convenant-period", "convenant_not_in_force", now=END),
    Case(
        "long-expired",
        "deny",
        "convenant-period",
        "convenant_not_in_force",
        now=END + timedelta(days=400),
    ),
    Case(
        "before-valid-from",
        "deny",
        "convenant-period",
        "convenant_not_in_force",
        now=START - SECOND,
    ),
    Case(
        "expired-even-where-approval-would-be-asked",
        "deny",
        "convenant-period",
        "convenant_not_in_force",
        category="samenvatting_antecedenten",
        now=END,
    ),
    # rule 2: the catalogue
    Case(
        "unknown-category",
        "deny",
        "category-in-catalogue",
        "unknown_category",
        category="strafblad",
    ),
    Case("empty-category", "deny", "category-in-catalogue", "unknown_category", category=""),
    Case(
        "bare-convenant-fails-closed",
        "deny",
        "category-in-catalogue",
        "unknown_category",
        conv=BARE,
    ),
    # rule 3: a rule for (provider, category)
    Case(
        "catalogued-but-nobody-shares-it",
        "deny",
        "detail-rule-exists",
        "no_detail_rule",
        category="toezicht",
    ),
    Case(
        "rule-of-another-provider",
        "deny",
        "detail-rule-exists",
        "no_detail_rule",
        provider="ggz-test",
        category="contactpersoon",
    ),
    Case(
        "provider-not-a-party",
        "deny",
        "detail-rule-exists",
        "no_detail_rule",
        provider="buurman-test",
    ),
    Case(
        "catalogue-without-rules-fails-closed",
        "deny",
        "detail-rule-exists",
        "no_detail_rule",
        conv=CATALOGUE_ONLY,
    ),
    # rule 4: the requesting node is a recipient
    Case(
        "party-not-a-recipient",
        "deny",
        "recipient-listed",
        "recipient_not_allowed",
        requester="om-test",
    ),
    Case(
        "recipient-of-another-category",
        "deny",
        "recipient-listed",
        "recipient_not_allowed",
        requester="politie-test",
    ),
    Case(
        "requester-never-named",
        "deny",
        "recipient-listed",
        "recipient_not_allowed",
        requester="gemeente-test",
    ),
    Case("stranger", "deny", "recipient-listed", "recipient_not_allowed", requester="buurman-test"),
    Case(
        "provider-asking-itself",
        "deny",
        "recipient-listed",
        "recipient_not_allowed",
        requester="politie-test",
        provider="politie-test",
    ),
    # rule 5: the requesting user's role
    Case(
        "role-not-listed",
        "deny",
        "recipient-role-allowed",
        "role_not_allowed",
        role="privacy_officer",
    ),
    Case(
        "liaison-not-listed-for-antecedents",
        "deny",
        "recipient-role-allowed",
        "role_not_allowed",
        category="samenvatting_antecedenten",
        role="liaison",
    ),
    Case("admin-never", "deny", "recipient-role-allowed", "role_not_allowed", role="admin"),
    Case("unknown-role", "deny", "recipient-role-allowed", "role_not_allowed", role="chef"),
    # rule 6: the purpose
    Case(
        "purpose-not-listed",
        "deny",
        "purpose-allowed",
        "purpose_not_allowed",
        category="samenvatting_antecedenten",
        purpose=OTHER_PURPOSE,
    ),
    Case(
        "purpose-not-in-convenant",
        "deny",
        "purpose-allowed",
        "purpose_not_allowed",
        purpose="nieuwsgierigheid",
    ),
    Case("empty-purpose", "deny", "purpose-allowed", "purpose_not_allowed", purpose=""),
    # rule order: the first failing rule is named
    Case(
        "stranger-with-bad-role-and-purpose",
        "deny",
        "recipient-listed",
        "recipient_not_allowed",
        requester="buurman-test",
        role="admin",
        purpose="",
    ),
    Case(
        "bad-role-and-purpose",
        "deny",
        "recipient-role-allowed",
        "role_not_allowed",
        role="source",
        purpose="",
    ),
    Case(
        "unknown-category-after-expiry",
        "deny",
        "convenant-period",
        "convenant_not_in_force",
        category="strafblad",
        now=END,
    ),
]


def _decide(case: Case) -> CategoryDecision:
    return decide_category(
        case.conv,
        case.provider,
        case.requester,
        case.role,
        case.purpose,
        case.category,
        case.now,
        case.withdrawals,
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_decide_category_names_the_rule_that_decided(case: Case) -> None:
    d = _decide(case)
    assert (d.outcome, d.rule, d.reason) == (case.outcome, case.rule, case.reason)
    assert d.category == case.category
    assert (d.refusal is not None) is (d.outcome == "deny")
    if d.refusal is not None:
        assert d.refusal.detail
        assert d.reason in DETAIL_REFUSAL_CODES
    if d.outcome != "deny":
        # Whoever acts on an allow or an approval needs the rule's retention and approval.
        assert d.detail_rule is not None
        assert (d.detail_rule.provider, d.detail_rule.category) == (case.provider, case.category)


def test_cases_cover_every_rule_and_every_code() -> None:
    decided = [_decide(c) for c in CASES]
    assert {d.rule for d in decided} == {
        "parties-not-withdrawn",
        "convenant-period",
        "category-in-catalogue",
        "detail-rule-exists",
        "recipient-listed",
        "recipient-role-allowed",
        "purpose-allowed",
        "liaison-approval",
        "allow",
    }
    assert {d.reason for d in decided} - {None} == set(DETAIL_REFUSAL_CODES)


def test_every_check_is_named_in_the_order_of_the_spec() -> None:
    assert [c.__name__ for c in CHECKS] == [
        "parties_not_withdrawn",
        "convenant_period",
        "category_in_catalogue",
        "detail_rule_exists",
        "recipient_listed",
        "role_allowed",
        "purpose_allowed",
        "liaison_approval",
        "allow",
    ]


# --- fail closed ------------------------------------------------------------------------


def _question(**kw: Any) -> DetailQuestion:
    args: dict[str, Any] = {
        "conv": CONV,
        "provider": "politie-test",
        "requester": "vh-test",
        "requester_role": "coordinator",
        "purpose": PURPOSE,
        "category": "contactpersoon",
        "now": NOW,
    }
    args.update(kw)
    return DetailQuestion(**args)


@pytest.mark.parametrize(
    "checks",
    [(), CHECKS[:-1], (detail.convenant_period, detail.recipient_listed)],
    ids=["no-checks", "all-but-allow", "checks-that-only-refuse"],
)
def test_a_chain_that_decides_nothing_denies(checks: tuple[detail.Check, ...]) -> None:
    d = first_decision(checks, _question())
    assert (d.outcome, d.rule, d.reason) == ("deny", "fail-closed", "no_detail_rule")


def test_allow_alone_never_allows_without_a_rule() -> None:
    d = first_decision((detail.allow,), _question(category="toezicht"))
    assert (d.outcome, d.rule) == ("deny", "fail-closed")


# The policy sees only the requester's node id: a node that is not a recipient is refused
# at rule 4 whatever role or purpose it claims, for every category someone does share.
ROLES = [*get_args(LocalRole), "", "chef"]
PURPOSES = [PURPOSE, OTHER_PURPOSE, "", "nieuwsgierigheid"]
NON_RECIPIENTS = [
    (r.provider, r.category, node_id)
    for r in CONV.detail_rules
    for node_id in [*(p[0] for p in PARTIES), "buurman-test"]
    if node_id not in r.recipients
]


@pytest.mark.parametrize(("provider", "category", "requester"), NON_RECIPIENTS)
def test_a_non_recipient_is_refused_whatever_role_or_purpose(
    provider: str, category: str, requester: str
) -> None:
    for role, purpose in itertools.product(ROLES, PURPOSES):
        d = decide_category(CONV, provider, requester, role, purpose, category, NOW)
        assert (d.outcome, d.rule, d.reason) == (
            "deny",
            "recipient-listed",
            "recipient_not_allowed",
        ), (role, purpose)


NODES = [p[0] for p in PARTIES] + ["buurman-test"]
CATEGORY_IDS = [c.id for c in CONV.categories] + ["strafblad"]
TIMES = [START - SECOND, START, NOW, END - SECOND, END]
KNOWN_RULES = {
    "convenant-period",
    "category-in-catalogue",
    "detail-rule-exists",
    "recipient-listed",
    "recipient-role-allowed",
    "purpose-allowed",
    "liaison-approval",
    "allow",
}


def test_invariants_over_the_whole_small_domain() -> None:
    """Every combination of provider, requester, role, purpose, category and time."""
    seen: set[str] = set()
    for provider, requester, role, purpose, category, now in itertools.product(
        NODES, NODES, ROLES, PURPOSES, CATEGORY_IDS, TIMES
    ):
        d = decide_category(CONV, provider, requester, role, purpose, category, now)
        seen.add(d.outcome)
        assert d.rule in KNOWN_RULES
        rule = CONV.detail_rule(provider, category)
        granted = (
            START <= now < END
            and rule is not None
            and requester in rule.recipients
            and role in rule.recipient_roles
            and purpose in rule.purposes
        )
        if not granted:
            assert d.outcome == "deny"
            assert d.reason in DETAIL_REFUSAL_CODES
        else:
            assert rule is not None
            expected = "needs_approval" if rule.approval == "liaison" else "allow"
            assert (d.outcome, d.refusal, d.detail_rule) == (expected, None, rule)
    assert seen == {"allow", "deny", "needs_approval"}


# --- a request of several categories ------------------------------------------------------


def test_decide_request_gives_one_decision_per_category_in_order() -> None:
    asked = ["samenvatting_antecedenten", "strafblad", "contactpersoon", "toezicht"]
    ds = decide_request(CONV, "politie-test", "vh-test", "coordinator", PURPOSE, asked, NOW)
    assert [(d.category, d.outcome, d.rule) for d in ds] == [
        ("samenvatting_antecedenten", "needs_approval", "liaison-approval"),
        ("strafblad", "deny", "category-in-catalogue"),
        ("contactpersoon", "allow", "allow"),
        ("toezicht", "deny", "detail-rule-exists"),
    ]


def test_decide_request_expired_denies_every_category() -> None:
    asked = ["samenvatting_antecedenten", "contactpersoon"]
    ds = decide_request(CONV, "politie-test", "vh-test", "coordinator", PURPOSE, asked, END)
    assert {(d.outcome, d.reason) for d in ds} == {("deny", "convenant_not_in_force")}


def test_decide_request_refuses_a_category_asked_twice() -> None:
    with pytest.raises(InputError, match="twice"):
        decide_request(
            CONV,
            "politie-test",
            "vh-test",
            "coordinator",
            PURPOSE,
            ["contactpersoon", "contactpersoon"],
            NOW,
        )


def test_decide_request_of_nothing_decides_nothing() -> None:
    assert decide_request(CONV, "politie-test", "vh-test", "coordinator", PURPOSE, [], NOW) == ()


# --- retention and hit notices ------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "category", "days"),
    [
        ("politie-test", "contactpersoon", 30),
        ("politie-test", "samenvatting_antecedenten", 90),
        ("om-test", "lopend_traject", 180),
    ],
)
def test_retention_deadline_is_received_at_plus_the_rules_days(
    provider: str, category: str, days: int
) -> None:
    rule = CONV.detail_rule(provider, category)
    assert rule is not None
    received = datetime(2026, 3, 29, 1, 30, 5, tzinfo=UTC)  # across a DST change: UTC days
    assert retention_deadline(rule, received) == received + timedelta(days=days)


def test_retention_deadline_refuses_a_naive_time() -> None:
    rule = CONV.detail_rule("politie-test", "contactpersoon")
    assert rule is not None
    with pytest.raises(InputError, match="time zone"):
        retention_deadline(rule, datetime(2026, 3, 1))  # naive on purpose: refused


@pytest.mark.parametrize(
    ("conv", "provider", "categories", "required", "rule", "by"),
    [
        (CONV, "politie-test", None, True, "notify-hit", ("samenvatting_antecedenten",)),
        (CONV, "politie-test", ["contactpersoon"], False, "no-notify-hit", ()),
        (
            CONV,
            "politie-test",
            ["contactpersoon", "samenvatting_antecedenten"],
            True,
            "notify-hit",
            ("samenvatting_antecedenten",),
        ),
        (CONV, "politie-test", [], False, "no-notify-hit", ()),
        (CONV, "ggz-test", None, True, "notify-hit", ("zorgcontact",)),
        (CONV, "om-test", None, False, "no-notify-hit", ()),
        (CONV, "vh-test", None, False, "no-notify-hit", ()),
        (CONV, "buurman-test", None, False, "no-notify-hit", ()),
        (BARE, "politie-test", None, False, "no-notify-hit", ()),
    ],
)
def test_hit_notice_follows_the_providers_rules(
    conv: Convenant,
    provider: str,
    categories: list[str] | None,
    required: bool,
    rule: str,
    by: tuple[str, ...],
) -> None:
    notice = hit_notice_required(conv, provider, categories)
    assert (notice.required, notice.rule, notice.categories) == (required, rule, by)


@pytest.mark.parametrize(
    ("provider", "requester", "required", "by"),
    [
        ("politie-test", "vh-test", True, ("samenvatting_antecedenten",)),
        ("politie-test", "politie-test", False, ()),
        ("politie-test", "gemeente-test", False, ()),
        ("ggz-test", "vh-test", True, ("zorgcontact",)),
        ("om-test", "politie-test", False, ()),
    ],
)
def test_hit_notice_only_for_a_requester_the_notifying_rule_serves(
    provider: str, requester: str, required: bool, by: tuple[str, ...]
) -> None:
    notice = hit_notice_required(CONV, provider, requester=requester)
    assert (notice.required, notice.categories) == (required, by)


def test_hit_notice_only_for_a_purpose_the_notifying_rule_serves() -> None:
    rule = next(r for r in CONV.detail_rules if r.provider == "politie-test" and r.notify_hit)
    (purpose,) = [p.id for p in CONV.purposes if p.id in rule.purposes][:1]
    others = [p.id for p in CONV.purposes if p.id not in rule.purposes]
    assert others, "the test convenant needs a purpose the notifying rule does not serve"
    assert hit_notice_required(CONV, "politie-test", purpose=purpose).required
    assert not hit_notice_required(CONV, "politie-test", purpose=others[0]).required


# --- the document: validation, TOML, backwards compatibility ------------------------------


def _rule(**kw: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "provider": "politie-test",
        "category": "contactpersoon",
        "recipients": ["vh-test"],
        "recipient_roles": ["coordinator"],
        "purposes": [PURPOSE],
        "approval": "none",
        "max_retention_days": 30,
        "notify_hit": False,
    }
    rule.update(kw)
    return rule


def _with_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    obj = CONV.wire()
    obj["detail_rules"] = list(rules)
    return obj


@dataclass(frozen=True)
class BadDocument:
    id: str
    obj: dict[str, Any]
    message: str


BAD_DOCUMENTS = [
    BadDocument(
        "unknown-provider",
        _with_rules(_rule(provider="buurman-test")),
        "buurman-test is not a party with role provider",
    ),
    BadDocument(
        "provider-without-role-provider",
        _with_rules(_rule(provider="vh-test"), _rule(provider="gemeente-test")),
        "gemeente-test is not a party with role provider",
    ),
    BadDocument(
        "category-not-in-catalogue",
        _with_rules(_rule(category="strafblad")),
        "not in the catalogue",
    ),
    BadDocument(
        "duplicate-rule",
        _with_rules(_rule(), _rule(approval="liaison")),
        "a second rule for the same provider and category",
    ),
    BadDocument(
        "unknown-purpose",
        _with_rules(_rule(purposes=[PURPOSE, "nieuwsgierigheid"])),
        "unknown purpose 'nieuwsgierigheid'",
    ),
    BadDocument(
        "recipient-not-a-party",
        _with_rules(_rule(recipients=["buurman-test"])),
        "recipient buurman-test is not a party",
    ),
    BadDocument(
        "recipient-twice",
        _with_rules(_rule(recipients=["vh-test", "vh-test"])),
        "a recipient is listed twice",
    ),
    BadDocument("bad-recipient-id", _with_rules(_rule(recipients=["VH TEST"])), "bad recipient"),
    BadDocument("no-recipients", _with_rules(_rule(recipients=[])), "recipients"),
    BadDocument("no-roles", _with_rules(_rule(recipient_roles=[])), "recipient_roles"),
    BadDocument("no-purposes", _with_rules(_rule(purposes=[])), "purposes"),
    BadDocument("role-admin", _with_rules(_rule(recipient_roles=["admin"])), "recipient_roles"),
    BadDocument("role-source", _with_rules(_rule(recipient_roles=["source"])), "recipient_roles"),
    BadDocument(
        "role-twice",
        _with_rules(_rule(recipient_roles=["liaison", "liaison"])),
        "a recipient role is listed twice",
    ),
    BadDocument(
        "purpose-twice",
        _with_rules(_rule(purposes=[PURPOSE, PURPOSE])),
        "a purpose is listed twice",
    ),
    BadDocument("unknown-approval", _with_rules(_rule(approval="manager")), "approval"),
    BadDocument("retention-zero", _with_rules(_rule(max_retention_days=0)), "max_retention_days"),
    BadDocument(
        "retention-over-ten-years",
        _with_rules(_rule(max_retention_days=3651)),
        "max_retention_days",
    ),
    BadDocument(
        "retention-as-string", _with_rules(_rule(max_retention_days="30")), "max_retention_days"
    ),
    BadDocument("notify-hit-as-string", _with_rules(_rule(notify_hit="true")), "notify_hit"),
    BadDocument("notify-hit-as-int", _with_rules(_rule(notify_hit=1)), "notify_hit"),
    BadDocument("unknown-member", _with_rules(_rule(fields=["naam"])), "fields"),
    BadDocument(
        "missing-member",
        _with_rules({k: v for k, v in _rule().items() if k != "approval"}),
        "approval",
    ),
    BadDocument(
        "category-twice",
        {
            **CONV.wire(),
            "categories": [
                *CONV.wire()["categories"],
                {"id": "toezicht", "description": "nog eens"},
            ],
        },
        "a category is listed twice",
    ),
    BadDocument(
        "category-bad-id",
        {
            **CONV.wire(),
            "categories": [{"id": "Toezicht!", "description": "x"}],
            "detail_rules": [],
        },
        "categories",
    ),
]


@pytest.mark.parametrize("case", BAD_DOCUMENTS, ids=lambda c: c.id)
def test_a_bad_document_is_rejected(case: BadDocument) -> None:
    with pytest.raises(MalformedMessage) as e:
        parse_model(Convenant, case.obj)
    assert case.message in e.value.detail


def test_the_good_document_passes_the_same_path() -> None:
    assert parse_model(Convenant, _with_rules(_rule())).detail_rules[0].category == "contactpersoon"


def test_toml_round_trip() -> None:
    doc = draft_from_toml(_toml(), CARDS)
    conv, parsed = parse_convenant(doc.to_json())
    assert parsed.payload == conv.wire()
    assert [c.id for c in conv.categories] == [
        "contactpersoon",
        "lopend_traject",
        "toezicht",
        "samenvatting_antecedenten",
        "zorgcontact",
    ]
    rule = conv.detail_rule("politie-test", "samenvatting_antecedenten")
    assert rule is not None
    assert rule.model_dump() == {
        "provider": "politie-test",
        "category": "samenvatting_antecedenten",
        "recipients": ("vh-test",),
        "recipient_roles": ("coordinator",),
        "purposes": (PURPOSE,),
        "approval": "liaison",
        "max_retention_days": 90,
        "notify_hit": True,
    }
    # And back: the parsed document drafts to the same payload.
    assert parse_model(Convenant, conv.wire()) == conv


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            CATALOGUE + RULES.replace('"om-test"', '"buurman-test"', 1),
            "buurman-test is not a party with role provider",
        ),
        (RULES, "not in the catalogue"),
        (CATALOGUE + RULES + RULES, "a second rule"),
        (CATALOGUE + RULES.replace("approval", "goedkeuring", 1), "approval: Field required"),
    ],
    ids=["unknown-provider", "no-catalogue", "duplicate-rules", "misspelt-key"],
)
def test_toml_errors_are_input_errors(extra: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        draft_from_toml(_toml(extra), CARDS)


def test_a_convenant_without_detail_keeps_its_old_payload() -> None:
    # Drafted and signed before §5.6: the same payload, and it still parses.
    payload = draft_from_toml(_toml(""), CARDS).payload
    assert "categories" not in payload
    assert "detail_rules" not in payload
    assert parse_model(Convenant, payload) == BARE
    assert BARE.categories == ()
    assert BARE.detail_rules == ()


def test_recipient_roles_are_local_roles() -> None:
    assert set(get_args(RecipientRole)) <= set(get_args(LocalRole))


def test_detail_codes_stay_out_of_the_bekendheid_codes() -> None:
    # Only the convenant's own state is shared: expiry and a party's withdrawal mean the
    # same in both stages.
    assert set(DETAIL_REFUSAL_CODES) & set(REFUSAL_CODES) == {
        "convenant_not_in_force",
        "party_withdrawn",
    }


# --- the example convenant ----------------------------------------------------------------


def _example() -> Convenant:
    parties = {
        "vh-zwb": "veiligheidshuis",
        "politie-zwb": "politie",
        "om-zwb": "om",
        "reclassering-zwb": "reclassering",
        "ggz-zwb": "ggz",
        "gemeente-breda": "gemeente",
    }
    cards = {
        node_id: {
            "organisation": node_id,
            "org_type": org_type,
            "signing_fingerprint": f"{i:064x}",
            "encryption_fingerprint": f"{i + 9:064x}",
        }
        for i, (node_id, org_type) in enumerate(parties.items())
    }
    doc = draft_from_toml((CONFIG_DIR / "convenant.example.toml").read_text(), cards)
    return parse_convenant(doc.to_json())[0]


EXAMPLE_NOW = datetime(2027, 3, 1, tzinfo=UTC)
VEELPLEGERS = "casusoverleg-veelplegers"
HUISELIJK_GEWELD = "casusoverleg-huiselijk-geweld"


@pytest.mark.parametrize(
    ("provider", "category", "purpose", "outcome", "rule"),
    [
        ("politie-zwb", "contactpersoon", VEELPLEGERS, "allow", "allow"),
        ("politie-zwb", "contactpersoon", HUISELIJK_GEWELD, "allow", "allow"),
        (
            "politie-zwb",
            "samenvatting_antecedenten",
            VEELPLEGERS,
            "needs_approval",
            "liaison-approval",
        ),
        ("ggz-zwb", "zorgcontact", VEELPLEGERS, "needs_approval", "liaison-approval"),
        ("ggz-zwb", "contactpersoon", VEELPLEGERS, "deny", "detail-rule-exists"),
        ("ggz-zwb", "samenvatting_antecedenten", HUISELIJK_GEWELD, "deny", "detail-rule-exists"),
    ],
)
def test_example_convenant_decides_as_its_comments_say(
    provider: str, category: str, purpose: str, outcome: str, rule: str
) -> None:
    d = decide_category(
        _example(), provider, "vh-zwb", "coordinator", purpose, category, EXAMPLE_NOW
    )
    assert (d.outcome, d.rule) == (outcome, rule)


def test_example_antecedents_are_kept_ninety_days() -> None:
    rule = _example().detail_rule("politie-zwb", "samenvatting_antecedenten")
    assert rule is not None
    assert rule.max_retention_days == 90
