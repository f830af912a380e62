"""The ``--bsn`` / ``--person`` / ``--address`` options of ``query`` and ``audit inzage``.

The subjects keep the order in which they were typed, across the three options: in a
family round the coordinator reads "subject 2" as the second person named, and
``details request --subject 2`` asks about that one. ``SubjectCommand`` records the order
click parses them in; ``masked`` shows each subject beside its number without repeating
its identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from node.errors import InputError

if TYPE_CHECKING:
    from node.protocol.identifiers import SubjectIdentifier

PERSON_FORMAT = "Surname|tussenvoegsel|first names|YYYY-MM-DD"
ADDRESS_FORMAT = "1234AB|12|A"

SUBJECT_OPTIONS = ("bsns", "persons", "addresses")
_ORDER_KEY = "vhnode.subject_order"


class SubjectCommand(click.Command):
    """A command whose subject options are read back in the order they were typed.

    click hands each ``multiple=True`` option its values as one tuple, which loses how
    ``--bsn``, ``--person`` and ``--address`` were interleaved; its parser does record every
    occurrence in order, and this keeps that record in ``ctx.meta``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        order: list[str] = []
        names = {f"--{n}": n for n in ("bsn", "person", "address")}
        # The occurrences, as the parser will see them: "--bsn X", "--bsn=X"; "--" ends it.
        for arg in args:
            if arg == "--":
                break
            name = names.get(arg.split("=", 1)[0])
            if name is not None:
                order.append(name)
        ctx.meta[_ORDER_KEY] = order
        return super().parse_args(ctx, args)


def parse_person(text: str) -> SubjectIdentifier:
    from node.protocol.identifiers import parse_identifier  # noqa: PLC0415 - pydantic models

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
    from node.protocol.identifiers import parse_identifier  # noqa: PLC0415 - pydantic models

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


def parse_bsn(text: str) -> SubjectIdentifier:
    from node.protocol.identifiers import parse_identifier  # noqa: PLC0415 - pydantic models

    return parse_identifier({"kind": "bsn", "bsn": text})


def subjects_from_options(
    bsns: Sequence[str], persons: Sequence[str], addresses: Sequence[str]
) -> list[SubjectIdentifier]:
    """The subjects named on the command line, in the order typed; at least one."""
    values = {"bsn": list(bsns), "person": list(persons), "address": list(addresses)}
    parsers = {"bsn": parse_bsn, "person": parse_person, "address": parse_address}
    ctx = click.get_current_context(silent=True)
    order: list[str] = list(ctx.meta.get(_ORDER_KEY, [])) if ctx is not None else []
    if sorted(order) != sorted(k for k, v in values.items() for _ in v):
        # Not parsed by SubjectCommand (a direct call): the options' own order.
        order = [k for k, v in values.items() for _ in v]
    taken = dict.fromkeys(values, 0)
    subjects: list[SubjectIdentifier] = []
    for kind in order:
        subjects.append(parsers[kind](values[kind][taken[kind]]))
        taken[kind] += 1
    if not subjects:
        raise click.UsageError("give at least one --bsn, --person or --address")
    return subjects


def masked(subject: Any) -> str:
    """A subject as shown beside its number: enough to tell the members of a family or
    group apart, not its identifier (BSN ***4782, initials and birth year, postcode and
    house number)."""
    kind = getattr(subject, "kind", None)
    if kind == "bsn":
        return f"BSN ***{subject.bsn[-4:]}"
    if kind == "person":
        from node.protocol.identifiers import normalise_surname  # noqa: PLC0415

        given = "".join(f"{w[0].upper()}." for w in subject.first_names.split() if w[:1].isalpha())
        # The surname's initial after its tussenvoegsels: "van der Berg" is B., as in §11.
        surname = normalise_surname(subject.surname, subject.tussenvoegsel)
        return f"{given}{surname[:1].upper()}. {subject.birth_date.year}"
    if kind == "address":
        return f"{subject.postcode} {subject.house_number}{subject.addition or ''}"
    raise TypeError(f"not a subject identifier: {type(subject).__name__}")
