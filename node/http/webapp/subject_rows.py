"""Subject rows: the form rows in which a person types who is asked about (BSN, name and
date of birth, or address), on the coordinator's round and the privacy officer's access
request alike. Each row becomes one SubjectIdentifier or carries its error in Dutch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import MultiDictProxy

from node.errors import InputError, InvalidBsn
from node.protocol.identifiers import SubjectIdentifier, parse_identifier

MAX_ROWS = 64  # the API's bound on subjects per round
START_ROWS = 3
FIELDS = (
    "bsn",
    "achternaam",
    "tussenvoegsel",
    "voornamen",
    "geboortedatum",
    "postcode",
    "huisnummer",
    "toevoeging",
)


@dataclass
class Row:
    values: dict[str, str]
    error: str | None = None
    error_field: str = "bsn"

    def empty(self) -> bool:
        return not any(v.strip() for v in self.values.values())


def blank_rows(count: int = START_ROWS) -> list[Row]:
    return [Row(dict.fromkeys(FIELDS, "")) for _ in range(count)]


def read_rows(data: MultiDictProxy[Any]) -> list[Row]:
    """The rows a form posted (field ``NAME-i``; ``rijen`` says how many, within bounds)."""
    try:
        count = min(max(int(str(data.get("rijen", START_ROWS))), 1), MAX_ROWS)
    except ValueError:
        count = START_ROWS
    return [Row({f: str(data.get(f"{f}-{i}", ""))[:200] for f in FIELDS}) for i in range(count)]


def identifier_of_row(row: Row) -> SubjectIdentifier:
    """One row as a subject; InputError (with a Dutch message on the row) otherwise."""
    v = {k: s.strip() for k, s in row.values.items()}
    person_fields = ("achternaam", "tussenvoegsel", "voornamen", "geboortedatum")
    kinds = [
        kind
        for kind, present in (
            ("bsn", bool(v["bsn"])),
            ("person", any(v[f] for f in person_fields)),
            ("address", any(v[f] for f in ("postcode", "huisnummer", "toevoeging"))),
        )
        if present
    ]
    if len(kinds) > 1:
        row.error = (
            "Vul per betrokkene één soort gegevens in: BSN, naam en geboortedatum, of adres."
        )
        raise InputError("mixed kinds")
    try:
        if kinds == ["bsn"]:
            return parse_identifier({"kind": "bsn", "bsn": v["bsn"]})
        if kinds == ["person"]:
            row.error_field = "achternaam"
            return parse_identifier(
                {
                    "kind": "person",
                    "surname": v["achternaam"],
                    "tussenvoegsel": v["tussenvoegsel"] or None,
                    "first_names": v["voornamen"],
                    "birth_date": v["geboortedatum"],
                }
            )
        row.error_field = "postcode"
        return parse_identifier(
            {
                "kind": "address",
                "postcode": v["postcode"],
                "house_number": int(v["huisnummer"]) if v["huisnummer"].isdigit() else -1,
                "addition": v["toevoeging"] or None,
            }
        )
    except InvalidBsn:
        row.error = "Dit BSN is niet geldig: het moet 9 cijfers hebben en de elfproef doorstaan."
        raise
    except InputError:
        row.error = {
            "achternaam": "Vul achternaam, voornamen en een geldige geboortedatum in.",
            "postcode": "Vul een geldige postcode (zoals 1234 AB) en een huisnummer in.",
        }.get(row.error_field, "Deze gegevens zijn niet geldig.")
        raise


def identifiers_of_rows(
    rows: list[Row], noun: str
) -> tuple[list[SubjectIdentifier], list[tuple[str, str]]]:
    """The filled rows as subjects, and per bad row an error for the form's summary
    (field id, message starting with ``noun`` and the row's number). Empty rows count not."""
    subjects: list[SubjectIdentifier] = []
    errors: list[tuple[str, str]] = []
    for i, row in enumerate(rows):
        if row.empty():
            continue
        try:
            subjects.append(identifier_of_row(row))
        except InputError:
            errors.append((f"{row.error_field}-{i}", f"{noun} {i + 1}: {row.error}"))
    return subjects, errors
