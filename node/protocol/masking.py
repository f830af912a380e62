"""A subject as shown back to the person who asked about it: enough to tell the members of
a family or group apart, not the identifier itself (docs/api.md, ``subjects`` of a round).

``BSN ***6782`` (the last four digits), ``J.P.B. 1990`` (the initials of the first names,
the initial of the surname without its tussenvoegsels as in §11, the year of birth),
``4811AB 12A`` (postcode, house number and addition: an address is not a person).
"""

from __future__ import annotations

from node.protocol.identifiers import (
    AddressIdentifier,
    BsnIdentifier,
    PersonIdentifier,
    normalise_surname,
)


def masked(subject: BsnIdentifier | PersonIdentifier | AddressIdentifier) -> str:
    if isinstance(subject, BsnIdentifier):
        return f"BSN ***{subject.bsn[-4:]}"
    if isinstance(subject, PersonIdentifier):
        given = "".join(f"{w[0].upper()}." for w in subject.first_names.split() if w[:1].isalpha())
        surname = normalise_surname(subject.surname, subject.tussenvoegsel)
        return f"{given}{surname[:1].upper()}. {subject.birth_date.year}"
    return f"{subject.postcode} {subject.house_number}{subject.addition or ''}"
