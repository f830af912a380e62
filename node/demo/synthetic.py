"""Synthetic Dutch persons, households and partner registries, with ground truth.

For the demo, the tests and the benchmarks; never for keys (``random`` is not a CSPRNG).
Everything is drawn from the ``random.Random`` passed in, and dates are computed against
the fixed :data:`REFERENCE_DATE`, so a seed gives the same data on every day and machine.

The ground truth is the person id (``pid``): a registry entry records which person it is
about, so a test can tell exactly which partners *should* answer "hit" for a person even
when partners typed the name differently (:func:`name_variants`).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from node.protocol.identifiers import (
    AddressIdentifier,
    BsnIdentifier,
    PersonIdentifier,
    SubjectIdentifier,
)
from node.protocol.registration import Registration

__all__ = [
    "HIGH_RISK_FRACTION",
    "HIGH_RISK_PICK_RATE",
    "ORG_TYPES",
    "REFERENCE_DATE",
    "THEMES_BY_ORG_TYPE",
    "Person",
    "RegistryEntry",
    "iter_bulk_registrations",
    "make_bsn",
    "make_population",
    "make_registry",
    "name_variants",
]

REFERENCE_DATE = date(2026, 1, 1)
MIN_AGE = 12
MAX_AGE = 80
# The same people turn up at police, OM, reclassering and the municipality; this skew is
# what makes a case "known to several partners" in the demo.
HIGH_RISK_FRACTION = 0.05
HIGH_RISK_PICK_RATE = 0.30

THEMES_BY_ORG_TYPE: dict[str, tuple[str, ...]] = {
    "politie": ("veelplegers", "huiselijk_geweld", "risicojeugd", "woonoverlast", "hennep"),
    "om": ("veelplegers", "huiselijk_geweld", "jeugd"),
    "reclassering": ("veelplegers", "huiselijk_geweld"),
    "rvdk": ("jeugd", "huiselijk_geweld"),
    "jeugdzorg": ("jeugd", "risicojeugd", "huiselijk_geweld"),
    "ggz": ("zorg", "verslaving"),
    "gemeente": ("woonoverlast", "leerplicht", "schuldhulp", "huiselijk_geweld"),
    "woningcorporatie": ("woonoverlast", "hennep"),
    "dji": ("veelplegers", "nazorg"),
    "veiligheidshuis": ("casus",),
}
ORG_TYPES: tuple[str, ...] = tuple(THEMES_BY_ORG_TYPE)

# Reference formats of each kind of partner's source system (BPS: police, Compas: OM,
# IRIS: reclassering, KWIS: Raad voor de Kinderbescherming, TULP: DJI, GCOS: case
# software of the Veiligheidshuizen).
_REF_FORMATS: dict[str, str] = {
    "politie": "BPS-2026-{:06d}",
    "om": "COMPAS-{:09d}",
    "reclassering": "IRIS-{:07d}",
    "rvdk": "KWIS-{:07d}",
    "jeugdzorg": "BJZ-{:07d}",
    "ggz": "GGZ-{:08d}",
    "gemeente": "GEM-2026-{:05d}",
    "woningcorporatie": "WC-{:06d}",
    "dji": "TULP-{:08d}",
    "veiligheidshuis": "GCOS-2026-{:05d}",
}

# --- name and address material ------------------------------------------------------

_MALE_NAMES = (
    "Jan", "Pieter", "Kees", "Henk", "Willem", "Johannes", "Hendrik", "Cornelis", "Gerrit",
    "Dirk", "Bram", "Daan", "Sem", "Lucas", "Milan", "Levi", "Luuk", "Thijs", "Jesse",
    "Ruben", "Noah", "Finn", "Thomas", "Tim", "Bas", "Sander", "Mark", "Dennis", "Kevin",
    "Stefan", "Jeroen", "Martijn", "Joost", "Wouter", "IJsbrand", "Sjoerd", "Joël", "René",
    "André", "Noël", "Mohamed", "Ahmed", "Youssef", "Mehmet", "Mustafa", "Ali", "Omar",
    "Hamza", "Emre", "Burak", "Kerem", "Rachid", "Bilal", "Ravi", "Rajesh", "Marlon",
    "Romano", "Jermaine", "Piotr", "Tomasz", "Giovanni", "Ömer", "Çağrı", "Frédéric",
)  # fmt: skip
_FEMALE_NAMES = (
    "Anna", "Maria", "Johanna", "Cornelia", "Wilhelmina", "Emma", "Julia", "Sophie", "Tess",
    "Sanne", "Lotte", "Fleur", "Eva", "Lisa", "Anouk", "Femke", "Iris", "Noor", "Mila",
    "Sara", "Daniëlle", "Zoë", "Chloë", "Inge", "Ingrid", "Marieke", "Petra", "Monique",
    "Sandra", "Esther", "Linda", "Fatima", "Khadija", "Samira", "Yasmina", "Nadia", "Aïcha",
    "Elif", "Zeynep", "Ayşe", "Büşra", "Merve", "Esra", "Shanti", "Anjali", "Sharon",
    "Agnieszka", "Małgorzata", "Renée", "Hélène", "IJke", "Naïma",
)  # fmt: skip
# Second given names as they appear in the BRP for people baptised with several names.
_MALE_MIDDLE = ("Johannes", "Petrus", "Hendrikus", "Cornelis", "Maria", "Jacobus", "Willem")
_FEMALE_MIDDLE = ("Maria", "Johanna", "Cornelia", "Elisabeth", "Catharina", "Wilhelmina")

_PLAIN_SURNAMES: tuple[tuple[str | None, str], ...] = tuple(
    (None, s)
    for s in (
        "Jansen", "Bakker", "Janssen", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos",
        "Peters", "Hendriks", "Dekker", "Brouwer", "Dijkstra", "Smits", "Kok", "Jacobs",
        "Vermeulen", "Schouten", "Willems", "Hoekstra", "Maas", "Verhoeven", "Koster",
        "Prins", "Blom", "Huisman", "Peeters", "Kuipers", "Post", "Kuiper", "Veenstra",
        "Kramer", "Scholten", "Cornelissen", "Nijman", "Wijnaldum", "Martina", "Ramdin",
        "Sewnarain", "Kanhai", "Ramsaran", "Bhagwandin", "Çelik", "Yılmaz", "Kaya", "Demir",
        "Şahin", "Öztürk", "Doğan", "Aydın", "Arslan", "El Amrani", "El Idrissi", "Bouzid",
        "Benali", "Ait Taleb", "Kowalski", "Nowak", "Wiśniewski", "Müller", "Schmidt",
        "Nguyen", "Tran", "Groenewegen", "Timmermans", "Claassen", "Wolters", "Bosman",
    )
)  # fmt: skip
_TUSSENVOEGSEL_SURNAMES: tuple[tuple[str | None, str], ...] = (
    ("de", "Jong"), ("de", "Vries"), ("de", "Boer"), ("de", "Groot"), ("de", "Wit"),
    ("de", "Graaf"), ("de", "Haan"), ("de", "Bruijn"), ("de", "Lange"), ("de", "Kort"),
    ("van", "Dijk"), ("van", "Leeuwen"), ("van", "Beek"), ("van", "Vliet"), ("van", "Dam"),
    ("van", "Wijk"), ("van", "Rijn"), ("van", "Essen"), ("in 't", "Veld"), ("van 't", "Hof"),
    ("van 't", "Zand"), ("'t", "Hart"), ("ter", "Horst"), ("ten", "Brink"), ("ter", "Haar"),
    ("d'", "Ancona"), ("van de", "Ven"), ("van de", "Kamp"), ("op de", "Beek"),
    ("van der", "Meer"), ("van der", "Linden"), ("van der", "Veen"), ("van der", "Heijden"),
    ("van der", "Wal"), ("van der", "Berg"), ("van der", "Laan"), ("van den", "Berg"),
    ("van den", "Heuvel"), ("van den", "Broek"), ("van den", "Brink"), ("van den", "Bosch"),
    ("van der", "Velde"), ("van der", "Poel"), ("van den", "Akker"), ("van der", "Sluis"),
)  # fmt: skip
_TOPONYMS = ("Berg", "Hoek", "Kamp", "Hout", "Wetering", "Zande", "Bergh", "Molen", "Ende")
_TOPONYM_PREFIXES = ("van", "van der", "van den", "van de", "ter", "ten", "van 't")
SURNAMES: tuple[tuple[str | None, str], ...] = (
    _PLAIN_SURNAMES
    + _TUSSENVOEGSEL_SURNAMES
    + tuple((tv, base) for tv in _TOPONYM_PREFIXES for base in _TOPONYMS)
)

# (town, first and last numeric part of its postcodes)
_TOWNS: tuple[tuple[str, int, int], ...] = (
    ("Middelburg", 4331, 4338), ("Vlissingen", 4381, 4389), ("Goes", 4461, 4465),
    ("Terneuzen", 4531, 4539), ("Rotterdam", 3011, 3089), ("Den Haag", 2491, 2597),
    ("Utrecht", 3511, 3585), ("Amsterdam", 1011, 1109), ("Eindhoven", 5611, 5658),
    ("Tilburg", 5011, 5049), ("Groningen", 9711, 9747), ("Breda", 4811, 4839),
    ("Zwolle", 8011, 8043), ("Leeuwarden", 8911, 8939), ("Arnhem", 6811, 6846),
    ("Nijmegen", 6511, 6546), ("Maastricht", 6211, 6229), ("Dordrecht", 3311, 3319),
    ("Almere", 1311, 1364), ("Enschede", 7511, 7548), ("Haarlem", 2011, 2037),
)  # fmt: skip
_STREETS = (
    "Dorpsstraat", "Kerkstraat", "Molenweg", "Stationsweg", "Nieuwstraat", "Markt",
    "Lange Noordstraat", "Oranjestraat", "Julianastraat", "Beatrixlaan", "Wilhelminastraat",
    "Prins Hendrikstraat", "Schoolstraat", "Irenestraat", "Parallelweg", "Havenstraat",
    "Spoorstraat", "Zandweg", "Burgemeester van Hasseltstraat", "Kastanjelaan",
    "Eikenlaan", "Berkenstraat", "Rozenstraat", "Tulpstraat", "Vondelstraat",
    "Rembrandtlaan", "Van Goghstraat", "Mozartlaan", "Noordsingel", "Kanaalweg Oost",
    "De Ruyterstraat", "Piet Heinstraat", "Koningin Julianaplein", "'s-Gravenweg",
)  # fmt: skip
# Dutch postcodes skip F, I, O, Q, U and Y, and never use SA, SD or SS.
_POSTCODE_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
_ADDITIONS = ("A", "B", "C", "1", "2", "3", "HS", "BIS", "I", "II", "ZW")

_UNDECOMPOSABLE = str.maketrans({"ı": "i", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O"})
_ABBREVIATED_TUSSENVOEGSELS = {"van der": "v.d.", "van den": "v.d.", "van de": "v.d.", "van": "v."}


# --- BSNs -------------------------------------------------------------------------------

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)


def _bsn_from_prefix(prefix: int) -> str | None:
    """Complete 8 digits to a valid BSN, or None when no check digit fits (1 in 11)."""
    digits = f"{prefix:08d}"
    check = sum(w * int(d) for w, d in zip(_BSN_WEIGHTS, digits, strict=True)) % 11
    if check == 10 or (prefix == 0 and check == 0):
        return None
    return digits + str(check)


def make_bsn(rng: random.Random) -> str:
    """A random BSN that passes the 11-proef."""
    while True:
        bsn = _bsn_from_prefix(rng.randrange(10**8))
        if bsn is not None:
            return bsn


def _unique_bsns(rng: random.Random) -> Iterator[str]:
    """Distinct valid BSNs without remembering them: an affine permutation of 0..10^8-1."""
    modulus = 10**8
    multiplier = rng.randrange(1, modulus // 10) * 10 + rng.choice((1, 3, 7, 9))
    offset = rng.randrange(modulus)
    for i in range(modulus):
        bsn = _bsn_from_prefix((multiplier * i + offset) % modulus)
        if bsn is not None:
            yield bsn


# --- persons ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """One synthetic resident; ``pid`` is the ground truth, ``family_id`` the household."""

    pid: int
    bsn: str
    first_names: str
    tussenvoegsel: str | None
    surname: str
    birth_date: date
    postcode: str
    house_number: int
    addition: str | None
    family_id: int
    street: str = ""
    city: str = ""

    @property
    def address(self) -> tuple[str, int, str | None]:
        return (self.postcode, self.house_number, self.addition)

    @property
    def display_name(self) -> str:
        parts = (self.first_names, self.tussenvoegsel, self.surname)
        return " ".join(p for p in parts if p)

    def bsn_identifier(self) -> BsnIdentifier:
        return BsnIdentifier(bsn=self.bsn)

    def person_identifier(self) -> PersonIdentifier:
        return PersonIdentifier(
            surname=self.surname,
            tussenvoegsel=self.tussenvoegsel,
            first_names=self.first_names,
            birth_date=self.birth_date,
        )

    def address_identifier(self) -> AddressIdentifier:
        return AddressIdentifier(
            postcode=self.postcode, house_number=self.house_number, addition=self.addition
        )


def _first_names(rng: random.Random, female: bool) -> str:
    first = rng.choice(_FEMALE_NAMES if female else _MALE_NAMES)
    if rng.random() < 0.3:
        middle = rng.choice(_FEMALE_MIDDLE if female else _MALE_MIDDLE)
        if middle != first:
            return f"{first} {middle}"
    return first


def _birth_date(rng: random.Random, min_age: int, max_age: int) -> date:
    # born after the day max_age+1 years before the reference date, on or before the day
    # min_age years before it, so the age on REFERENCE_DATE is within [min_age, max_age]
    latest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - min_age)
    earliest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - max_age - 1) + timedelta(1)
    return date.fromordinal(rng.randint(earliest.toordinal(), latest.toordinal()))


class _AddressBook:
    """Hands out distinct addresses; a postcode keeps its street and town."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[tuple[str, int, str | None]] = set()
        self._streets: dict[str, tuple[str, str]] = {}

    def new(self) -> tuple[str, int, str | None, str, str]:
        rng = self._rng
        while True:
            town, low, high = rng.choice(_TOWNS)
            letters = rng.choice(_POSTCODE_LETTERS) + rng.choice(_POSTCODE_LETTERS)
            if letters in ("SA", "SD", "SS"):
                continue
            postcode = f"{rng.randint(low, high)}{letters}"
            number = min(int(rng.expovariate(1 / 40)) + 1, 999)
            addition = rng.choice(_ADDITIONS) if rng.random() < 0.15 else None
            if (postcode, number, addition) in self._used:
                continue
            self._used.add((postcode, number, addition))
            street, _ = self._streets.setdefault(postcode, (rng.choice(_STREETS), town))
            return postcode, number, addition, street, town


def make_population(size: int, rng: random.Random, *, double_surnames: float = 0.0) -> list[Person]:
    """``size`` persons in households (singles, couples, families with children aged 12+).

    Members of a household share the address, the surname and the tussenvoegsel; all
    BSNs are valid and distinct; ages on REFERENCE_DATE are 12–80.

    With ``double_surnames`` > 0, that fraction of the second adults of couples uses the
    partner's name before their own, as Dutch naamgebruik allows: tussenvoegsel "van
    der", surname "Meer-Schouten" or "Meer-de Vries". At 0 (the default) no random draw
    is added, so a seed gives the same population as before the option existed.
    """
    people: list[Person] = []
    bsns: set[str] = set()
    addresses = _AddressBook(rng)

    def unique_bsn() -> str:
        while True:
            bsn = make_bsn(rng)
            if bsn not in bsns:
                bsns.add(bsn)
                return bsn

    family_id = 0
    while len(people) < size:
        tussenvoegsel, surname = rng.choice(SURNAMES)
        postcode, number, addition, street, city = addresses.new()
        roll = rng.random()
        children = rng.randint(1, 3) if roll >= 0.60 else 0
        adults = 1 if roll < 0.35 or roll >= 0.90 else 2
        # (is_female, min_age, max_age) per member
        if children:
            ages = [rng.randint(32, 62) for _ in range(adults)]
            # the youngest parent was at least 20 when the eldest child was born
            child_max = min(min(ages) - 20, 30)
            members = [(i % 2 == 1, age, age) for i, age in enumerate(ages)]
            members += [(rng.random() < 0.5, MIN_AGE, child_max) for _ in range(children)]
        else:
            members = [(i % 2 == 1, 18, MAX_AGE) for i in range(adults)]
        if adults == 1 and rng.random() < 0.5:
            members[0] = (True, members[0][1], members[0][2])
        for index, (female, lo, hi) in enumerate(members):
            if len(people) >= size:
                break
            used_surname = surname
            couple_partner = double_surnames > 0 and adults == 2 and index == 1
            # short-circuits at 0: no draw, so the default population stays the same
            if couple_partner and rng.random() < double_surnames:
                own_tussenvoegsel, own = rng.choice(SURNAMES)
                own_name = f"{own_tussenvoegsel} {own}" if own_tussenvoegsel else own
                used_surname = f"{surname}-{own_name}"
            people.append(
                Person(
                    pid=len(people),
                    bsn=unique_bsn(),
                    first_names=_first_names(rng, female),
                    tussenvoegsel=tussenvoegsel,
                    surname=used_surname,
                    birth_date=_birth_date(rng, lo, hi),
                    postcode=postcode,
                    house_number=number,
                    addition=addition,
                    family_id=family_id,
                    street=street,
                    city=city,
                )
            )
        family_id += 1
    return people


# --- how people type names --------------------------------------------------------------


def _strip_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.translate(_UNDECOMPOSABLE)


def _initials(first_names: str) -> str:
    out = []
    for name in first_names.split():
        out.append("IJ." if name.upper().startswith("IJ") else name[0].upper() + ".")
    return "".join(out)


def name_variants(p: Person) -> list[PersonIdentifier]:
    """Other ways to type this person's name; each has the same subject key as the original.

    Initials only ("J.P."), the first given name only, the tussenvoegsel written in the
    surname field ("van der Berg"), after it ("Berg, van der"), abbreviated ("v.d. Berg"),
    all upper case, and without diacritics. The original form is not included.
    """
    tv, surname, first = p.tussenvoegsel, p.surname, p.first_names
    forms: list[tuple[str, str | None, str]] = [
        (surname, tv, _initials(first)),
        (surname, tv, first.split()[0]),
        (surname.upper(), tv.upper() if tv else None, first.upper()),
        (_strip_diacritics(surname), tv, _strip_diacritics(first)),
    ]
    if tv:
        forms.append((f"{tv} {surname}", None, first))
        forms.append((f"{surname}, {tv}", None, first))
        forms.append((f"{tv.upper()} {surname.upper()}", None, _initials(first)))
        if tv in _ABBREVIATED_TUSSENVOEGSELS:
            forms.append((f"{_ABBREVIATED_TUSSENVOEGSELS[tv]} {surname}", None, first))
    seen = {(surname, tv, first)}
    variants: list[PersonIdentifier] = []
    for form in forms:
        if form in seen:
            continue
        seen.add(form)
        variants.append(
            PersonIdentifier(
                surname=form[0], tussenvoegsel=form[1], first_names=form[2], birth_date=p.birth_date
            )
        )
    return variants


# --- registries -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryEntry:
    """A registration plus the ground truth: the person (None if address-only) and address."""

    registration: Registration
    pid: int | None
    address: tuple[str, int, str | None] | None


def _themes(org_type: str, rng: random.Random) -> tuple[str, ...]:
    themes = THEMES_BY_ORG_TYPE[org_type]
    return tuple(rng.sample(themes, min(len(themes), rng.choice((1, 1, 1, 2)))))


def _typed_person(p: Person, rng: random.Random) -> PersonIdentifier:
    # source systems do not all hold the BRP spelling
    if rng.random() < 0.15:
        return rng.choice(name_variants(p))
    return p.person_identifier()


def _entry_identifiers(
    org_type: str, p: Person, rng: random.Random
) -> tuple[list[SubjectIdentifier], bool]:
    """The identifiers this kind of partner keeps, and whether the entry names the person."""
    roll = rng.random()
    if org_type == "ggz":
        if roll < 0.85:
            return [p.bsn_identifier()], True
        return [_typed_person(p, rng)], True
    if org_type == "gemeente":
        return [p.bsn_identifier(), p.address_identifier()], True
    if org_type == "woningcorporatie":
        if roll < 0.85:
            return [p.address_identifier()], False
        return [_typed_person(p, rng), p.address_identifier()], True
    if org_type == "politie" and roll < 0.10:
        # suspects are sometimes registered before their BSN is established
        return [_typed_person(p, rng)], True
    return [p.bsn_identifier(), _typed_person(p, rng)], True


def make_registry(
    org_type: str,
    population: Sequence[Person],
    rng: random.Random,
    size: int,
    core: Sequence[Person] = (),
) -> list[RegistryEntry]:
    """``size`` registrations of one kind of partner about persons of ``population``.

    Every person in ``core`` is included. Of the other picks, HIGH_RISK_PICK_RATE come from
    the first HIGH_RISK_FRACTION of the population, so registries of different partners
    overlap the way real ones do; the rest are uniform. Each person (and, for address-only
    entries, each address) appears at most once.
    """
    if org_type not in THEMES_BY_ORG_TYPE:
        raise ValueError(f"unknown org_type {org_type!r}; known: {', '.join(ORG_TYPES)}")
    if size > len(population) or size < len(core):
        raise ValueError(f"size {size} must be between len(core) and len(population)")
    high_risk = population[: max(1, int(len(population) * HIGH_RISK_FRACTION))]
    ref_format = _REF_FORMATS[org_type]
    serial = rng.randrange(1000, 9000)

    used_pids: set[int] = set()
    used_addresses: set[tuple[str, int, str | None]] = set()
    entries: list[RegistryEntry] = []

    def add(p: Person, *, forced: bool) -> bool:
        nonlocal serial
        if p.pid in used_pids:
            return False
        identifiers, named = _entry_identifiers(org_type, p, rng)
        if forced and not named:
            # a core person must be findable by who they are, not only where they live
            identifiers, named = [p.person_identifier(), p.address_identifier()], True
        has_address = any(isinstance(i, AddressIdentifier) for i in identifiers)
        if not named and p.address in used_addresses:
            return False
        used_pids.add(p.pid)
        if has_address:
            used_addresses.add(p.address)
        serial += rng.randint(1, 7)
        registration = Registration(
            ref=ref_format.format(serial),
            themes=_themes(org_type, rng),
            identifiers=tuple(identifiers),
        )
        entries.append(
            RegistryEntry(
                registration=registration,
                pid=p.pid if named else None,
                address=p.address if has_address else None,
            )
        )
        return True

    for p in core:
        add(p, forced=True)
    attempts = 0
    max_attempts = 50 * size + 1000
    while len(entries) < size:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(f"population too small for {size} distinct {org_type} entries")
        pool = high_risk if rng.random() < HIGH_RISK_PICK_RATE else population
        add(pool[rng.randrange(len(pool))], forced=False)
    return entries


# --- bulk -------------------------------------------------------------------------------


def iter_bulk_registrations(n: int, rng: random.Random) -> Iterator[Registration]:
    """``n`` police-style registrations with distinct BSNs, generated one at a time.

    Nothing is kept between rows: BSNs come from a permutation of the 8-digit prefixes,
    so a million rows need no population (or set of used BSNs) in memory.
    """
    bsns = _unique_bsns(rng)
    themes = THEMES_BY_ORG_TYPE["politie"]
    for serial in range(1, n + 1):
        bsn = next(bsns)
        identifiers: list[SubjectIdentifier] = [BsnIdentifier(bsn=bsn)]
        roll = rng.random()
        if roll < 0.6:
            tussenvoegsel, surname = SURNAMES[rng.randrange(len(SURNAMES))]
            female = rng.random() < 0.5
            identifiers.append(
                PersonIdentifier(
                    surname=surname,
                    tussenvoegsel=tussenvoegsel,
                    first_names=_first_names(rng, female),
                    birth_date=_birth_date(rng, MIN_AGE, MAX_AGE),
                )
            )
        if roll > 0.8:
            _, low, high = _TOWNS[rng.randrange(len(_TOWNS))]
            letters = _POSTCODE_LETTERS[rng.randrange(20)] + _POSTCODE_LETTERS[rng.randrange(20)]
            if letters in ("SA", "SD", "SS"):
                letters = "AB"
            identifiers.append(
                AddressIdentifier(
                    postcode=f"{rng.randint(low, high)}{letters}",
                    house_number=rng.randint(1, 300),
                )
            )
        yield Registration(
            ref=f"BPS-2026-{serial:07d}",
            themes=(themes[rng.randrange(len(themes))],),
            identifiers=tuple(identifiers),
        )
