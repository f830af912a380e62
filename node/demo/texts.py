"""Synthetic detail texts: what each partner's source system supplies per registration.

A text is a pure function of (partner, registration ref, category), so the demo knows
exactly which text a partner must deliver for a person without asking any node, and the
population drawn from the seed is the same with or without details. Every text starts
with ``[SYNTHETISCH]`` and names only invented people and numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from node.demo.partners import ANTECEDENTS, CARE, CONTACT, SUPERVISION, TRAJECT, detail_categories
from node.demo.synthetic import SURNAMES, RegistryEntry

MARK = "[SYNTHETISCH]"

_FUNCTIONS = {
    "politie": "wijkagent",
    "reclassering": "reclasseringswerker",
    "gemeente": "casusregisseur",
    "om": "officier van justitie",
    "ggz": "behandelaar",
}
_INITIALS = "ABCDEFGHJKLMNPRSTVW"
_OFFENCES = ("winkeldiefstal", "vernieling", "bedreiging", "openlijk geweld", "inbraak")
_PHASES = (
    "opsporingsonderzoek",
    "dagvaarding uitgebracht",
    "zitting gepland",
    "vonnis, hoger beroep",
)
_SUPERVISION = ("voorwaardelijke veroordeling", "schorsing voorlopige hechtenis", "taakstraf")
_MONTHS = ("januari", "maart", "mei", "juli", "september", "november")


def _numbers(*parts: str) -> list[int]:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return list(digest)


def detail_text(partner: str, org_type: str, ref: str, category: str) -> str:
    """The source system's text of one registration for one category (≤ 4000 chars)."""
    n = _numbers(partner, ref, category)
    tussenvoegsel, surname = SURNAMES[n[0] % len(SURNAMES)]
    who = f"{_INITIALS[n[1] % len(_INITIALS)]}. {f'{tussenvoegsel} ' if tussenvoegsel else ''}"
    who += surname
    if category == CONTACT:
        role = _FUNCTIONS.get(org_type, "contactpersoon")
        return (
            f"{MARK} Contactpersoon bij {ref}: {role} {who} (fictief), bereikbaar op "
            f"werkdagen via 0800-{1000 + n[2] * 31 % 9000:04d} (fictief nummer)."
        )
    if category == ANTECEDENTS:
        offences = sorted({_OFFENCES[n[3] % 5], _OFFENCES[n[4] % 5]})
        return (
            f"{MARK} Samenvatting bij {ref}: {2 + n[5] % 9} registraties sinds "
            f"{2019 + n[6] % 6} ({', '.join(offences)}); laatste incident "
            f"{_MONTHS[n[7] % 6]} 2025; {'geen ' if n[8] % 3 else ''}geweld tegen personen. "
            "Verzonnen voor de demo."
        )
    if category == TRAJECT:
        return (
            f"{MARK} Lopend traject bij {ref}: {_OFFENCES[n[3] % 5]}, "
            f"{_PHASES[n[4] % len(_PHASES)]}; contact via {who} (fictief)."
        )
    if category == SUPERVISION:
        return (
            f"{MARK} Toezicht bij {ref}: {_SUPERVISION[n[3] % 3]}, {6 + n[4] % 19} maanden, "
            f"meldplicht {'wekelijks' if n[5] % 2 else 'tweewekelijks'}; toezichthouder {who} "
            "(fictief)."
        )
    if category == CARE:
        return f"{MARK} Zorgcontact bij {ref}: {'ja' if n[3] % 4 else 'nee'}."
    return f"{MARK} {category} bij {ref} (fictief)."


def with_details(
    partner: str, org_type: str, entries: Sequence[RegistryEntry]
) -> list[RegistryEntry]:
    """The registry with, on every registration, a text for each category the partner may
    share under the demo convenant (the source system supplies them with the row)."""
    categories = detail_categories(partner)
    if not categories:
        return list(entries)
    out = []
    for e in entries:
        ref = e.registration.ref
        details = {c: detail_text(partner, org_type, ref, c) for c in categories}
        out.append(
            RegistryEntry(e.registration.model_copy(update={"details": details}), e.pid, e.address)
        )
    return out
