"""The scenario: synthetic population, one registry per partner, and the example queries."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from node.demo.partners import (
    ANTECEDENTS,
    CONTACT,
    DETAIL_PARTNER,
    DOWN_PARTNER,
    PARTNERS,
    PURPOSE_HUISELIJK_GEWELD,
    PURPOSE_JEUGD,
    PURPOSE_NOT_ALLOWED,
    PURPOSE_VEELPLEGERS,
    TRAJECT,
    DemoError,
)
from node.demo.synthetic import (
    REFERENCE_DATE,
    Person,
    RegistryEntry,
    make_population,
    make_registry,
    name_variants,
)
from node.demo.texts import with_details
from node.demo.truth import Address, DemoQuery, DemoSubject, GroundTruth

# Tussenvoegsels that people abbreviate ("v.d. Berg"): the name query types one that way.
_ABBREVIABLE = frozenset({"van der", "van den", "van de", "van"})


def _age(p: Person) -> int:
    b = p.birth_date
    before_birthday = (REFERENCE_DATE.month, REFERENCE_DATE.day) < (b.month, b.day)
    return REFERENCE_DATE.year - b.year - before_birthday


def _core_candidates(population: Sequence[Person], rng: random.Random, n: int = 3) -> list[Person]:
    """Adults in a household of 3+, whose birth date no one else in the population shares
    (so a name+date-of-birth question cannot match anybody else) and, preferably, whose
    tussenvoegsel people abbreviate."""
    households = Counter(p.family_id for p in population)
    birthdays = Counter(p.birth_date for p in population)
    order = list(population)
    rng.shuffle(order)
    rules: list[Callable[[Person], bool]] = [
        lambda p: p.tussenvoegsel in _ABBREVIABLE and households[p.family_id] >= 3,
        lambda p: households[p.family_id] >= 3,
        lambda p: True,
    ]
    chosen: list[Person] = []
    for rule in rules:
        for p in order:
            if len(chosen) == n:
                return chosen
            if p not in chosen and _age(p) >= 18 and birthdays[p.birth_date] == 1 and rule(p):
                chosen.append(p)
    if not chosen:
        raise DemoError("no person with a unique birth date; use more subjects per partner")
    return chosen


def _bsn_subject(p: Person, role: str | None = None) -> DemoSubject:
    label = f"BSN {p.bsn} ({p.display_name}, {p.birth_date.isoformat()}"
    label += f", {role})" if role else ")"
    return DemoSubject(label, {"kind": "bsn", "bsn": p.bsn}, "bsn", pid=p.pid)


def _typed_differently(p: Person) -> DemoSubject:
    """The person as a colleague would type them: "J. v.d. Berg", born "31-01-1990".

    Built from :func:`name_variants` forms (the abbreviated tussenvoegsel and the
    initials), with the date of birth written day-month-year.
    """
    variants = name_variants(p)
    abbreviated = [v for v in variants if v.tussenvoegsel is None and "." in v.surname]
    initials = [v for v in variants if v.surname == p.surname and v.first_names.endswith(".")]
    if abbreviated:
        surname, tussenvoegsel = abbreviated[0].surname, None
    else:
        surname, tussenvoegsel = p.surname, p.tussenvoegsel
    first = initials[0].first_names if initials else p.first_names
    dob = p.birth_date.strftime("%d-%m-%Y")
    wire = {
        "kind": "person",
        "surname": surname,
        "tussenvoegsel": tussenvoegsel,
        "first_names": first,
        "birth_date": dob,
    }
    typed = " ".join(x for x in (first, tussenvoegsel, surname) if x)
    return DemoSubject(f'"{typed}", born {dob}', wire, "person", pid=p.pid)


def _address_subject(addr: Address, who: Person | None) -> DemoSubject:
    postcode, number, addition = addr
    # typed with a space in the postcode and a lower-case addition
    wire = {
        "kind": "address",
        "postcode": f"{postcode[:4]} {postcode[4:]}",
        "house_number": number,
        "addition": addition.lower() if addition else None,
    }
    where = f"{who.street} {number}{addition or ''}, {who.city}" if who else ""
    label = f"{postcode[:4]} {postcode[4:]} {number}{(' ' + addition.lower()) if addition else ''}"
    return DemoSubject(f"{label} ({where})" if where else label, wire, "address", address=addr)


@dataclass(frozen=True)
class DetailCase:
    """Stage 2: whom the demo asks the detail partner about, and what must come back.

    ``query`` names the bekendheid query whose round (and subject ``subject_index``) the
    detail request follows; None: the person was no hit there, and the stage asks its own
    one-subject round first. ``expected`` is, per category asked, the final status and the
    texts the partner registered for the person (None: no text may arrive).
    """

    partner: str
    subject: DemoSubject
    query: str | None
    subject_index: int
    purpose: str
    ref: str
    categories: tuple[str, ...]
    expected: dict[str, tuple[str, list[str] | None]]
    first: dict[str, str]  # category → status of the first answer
    denied_reason: str = PURPOSE_NOT_ALLOWED


@dataclass
class Scenario:
    population: list[Person]
    registries: dict[str, list[RegistryEntry]]
    truth: GroundTruth
    queries: list[DemoQuery]
    detail_case: DetailCase


def build_scenario(subjects_per_partner: int, seed: int) -> Scenario:
    """Population, one registry per partner, ground truth, and the example queries."""
    rng = random.Random(seed)
    n = subjects_per_partner
    population = make_population(max(5 * n, 1000), rng)
    candidates = _core_candidates(population, rng)
    registries = {
        p.node_id: with_details(
            p.node_id,
            p.org_type,
            make_registry(p.org_type, population, rng, n, candidates if p.core else ()),
        )
        for p in PARTNERS
    }
    truth = GroundTruth.build(registries, {p.node_id: p.scope_themes for p in PARTNERS})
    ids = [p.node_id for p in PARTNERS]

    def reach(person: Person) -> tuple[int, int]:
        return (
            sum(person.pid in truth.bsn[k] for k in ids),
            sum(person.pid in truth.person[k] for k in ids),
        )

    several = max(candidates, key=reach)
    by_pid = {p.pid: p for p in population}
    by_address: dict[Address, Person] = {}
    for p in population:
        by_address.setdefault(p.address, p)
    anywhere = set().union(*truth.registered.values())
    order = list(population)
    rng.shuffle(order)

    queries: list[DemoQuery] = []
    hits = [k for k in ids if several.pid in truth.bsn[k]]
    queries.append(
        DemoQuery(
            "known-to-several",
            f"a person known to several partners ({len(hits)} in scope), asked by BSN",
            (_bsn_subject(several),),
        )
    )
    queries.append(
        DemoQuery(
            "name-variant",
            "the same person by name and date of birth, typed differently; a hit wherever a "
            "partner registered name+dob in scope",
            (_typed_differently(several),),
        )
    )
    nobody = next(p for p in order if p.pid not in anywhere and _age(p) >= 18)
    queries.append(
        DemoQuery("known-to-none", "a person no partner has registered", (_bsn_subject(nobody),))
    )
    family = sorted(
        (p for p in population if p.family_id == several.family_id), key=lambda p: p.birth_date
    )
    queries.append(
        DemoQuery(
            "family",
            f"a household of {len(family)} in one signed round (huiselijk geweld)",
            tuple(
                _bsn_subject(
                    p, "the person of a." if p is several else "adult" if _age(p) >= 18 else "child"
                )
                for p in family
            ),
            purpose=PURPOSE_HUISELIJK_GEWELD,
        )
    )
    queries.append(_address_query(truth, by_address, several, rng))
    hidden = _out_of_scope_query(truth, ids, by_pid, order)
    if hidden is not None:
        queries.append(hidden)
    queries.append(
        DemoQuery(
            "refused-purpose",
            f"purpose {PURPOSE_JEUGD}: in the convenant, but no party may ask it — every "
            "partner answers a signed refusal",
            (_bsn_subject(several),),
            purpose=PURPOSE_JEUGD,
            refused=True,
        )
    )
    queries.append(
        DemoQuery(
            "partner-down",
            f"{DOWN_PARTNER} is stopped first: it must be reported unreachable, never no_hit",
            (_bsn_subject(several),),
            down=frozenset({DOWN_PARTNER}),
        )
    )
    case = _detail_case(queries, registries[DETAIL_PARTNER], truth, by_pid)
    return Scenario(population, registries, truth, queries, case)


def _detail_case(
    queries: Sequence[DemoQuery],
    registry: Sequence[RegistryEntry],
    truth: GroundTruth,
    by_pid: Mapping[int, Person],
) -> DetailCase:
    """The first veelplegers subject that is a BSN hit at the detail partner; if there is
    none, the first person it registered in scope with a BSN (asked in a round of its own)."""
    query: str | None = None
    subject: DemoSubject | None = None
    index = 0
    for q in queries:
        if q.refused or q.down or q.purpose != PURPOSE_VEELPLEGERS:
            continue
        for i, s in enumerate(q.subjects):
            if s.kind == "bsn" and truth.knows(DETAIL_PARTNER, s):
                query, subject, index = q.name, s, i
                break
        if subject is not None:
            break
    if subject is None:
        if not truth.bsn[DETAIL_PARTNER]:
            raise DemoError(f"{DETAIL_PARTNER} registered nobody in scope with a BSN")
        subject = _bsn_subject(by_pid[min(truth.bsn[DETAIL_PARTNER])])
    entry = next(e for e in registry if e.pid == subject.pid)
    details = entry.registration.details
    return DetailCase(
        partner=DETAIL_PARTNER,
        subject=subject,
        query=query,
        subject_index=index,
        purpose=PURPOSE_VEELPLEGERS,
        ref=entry.registration.ref,
        categories=(CONTACT, ANTECEDENTS, TRAJECT),
        expected={
            CONTACT: ("delivered", [details[CONTACT]]),
            ANTECEDENTS: ("delivered", [details[ANTECEDENTS]]),
            TRAJECT: ("denied", None),
        },
        first={CONTACT: "delivered", ANTECEDENTS: "pending", TRAJECT: "denied"},
    )


def _address_query(
    truth: GroundTruth, by_address: Mapping[Address, Person], several: Person, rng: random.Random
) -> DemoQuery:
    corporation = "woningcorporatie-breda"
    municipality = "gemeente-breda"
    both = sorted(
        truth.address[corporation] & truth.address[municipality],
        key=lambda a: (a[0], a[1], a[2] or ""),
    )
    either = sorted(
        truth.address[corporation] | truth.address[municipality],
        key=lambda a: (a[0], a[1], a[2] or ""),
    )
    addr = rng.choice(both) if both else rng.choice(either) if either else several.address
    return DemoQuery(
        "address",
        "an address (woonoverlast / huiselijk geweld): registered by the housing "
        "corporation and/or the municipality",
        (_address_subject(addr, by_address.get(addr)),),
        purpose=PURPOSE_HUISELIJK_GEWELD,
    )


def _out_of_scope_query(
    truth: GroundTruth, ids: Sequence[str], by_pid: Mapping[int, Person], order: Sequence[Person]
) -> DemoQuery | None:
    """A person registered (with BSN) only under themes the convenant leaves out."""
    for p in order:
        where = [k for k in ids if p.pid in truth.out_of_scope_bsn[k]]
        if where and not truth.in_scope_anywhere(p.pid):
            k = where[0]
            themes = ", ".join(truth.out_of_scope_themes[(k, p.pid)])
            return DemoQuery(
                "out-of-scope",
                f"a person {k} registered only under '{themes}', outside its convenant "
                "scope: no_hit everywhere",
                (_bsn_subject(by_pid[p.pid]),),
            )
    return None
