"""A federation for the detail exchange (docs/protocol.md §14): the standard four nodes
under a convenant with a category catalogue and detail rules, registrations that carry
detail texts, and a helper that runs the bekendheid round a detail request follows.

Rules (provider / category → recipients, roles, purposes, approval, days, notify_hit):

- politie-test / contactpersoon → vh-test; coordinator, liaison; PURPOSE; none; 30; no
- politie-test / samenvatting_antecedenten → vh-test; coordinator; PURPOSE; liaison; 14; yes
- om-test / lopend_traject → vh-test, politie-test; coordinator; PURPOSE; none; 30; no
- ggz-test / zorgcontact → vh-test; coordinator; OTHER_PURPOSE only; none; 7; no

``toezicht`` is in the catalogue but no rule shares it. ``liaison_approves`` names the
politie categories whose rule needs the liaison's approval (by default only
samenvatting_antecedenten); ``registrations`` replaces Jan and Piet with a test's own.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.federation import (
    DEFAULT_PARTIES,
    OTHER_PURPOSE,
    PURPOSE,
    Federation,
    convenant_toml,
)

JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
PIET_BSN = {"kind": "bsn", "bsn": "111222333"}
NOBODY_BSN = {"kind": "bsn", "bsn": "999999990"}

CONTACT = "contactpersoon"
ANTECEDENTS = "samenvatting_antecedenten"
TRAJECT = "lopend_traject"
CARE = "zorgcontact"
SUPERVISION = "toezicht"

JAN_CONTACT = "Wijkagent J. de Vries, 06-12345678"
JAN_ANTECEDENTS = "3 aangiftes winkeldiefstal 2025; geen geweld"
JAN_TRAJECT = "Strafzaak winkeldiefstal, zitting 2027-01-12"


def detail_rules_toml(liaison_approves: Collection[str] = (ANTECEDENTS,)) -> str:
    def rule(
        provider: str,
        category: str,
        recipients: list[str],
        roles: list[str],
        purposes: list[str],
        approval: str,
        days: int,
        notify: bool,
    ) -> str:
        q = ", ".join
        return f"""
[[detail_rules]]
provider = "{provider}"
category = "{category}"
recipients = [{q('"' + r + '"' for r in recipients)}]
recipient_roles = [{q('"' + r + '"' for r in roles)}]
purposes = [{q('"' + p + '"' for p in purposes)}]
approval = "{approval}"
max_retention_days = {days}
notify_hit = {"true" if notify else "false"}
"""

    def approval(category: str) -> str:
        return "liaison" if category in liaison_approves else "none"

    catalogue = "".join(
        f'\n[[categories]]\nid = "{c}"\ndescription = "Testcategorie {c}"\n'
        for c in (CONTACT, ANTECEDENTS, TRAJECT, CARE, SUPERVISION)
    )
    return (
        catalogue
        + rule("politie-test", CONTACT, ["vh-test"], ["coordinator", "liaison"], [PURPOSE],
               approval(CONTACT), 30, False)
        + rule("politie-test", ANTECEDENTS, ["vh-test"], ["coordinator"], [PURPOSE],
               approval(ANTECEDENTS), 14, True)
        + rule("om-test", TRAJECT, ["vh-test", "politie-test"], ["coordinator"], [PURPOSE],
               "none", 30, False)
        + rule("ggz-test", CARE, ["vh-test"], ["coordinator"], [OTHER_PURPOSE], "none", 7, False)
    )  # fmt: skip


def detail_convenant_toml(
    *,
    both_purposes: bool = False,
    liaison_approves: Collection[str] = (ANTECEDENTS,),
    **kwargs: Any,
) -> str:
    """``both_purposes``: the requesters may ask bekendheid under OTHER_PURPOSE too."""
    toml = convenant_toml(DEFAULT_PARTIES, extra=detail_rules_toml(liaison_approves), **kwargs)
    if both_purposes:
        toml = toml.replace(
            f'query_purposes = ["{PURPOSE}"]', f'query_purposes = ["{PURPOSE}", "{OTHER_PURPOSE}"]'
        )
    return toml


async def detail_federation(
    root: Path,
    *,
    both_purposes: bool = False,
    liaison_approves: Collection[str] = (ANTECEDENTS,),
    registrations: Mapping[str, Sequence[dict[str, Any]]] | None = None,
    **convenant: Any,
) -> Federation:
    """Four nodes under the detail convenant; Jan is known to politie, om and ggz with
    detail texts; Piet only to politie, without any detail text. ``registrations`` (node
    id → records) instead of Jan and Piet. ``convenant``: keyword arguments of
    ``convenant_toml`` (``valid_until``, say)."""
    fed = Federation(root)
    for node_id, org_type, _, _ in DEFAULT_PARTIES:
        fed.add_node(node_id, org_type)
    fed.exchange_cards()
    fed.sign_and_install(
        detail_convenant_toml(
            both_purposes=both_purposes, liaison_approves=liaison_approves, **convenant
        )
    )
    if registrations is not None:
        for node_id, records in registrations.items():
            fed.register(node_id, *records)
        await fed.start()
        return fed
    fed.register(
        "politie-test",
        {
            "ref": "BVH-1",
            "themes": ["veelplegers"],
            "identifiers": [JAN_BSN],
            "details": {CONTACT: JAN_CONTACT, ANTECEDENTS: JAN_ANTECEDENTS},
        },
        {"ref": "BVH-2", "themes": ["veelplegers"], "identifiers": [PIET_BSN]},
    )
    fed.register(
        "om-test",
        {
            "ref": "OM-1",
            "themes": ["veelplegers"],
            "identifiers": [JAN_BSN],
            "details": {TRAJECT: JAN_TRAJECT},
        },
    )
    fed.register(
        "ggz-test",
        {"ref": "GGZ-1", "themes": ["zorg"], "identifiers": [JAN_BSN],
         "details": {CARE: "ja"}},
    )  # fmt: skip
    await fed.start()
    return fed


async def hit_round(
    fed: Federation,
    requester: str = "vh-test",
    subjects: list[dict[str, Any]] | None = None,
    purpose: str = PURPOSE,
) -> dict[str, Any]:
    """One bekendheid round; returns its result (``trace_id`` is the round's)."""
    return await fed.query(requester, subjects or [JAN_BSN], purpose=purpose)
