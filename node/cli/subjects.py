"""The ``--bsn`` / ``--person`` / ``--address`` options of ``query`` and ``audit inzage``.

The subjects keep the order in which they were typed, across the three options: in a
family round the coordinator reads "subject 2" as the second person named, and
``details request --subject 2`` asks about that one. ``SubjectCommand`` records the order
click parses them in. Nothing here imports the identifier models: ``vhnode query`` leaves
checking the values to the node, which answers with each subject masked.
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


def person(text: str) -> dict[str, Any]:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 4:
        raise InputError(f"--person: expected '{PERSON_FORMAT}' (4 fields), got {len(parts)}")
    surname, tussenvoegsel, first_names, birth_date = parts
    return {
        "kind": "person",
        "surname": surname,
        "tussenvoegsel": tussenvoegsel or None,
        "first_names": first_names,
        "birth_date": birth_date,
    }


def address(text: str) -> dict[str, Any]:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) not in (2, 3):
        raise InputError(f"--address: expected '{ADDRESS_FORMAT}' (addition optional)")
    return {
        "kind": "address",
        "postcode": parts[0],
        "house_number": parts[1],
        "addition": (parts[2] or None) if len(parts) == 3 else None,
    }


def bsn(text: str) -> dict[str, Any]:
    return {"kind": "bsn", "bsn": text}


def subjects_from_options(
    bsns: Sequence[str], persons: Sequence[str], addresses: Sequence[str]
) -> list[dict[str, Any]]:
    """The subjects named on the command line as identifier objects (docs/api.md), in the
    order typed; at least one. Their values are checked where they are used — by the
    node for a query, by ``parse_subjects`` for a command that works on the home."""
    values = {"bsn": list(bsns), "person": list(persons), "address": list(addresses)}
    makers = {"bsn": bsn, "person": person, "address": address}
    ctx = click.get_current_context(silent=True)
    order: list[str] = list(ctx.meta.get(_ORDER_KEY, [])) if ctx is not None else []
    if sorted(order) != sorted(k for k, v in values.items() for _ in v):
        # Not parsed by SubjectCommand (a direct call): the options' own order.
        order = [k for k, v in values.items() for _ in v]
    taken = dict.fromkeys(values, 0)
    subjects: list[dict[str, Any]] = []
    for kind in order:
        subjects.append(makers[kind](values[kind][taken[kind]]))
        taken[kind] += 1
    if not subjects:
        raise click.UsageError("give at least one --bsn, --person or --address")
    return subjects


def parse_subjects(raw: Sequence[dict[str, Any]]) -> list[SubjectIdentifier]:
    """Validate each subject (InvalidBsn / InvalidIdentifier with a one-line message)."""
    from node.protocol.identifiers import parse_identifier  # noqa: PLC0415 - pydantic models

    return [parse_identifier(data) for data in raw]
