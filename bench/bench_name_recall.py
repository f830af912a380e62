"""Recall and precision of the name rule (docs/protocol.md §11) on typing variants.

Every person of a synthetic population (node/demo/synthetic.py, a share of double
surnames included) is registered once, with the spelling of the BRP: name and date of
birth, and address. Then a coordinator asks for each person the way coordinators type:
the BRP spelling, the spelling variants the rule was built for, and the variants it was
not (transliterations, a glued tussenvoegsel, half of a double surname, the roepnaam being
a later given name, day and month swapped, the address without its addition).

A query matches a registration when the asker's one subject key is among the
registration's keys; that is exactly when a partner holding the registration answers
``hit`` (the tag of the key is in its tag set). Two rules are compared:

* ``0.1.0``: a registration yields one key per identifier, its subject key;
* ``now``: a registration yields :func:`registration_keys` (the subject key and its
  variants, §11.6); the asker still sends the subject key alone.

Printed per kind of variant: queries, recall (the asked person matched), and the share
of queries that also matched another person. Then precision over all queries (matches of
the asked person / all matches), the collision rate (persons who share surname key,
initial and date of birth with someone else) and the keys per registration (each is a
tag: the cost in tag-set size and OPRF evaluations at import).

No network, no timing: ``python bench/bench_name_recall.py [--size N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from node.demo.synthetic import Person, make_population, name_variants  # noqa: E402
from node.protocol.identifiers import (  # noqa: E402
    AddressIdentifier,
    PersonIdentifier,
    registration_keys,
    subject_key,
)

Identifier = PersonIdentifier | AddressIdentifier
Rule = Callable[[Identifier], Sequence[str]]

# Share of couples' second adults that use a double surname (partner's name first).
DOUBLE_SURNAMES = 0.25
_GERMAN_UMLAUTS = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)  # fmt: skip


@dataclass(frozen=True)
class Query:
    variant: str
    pid: int
    identifier: Identifier


# --- how coordinators type ----------------------------------------------------------------


def _person(p: Person, **changes: object) -> PersonIdentifier:
    fields: dict[str, object] = {
        "surname": p.surname,
        "tussenvoegsel": p.tussenvoegsel,
        "first_names": p.first_names,
        "birth_date": p.birth_date,
    }
    fields.update(changes)
    return PersonIdentifier.model_validate(fields)


def _transliterated(p: Person) -> list[PersonIdentifier]:
    # Öztürk typed as Oeztuerk, Müller as Mueller (a keyboard without umlauts)
    typed = p.surname.translate(_GERMAN_UMLAUTS)
    return [_person(p, surname=typed)] if typed != p.surname else []


def _glued(p: Person) -> list[PersonIdentifier]:
    # d'Ancona typed as Dancona, El Amrani as Elamrani, van der Meer as Vandermeer
    first_part = p.surname.split("-")[0]
    words = [*(p.tussenvoegsel or "").split(), *first_part.split()]
    if len(words) < 2:
        return []
    glued = "".join(words).replace("'", "")
    return [_person(p, surname=glued[0].upper() + glued[1:].lower(), tussenvoegsel=None)]


def _half_of_double(p: Person) -> list[PersonIdentifier]:
    # "van der Meer-Schouten" typed as "van der Meer" or as "Schouten"
    if "-" not in p.surname or p.surname.startswith("'"):
        return []
    first, second = p.surname.split("-", 1)
    return [_person(p, surname=first), _person(p, surname=second, tussenvoegsel=None)]


def _roepnaam(p: Person) -> list[PersonIdentifier]:
    # "Maria Fatima", known as Fatima
    names = p.first_names.split()
    return [_person(p, first_names=n) for n in names[1:] if n[0] != names[0][0]]


def _day_month_swapped(p: Person) -> list[PersonIdentifier]:
    b = p.birth_date
    if b.day > 12 or b.day == b.month:
        return []
    return [_person(p, birth_date=date(b.year, b.day, b.month))]


def _without_addition(p: Person) -> list[AddressIdentifier]:
    if not p.addition:
        return []
    return [AddressIdentifier(postcode=p.postcode, house_number=p.house_number)]


VARIANTS: dict[str, Callable[[Person], Iterable[Identifier]]] = {
    "as in the BRP": lambda p: [p.person_identifier()],
    "spelling (initials, case, accents, v.d.)": name_variants,
    "transliteration (Oeztuerk)": _transliterated,
    "glued prefix (Dancona, Elamrani)": _glued,
    "half of a double surname": _half_of_double,
    "roepnaam is a later given name": _roepnaam,
    "day and month swapped": _day_month_swapped,
    "address as registered": lambda p: [p.address_identifier()],
    "address without addition": _without_addition,
}


def queries(population: Sequence[Person]) -> list[Query]:
    return [
        Query(variant, p.pid, ident)
        for p in population
        for variant, make in VARIANTS.items()
        for ident in make(p)
    ]


# --- measuring ------------------------------------------------------------------------------


def one_key(identifier: Identifier) -> Sequence[str]:
    return (subject_key(identifier),)


@dataclass
class Figures:
    keys_per_registration: float
    max_keys: int
    by_variant: dict[str, tuple[int, int, int]]  # queries, asked person matched, other matched
    matches_true: int
    matches_all: int
    colliding_persons: int
    reverse: dict[str, tuple[int, int]]


def measure(population: Sequence[Person], asked: Sequence[Query], rule: Rule) -> Figures:
    """Register everyone under ``rule``, ask every query with its one subject key."""
    # address registrations belong to everyone living there: the truth is the address
    holders: dict[str, set[int]] = defaultdict(set)
    home: dict[int, tuple[str, int, str | None]] = {}
    keys_total, max_keys = 0, 0
    for p in population:
        home[p.pid] = p.address
        keys = rule(p.person_identifier())
        keys_total += len(keys)
        max_keys = max(max_keys, len(keys))
        for key in keys:
            holders[key].add(p.pid)
        for key in rule(p.address_identifier()):
            holders[key].add(p.pid)

    by_variant: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    matches_true = matches_all = 0
    for q in asked:
        matched = holders.get(subject_key(q.identifier), set())
        if isinstance(q.identifier, AddressIdentifier):
            right = {pid for pid in matched if home[pid] == home[q.pid]}
        else:
            right = {q.pid} & matched
        wrong = matched - right
        row = by_variant[q.variant]
        row[0] += 1
        row[1] += bool(right)
        row[2] += bool(wrong)
        matches_true += bool(right)
        matches_all += bool(right) + len(wrong)

    # asked exactly as registered, another person's registration matches as well
    colliding = sum(1 for p in population if holders[subject_key(p.person_identifier())] - {p.pid})
    return Figures(
        keys_total / len(population),
        max_keys,
        {k: (v[0], v[1], v[2]) for k, v in by_variant.items()},
        matches_true,
        matches_all,
        colliding,
        reverse_recall(population, asked, rule),
    )


def reverse_recall(
    population: Sequence[Person], asked: Sequence[Query], rule: Rule
) -> dict[str, tuple[int, int]]:
    """The other direction: the partner registered the variant, the coordinator types the
    BRP spelling. Per kind of variant: registrations, and how many the BRP form finds."""
    brp = {p.pid: p for p in population}
    out: dict[str, tuple[int, int]] = {}
    for variant in VARIANTS:
        registered = [q for q in asked if q.variant == variant]
        found = 0
        for q in registered:
            p = brp[q.pid]
            typed = (
                p.address_identifier()
                if isinstance(q.identifier, AddressIdentifier)
                else p.person_identifier()
            )
            found += subject_key(typed) in set(rule(q.identifier))
        out[variant] = (len(registered), found)
    return out


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:6.2f}%" if whole else "     -"


def report(size: int, before: Figures, after: Figures) -> None:
    print(f"population {size:,}; every person registered once (BRP spelling + address)")
    print()
    head = f"{'variant':42} {'queries':>8}  {'recall 0.1.0':>12} {'now':>8}"
    print(f"{head}  {'other person 0.1.0':>18} {'now':>8}")
    for variant in VARIANTS:
        n, hit0, wrong0 = before.by_variant.get(variant, (0, 0, 0))
        _, hit1, wrong1 = after.by_variant.get(variant, (0, 0, 0))
        print(
            f"{variant:42} {n:8,}  {_pct(hit0, n):>12} {_pct(hit1, n):>8}"
            f"  {_pct(wrong0, n):>18} {_pct(wrong1, n):>8}"
        )
    print()
    print("the other way round: the partner registered the variant, the coordinator types the BRP")
    print(f"{'variant registered':42} {'regs':>8}  {'recall 0.1.0':>12} {'now':>8}")
    for variant in VARIANTS:
        n, found0 = before.reverse.get(variant, (0, 0))
        _, found1 = after.reverse.get(variant, (0, 0))
        print(f"{variant:42} {n:8,}  {_pct(found0, n):>12} {_pct(found1, n):>8}")
    print()
    for name, f in (("0.1.0", before), ("now", after)):
        print(
            f"{name:6} precision {_pct(f.matches_true, f.matches_all)}"
            f"  colliding persons {f.colliding_persons:,} ({_pct(f.colliding_persons, size)})"
            f"  person keys per registration {f.keys_per_registration:.2f} (max {f.max_keys})"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="persons (default 100,000)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="10,000 persons")
    args = parser.parse_args(argv)
    size = 10_000 if args.quick else args.size
    started = time.perf_counter()
    population = make_population(size, random.Random(args.seed), double_surnames=DOUBLE_SURNAMES)
    asked = queries(population)
    before = measure(population, asked, one_key)
    after = measure(population, asked, registration_keys)
    report(size, before, after)
    print(f"({len(asked):,} queries, {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
