"""The ``--bsn`` / ``--person`` / ``--address`` options of ``query`` and ``audit inzage``."""

from __future__ import annotations

import click

from node.errors import InputError
from node.protocol.identifiers import SubjectIdentifier, parse_identifier

PERSON_FORMAT = "Surname|tussenvoegsel|first names|YYYY-MM-DD"
ADDRESS_FORMAT = "1234AB|12|A"


def parse_person(text: str) -> SubjectIdentifier:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 4:
        raise InputError(f"--person: expected '{PERSON_FORMAT}' (4 fields), got {len(parts)}")
    surname, tussenvoegsel, first_names, birth_date = parts
    return parse_identifier(
        {
            "kind": "person",
            "surname": surname,
            "tussenvoegsel": tussenvoegsel or None,
            "first_names": first_names,
            "birth_date": birth_date,
        }
    )


def parse_address(text: str) -> SubjectIdentifier:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) not in (2, 3):
        raise InputError(f"--address: expected '{ADDRESS_FORMAT}' (addition optional)")
    return parse_identifier(
        {
            "kind": "address",
            "postcode": parts[0],
            "house_number": parts[1],
            "addition": (parts[2] or None) if len(parts) == 3 else None,
        }
    )


def subjects_from_options(
    bsns: tuple[str, ...], persons: tuple[str, ...], addresses: tuple[str, ...]
) -> list[SubjectIdentifier]:
    """The subjects named on the command line, in option order; at least one."""
    subjects: list[SubjectIdentifier] = [parse_identifier({"kind": "bsn", "bsn": b}) for b in bsns]
    subjects += [parse_person(p) for p in persons]
    subjects += [parse_address(a) for a in addresses]
    if not subjects:
        raise click.UsageError("give at least one --bsn, --person or --address")
    return subjects
