from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import date

import pytest

from node.demo.synthetic import (
    MAX_AGE,
    MIN_AGE,
    ORG_TYPES,
    REFERENCE_DATE,
    THEMES_BY_ORG_TYPE,
    Person,
    RegistryEntry,
    iter_bulk_registrations,
    make_population,
    make_registry,
    name_variants,
)
from node.protocol.identifiers import (
    AddressIdentifier,
    BsnIdentifier,
    PersonIdentifier,
    bsn_is_valid,
    registration_keys,
    subject_key,
)
from node.protocol.registration import Registration


@pytest.fixture(scope="module")
def population() -> list[Person]:
    return make_population(10_000, random.Random(2026))


@pytest.fixture(scope="module")
def registries(population: list[Person]) -> dict[str, list[RegistryEntry]]:
    rng = random.Random(11)
    return {org: make_registry(org, population, rng, 1_000) for org in ORG_TYPES}


def _age(born: date) -> int:
    before_birthday = (REFERENCE_DATE.month, REFERENCE_DATE.day) < (born.month, born.day)
    return REFERENCE_DATE.year - born.year - before_birthday


# --- population -------------------------------------------------------------------------


def test_population_has_the_requested_size_and_sequential_pids(population: list[Person]) -> None:
    assert len(population) == 10_000
    assert [p.pid for p in population] == list(range(10_000))


def test_population_bsns_are_all_valid_and_unique(population: list[Person]) -> None:
    bsns = [p.bsn for p in population]
    assert all(bsn_is_valid(b) for b in bsns)
    assert len(set(bsns)) == len(bsns)


def test_families_share_address_and_surname(population: list[Person]) -> None:
    families: dict[int, list[Person]] = defaultdict(list)
    for p in population:
        families[p.family_id].append(p)
    for members in families.values():
        assert len({(m.surname, m.tussenvoegsel) for m in members}) == 1
        assert len({m.address for m in members}) == 1
        assert len({(m.street, m.city) for m in members}) == 1
    sizes = Counter(len(m) for m in families.values())
    assert sizes[1] > 0
    assert sum(n for size, n in sizes.items() if size >= 3) > 0


def test_different_families_live_at_different_addresses(population: list[Person]) -> None:
    address_families: dict[tuple[str, int, str | None], set[int]] = defaultdict(set)
    for p in population:
        address_families[p.address].add(p.family_id)
    assert all(len(f) == 1 for f in address_families.values())


def test_children_are_younger_than_their_parents(population: list[Person]) -> None:
    families: dict[int, list[Person]] = defaultdict(list)
    for p in population:
        families[p.family_id].append(p)
    for members in families.values():
        minors = [m for m in members if _age(m.birth_date) < 18]
        if minors:
            eldest_child = min(m.birth_date for m in minors)
            adults = [m for m in members if _age(m.birth_date) >= 32]
            assert adults
            assert all(a.birth_date < eldest_child for a in adults)


def test_ages_are_between_12_and_80(population: list[Person]) -> None:
    ages = [_age(p.birth_date) for p in population]
    assert min(ages) >= MIN_AGE
    assert max(ages) <= MAX_AGE


def test_every_person_yields_valid_identifiers(population: list[Person]) -> None:
    for p in population:
        assert subject_key(p.bsn_identifier()) == f"bsn:{p.bsn}"
        assert subject_key(p.person_identifier()).endswith(p.birth_date.isoformat())
        assert p.address_identifier().postcode == p.postcode


def test_population_has_tussenvoegsels_and_diacritics(population: list[Person]) -> None:
    names = {p.display_name for p in population}
    assert any(" van der " in n for n in names)
    assert any(" van 't " in n or " in 't " in n for n in names)
    assert any(not n.isascii() for n in names)
    assert any(p.first_names.startswith("IJ") for p in population)


def test_population_is_deterministic_for_a_seed() -> None:
    assert make_population(500, random.Random(5)) == make_population(500, random.Random(5))
    assert make_population(500, random.Random(5)) != make_population(500, random.Random(6))


# --- name variants ----------------------------------------------------------------------


def test_name_variants_map_to_the_registered_subject_key(population: list[Person]) -> None:
    checked = 0
    for p in population:
        registered = subject_key(p.person_identifier())
        variants = name_variants(p)
        assert variants
        for variant in variants:
            assert subject_key(variant) == registered, (p, variant)
            checked += 1
    assert checked > 4 * len(population)


def test_name_variants_cover_the_ways_coordinators_type_names() -> None:
    p = Person(
        pid=0,
        bsn="123456782",
        first_names="IJsbrand Jörg",
        tussenvoegsel="van der",
        surname="Bérg",
        birth_date=date(1990, 1, 31),
        postcode="4331AB",
        house_number=12,
        addition=None,
        family_id=0,
    )
    forms = {(v.surname, v.tussenvoegsel, v.first_names) for v in name_variants(p)}
    assert ("Bérg", "van der", "IJ.J.") in forms
    assert ("van der Bérg", None, "IJsbrand Jörg") in forms
    assert ("Bérg, van der", None, "IJsbrand Jörg") in forms
    assert ("v.d. Bérg", None, "IJsbrand Jörg") in forms
    assert ("BÉRG", "VAN DER", "IJSBRAND JÖRG") in forms
    assert ("Berg", "van der", "IJsbrand Jorg") in forms
    assert ("Bérg", "van der", "IJsbrand Jörg") not in forms
    assert {subject_key(v) for v in name_variants(p)} == {"person:berg|ij|1990-01-31"}


# --- registries -------------------------------------------------------------------------


def test_registry_has_size_entries_with_unique_refs_and_org_themes(
    registries: dict[str, list[RegistryEntry]],
) -> None:
    for org, entries in registries.items():
        assert len(entries) == 1_000
        refs = [e.registration.ref for e in entries]
        assert len(set(refs)) == len(refs)
        for entry in entries:
            assert set(entry.registration.themes) <= set(THEMES_BY_ORG_TYPE[org])
            assert 1 <= len(entry.registration.themes) <= 2


@pytest.mark.parametrize(
    ("org", "prefix"),
    [
        ("politie", "BPS-2026-"),
        ("om", "COMPAS-"),
        ("reclassering", "IRIS-"),
        ("ggz", "GGZ-"),
        ("gemeente", "GEM-2026-"),
    ],
)
def test_refs_look_like_the_source_system(
    registries: dict[str, list[RegistryEntry]], org: str, prefix: str
) -> None:
    assert all(e.registration.ref.startswith(prefix) for e in registries[org])


def test_registry_entries_match_their_ground_truth(
    population: list[Person], registries: dict[str, list[RegistryEntry]]
) -> None:
    for entries in registries.values():
        for entry in entries:
            keys = set(entry.registration.subject_keys())
            if entry.pid is not None:
                p = population[entry.pid]
                own = {
                    subject_key(p.bsn_identifier()),
                    subject_key(p.person_identifier()),
                    subject_key(p.address_identifier()),
                }
                # a registry may hold another spelling, with the same subject key
                assert {subject_key(i) for i in entry.registration.identifiers} <= own
            else:
                assert entry.address is not None
                postcode, number, addition = entry.address
                address = AddressIdentifier(
                    postcode=postcode, house_number=number, addition=addition
                )
                assert keys == set(registration_keys(address))
            has_address = any(k.startswith("address:") for k in keys)
            assert (entry.address is not None) == has_address


def _kinds(entry: RegistryEntry) -> frozenset[str]:
    return frozenset(i.kind for i in entry.registration.identifiers)


def test_identifier_mix_differs_per_org_type(registries: dict[str, list[RegistryEntry]]) -> None:
    mix = {org: Counter(_kinds(e) for e in entries) for org, entries in registries.items()}
    n = 1_000
    assert mix["politie"][frozenset({"bsn", "person"})] > 0.8 * n
    assert mix["om"][frozenset({"bsn", "person"})] == n
    assert mix["ggz"][frozenset({"bsn"})] > 0.75 * n
    assert mix["gemeente"][frozenset({"bsn", "address"})] == n
    assert mix["woningcorporatie"][frozenset({"address"})] > 0.75 * n
    address_only = [e for e in registries["woningcorporatie"] if _kinds(e) == {"address"}]
    assert all(e.pid is None and e.address is not None for e in address_only)


def test_registries_overlap_across_org_types(
    population: list[Person], registries: dict[str, list[RegistryEntry]]
) -> None:
    known_by: Counter[int] = Counter()
    for entries in registries.values():
        known_by.update({e.pid for e in entries if e.pid is not None})
    high_risk = len(population) // 20
    mean_high = sum(known_by[pid] for pid in range(high_risk)) / high_risk
    rest = len(population) - high_risk
    mean_rest = sum(known_by[pid] for pid in range(high_risk, len(population))) / rest
    assert mean_high > 3 * mean_rest
    assert sum(known_by[pid] >= 5 for pid in range(high_risk)) > high_risk // 2
    # two uniform 1,000-of-10,000 registries would share about 100 persons
    politie = {e.pid for e in registries["politie"]}
    om = {e.pid for e in registries["om"]}
    assert len(politie & om) > 150


def test_core_persons_are_in_every_registry(population: list[Person]) -> None:
    core = population[100:103]
    for org in ORG_TYPES:
        entries = make_registry(org, population, random.Random(3), 50, core=core)
        pids = {e.pid for e in entries}
        assert {p.pid for p in core} <= pids, org


def test_registry_is_deterministic_for_a_seed(population: list[Person]) -> None:
    a = make_registry("politie", population, random.Random(9), 300)
    b = make_registry("politie", population, random.Random(9), 300)
    c = make_registry("politie", population, random.Random(10), 300)
    assert a == b
    assert a != c


def test_make_registry_rejects_unknown_org_type_and_oversize(population: list[Person]) -> None:
    with pytest.raises(ValueError, match="unknown org_type"):
        make_registry("bakkerij", population, random.Random(1), 10)
    with pytest.raises(ValueError, match="size"):
        make_registry("politie", population[:10], random.Random(1), 11)


# --- bulk -------------------------------------------------------------------------------


def test_bulk_registrations_have_distinct_valid_bsns() -> None:
    registrations = list(iter_bulk_registrations(20_000, random.Random(4)))
    assert len(registrations) == 20_000
    bsns = [i.bsn for r in registrations for i in r.identifiers if isinstance(i, BsnIdentifier)]
    assert len(bsns) == 20_000
    assert len(set(bsns)) == 20_000
    assert all(bsn_is_valid(b) for b in bsns)
    assert any(isinstance(i, PersonIdentifier) for r in registrations for i in r.identifiers)
    assert any(isinstance(i, AddressIdentifier) for r in registrations for i in r.identifiers)
    assert len({r.ref for r in registrations}) == 20_000


def test_bulk_registrations_are_generated_lazily() -> None:
    rows = iter_bulk_registrations(1_000_000, random.Random(4))
    first = next(rows)
    assert isinstance(first, Registration)
    assert first.ref == "BPS-2026-0000001"


def test_bulk_registrations_are_deterministic_for_a_seed() -> None:
    a = [r.fingerprint() for r in iter_bulk_registrations(200, random.Random(8))]
    b = [r.fingerprint() for r in iter_bulk_registrations(200, random.Random(8))]
    assert a == b
