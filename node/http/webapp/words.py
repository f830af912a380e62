"""Words shared by the pages: a convenant's detail rule, roles, and the reasons a
category is denied or not available, in Dutch (docs/glossary.md's terms)."""

from __future__ import annotations

from typing import Any

from node.protocol.convenant import Convenant

APPROVAL_WORDS = {
    "liaison": "na goedkeuring door de contactpersoon",
    "none": "zonder goedkeuring (de node beslist)",
}
ROLE_WORDS = {
    "coordinator": "coördinator",
    "liaison": "contactpersoon",
    "privacy_officer": "FG",
    "admin": "beheerder",
    "source": "bronsysteem",
}

# Why a category is denied or not available (§7.4, §8.2, §14.3), as the requester reads it.
CATEGORY_REASON_WORDS = {
    "party_withdrawn": "een partij heeft zich uit het convenant teruggetrokken",
    "convenant_not_in_force": "het convenant is niet (meer) van kracht",
    "unknown_category": "deze categorie staat niet in de catalogus van het convenant",
    "no_detail_rule": "het convenant heeft geen regel waarmee de partner dit deelt",
    "recipient_not_allowed": "het convenant laat de partner dit niet aan deze node geven",
    "role_not_allowed": "het convenant geeft dit niet aan uw rol",
    "purpose_not_allowed": "het convenant deelt dit niet voor het doel van de bevraging",
    "denied_by_liaison": "de contactpersoon van de partner heeft het geweigerd",
    "no_detail_on_record": "de partner heeft hierover niets vastgelegd",
    "source_unavailable": "het bronsysteem van de partner was niet bereikbaar",
    "source_too_large": "de tekst in het bronsysteem van de partner is te groot",
}


def rule_words(conv: Convenant | None, provider: str, category: str) -> dict[str, Any] | None:
    """The convenant's rule for ``category`` of ``provider``, in words, or None (no rule)."""
    rule = conv.detail_rule(provider, category) if conv is not None else None
    if conv is None or rule is None:
        return None
    purposes = {p.id: p.description for p in conv.purposes}
    organisations = {p.node_id: p.organisation for p in conv.parties}
    return {
        "recipients": [organisations.get(r, r) for r in rule.recipients],
        "roles": [ROLE_WORDS.get(r, r) for r in rule.recipient_roles],
        "purposes": [purposes.get(p, p) for p in rule.purposes],
        "approval": APPROVAL_WORDS.get(rule.approval, rule.approval),
        "days": rule.max_retention_days,
    }


def reason_words(code: str | None) -> str | None:
    return None if code is None else CATEGORY_REASON_WORDS.get(code, code)


# A bekendheid answer's status and refusal reasons (§6), as the coordinator reads them.
STATUS_WORDS = {
    "hit": "Bekend",
    "no_hit": "Niet bekend",
    "refused": "Geweigerd",
    "unreachable": "Niet bereikbaar",
    "timeout": "Geen antwoord op tijd",
    "invalid": "Ongeldig antwoord",
}
STATUS_MEANING = {
    "hit": "De partner kent de betrokkene binnen de reikwijdte van het convenant (ondertekend).",
    "no_hit": "De partner heeft ondertekend verklaard de betrokkene niet te kennen.",
    "refused": "De partner heeft de vraag ondertekend geweigerd; de reden staat erbij.",
    "unreachable": "De partner kon niet worden bereikt (verbinding geweigerd of serverfout).",
    "timeout": "De partner heeft niet binnen de termijn van de ronde geantwoord.",
    "invalid": "Er kwam een antwoord, maar de handtekening, het bewijs of de tagset klopt "
    "niet. Behandel het als onbekend en meld het aan de beheerder.",
}
REASON_WORDS = {
    "not_a_party": "deze node is geen partij bij het convenant",
    "not_a_provider": "de partner beantwoordt onder dit convenant geen vragen",
    "no_query_right": "geen vraagrecht voor dit doel",
    "rate_limited": "te veel vragen in korte tijd; probeer het later opnieuw",
    "convenant_not_in_force": "het convenant is niet (meer) van kracht",
    "unknown_convenant": "de partner heeft dit convenant niet geïnstalleerd",
    "party_withdrawn": "een partij heeft zich uit het convenant teruggetrokken",
    "unknown_requester": "de partner kent deze node niet",
    "revoked_requester": "de partner heeft deze node ingetrokken",
    "too_many_subjects": "te veel betrokkenen in één vraag",
    "stale_request": "de klokken lopen te ver uiteen",
    "replayed_request": "de vraag leek een herhaling",
    "round_deadline": "geen antwoord binnen de termijn van de ronde",
    "tag_set_timeout": "de tagset van de partner kwam niet op tijd",
    # Refused: the partner holds another signed log of this node (§9.5); invalid: this
    # node holds another signed log of the partner (§9.3). Either way the admin must look.
    "forked_log": "twee verschillende ondertekende logboeken gezien; meld het aan de beheerder",
    "bad_tree_head": "de ondertekende logboekkop klopt niet; meld het aan de beheerder",
    "tls_mismatch": "de TLS-verbinding hoort niet bij de kaart van deze node (beheerder)",
    "tls_certificate": "het TLS-certificaat van de partner klopt niet met zijn kaart",
    "plain_http": "de partner heeft geen TLS en onversleuteld verkeer staat uit",
}
KIND_WORDS = {"bsn": "BSN", "person": "Persoon", "address": "Adres"}
