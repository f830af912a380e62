from __future__ import annotations

import datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from node.errors import InvalidBsn, InvalidIdentifier
from node.protocol.identifiers import (
    TUSSENVOEGSELS,
    AddressIdentifier,
    BsnIdentifier,
    PersonIdentifier,
    SubjectIdentifier,
    bsn_is_valid,
    first_initial,
    normalise_surname,
    parse_identifier,
    subject_key,
)

# --- 11-proef ---------------------------------------------------------------------------


@pytest.mark.parametrize("bsn", ["111222333", "123456782", "010000008", "999999990"])
def test_bsn_is_valid_accepts_numbers_passing_the_11_proef(bsn: str) -> None:
    assert bsn_is_valid(bsn)


@pytest.mark.parametrize(
    ("bsn", "why"),
    [
        ("123456789", "weighted sum 156 is not a multiple of 11"),
        ("111222334", "check digit off by one"),
        ("000000000", "all zeros passes the sum but is not a BSN"),
        ("12345678", "8 digits"),
        ("1234567820", "10 digits"),
        ("", "empty"),
        ("12345678a", "letter"),
        ("abcdefghi", "letters only"),
        ("١٢٣٤٥٦٧٨٢", "Arabic-Indic digits are digits to str.isdigit, not to us"),
        ("123 456 782", "bsn_is_valid does not strip; the model does"),
    ],
)
def test_bsn_is_valid_rejects(bsn: str, why: str) -> None:
    assert not bsn_is_valid(bsn), why


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("123456782", "123456782"),
        ("123 456 782", "123456782"),
        ("1234.56.782", "123456782"),
        (" 111.222.333 ", "111222333"),
        ("10000008", "010000008"),  # written without its leading zero
    ],
)
def test_bsn_identifier_strips_spaces_and_dots_and_pads_8_digits(given: str, stored: str) -> None:
    assert BsnIdentifier(bsn=given).bsn == stored


def test_parse_identifier_reports_failed_11_proef_as_invalid_bsn() -> None:
    with pytest.raises(InvalidBsn) as info:
        parse_identifier({"kind": "bsn", "bsn": "123456789"})
    assert info.value.detail == "BSN 123456789 fails the 11-proef"


@pytest.mark.parametrize(
    ("bsn", "message"),
    [
        ("000000000", "BSN 000000000 fails the 11-proef"),
        ("1234567", "BSN '1234567' is not 9 digits"),
        ("12345678x", "BSN '12345678x' is not 9 digits"),
        (123456782, "BSN must be a string of 9 digits"),
    ],
)
def test_parse_identifier_rejects_malformed_bsn(bsn: object, message: str) -> None:
    with pytest.raises(InvalidBsn) as info:
        parse_identifier({"kind": "bsn", "bsn": bsn})
    assert info.value.detail == message


# --- surname rule -----------------------------------------------------------------------

BERG_FORMS = [
    ("Berg", "van der"),
    ("van der Berg", None),
    ("V.d. Berg", None),
    ("v.d.Berg", None),
    ("v/d Berg", None),
    ("vd Berg", None),
    ("v. d. Berg", None),
    ("Berg, van der", None),
    ("Berg, v.d.", None),
    ("van den Berg", None),
    ("Berg", "van den"),
    ("VAN DER BERG", None),
    ("  van   der  Berg ", None),
    ("Berg", None),
    ("Berg", "V.D."),
]


@pytest.mark.parametrize(("surname", "tussenvoegsel"), BERG_FORMS)
def test_forms_of_van_der_berg_share_the_key_berg(surname: str, tussenvoegsel: str | None) -> None:
    assert normalise_surname(surname, tussenvoegsel) == "berg"


@pytest.mark.parametrize(
    ("surname", "tussenvoegsel", "key"),
    [
        ("Çelik", None, "celik"),
        ("CELIK", None, "celik"),
        ("Yılmaz", None, "yilmaz"),
        ("YILMAZ", None, "yilmaz"),
        ("Öztürk", None, "ozturk"),
        ("Şahin", None, "sahin"),
        ("Wiśniewski", None, "wisniewski"),
        ("Müller", None, "muller"),
        ("Jansen-van der Berg", None, "jansen berg"),
        ("Jansen - van der Berg", None, "jansen berg"),
        ("van 't Hof", None, "hof"),
        ("van't Hof", None, "hof"),
        ("Hof", "van 't", "hof"),
        ("Hof", "van ’t", "hof"),  # typographic apostrophe
        ("v. 't Hof", None, "hof"),
        ("in 't Veld", None, "veld"),
        ("Veld", "in 't", "veld"),
        ("'t Hart", None, "hart"),
        ("d'Ancona", None, "ancona"),
        ("Ancona", "d'", "ancona"),
        ("'s-Gravesande", None, "gravesande"),
        ("El Amrani", None, "amrani"),
        ("ter Horst", None, "horst"),
        ("de Vries", None, "vries"),
        ("Vries", "de", "vries"),
        ("von der Leyen", None, "leyen"),
        ("O'Brien", None, "o'brien"),
        ("van Beek-de Vries", None, "beek vries"),
        ("Ait Taleb", None, "ait taleb"),
        ("Van", None, "van"),  # only tussenvoegsels: every token is kept
        ("van der", None, "van der"),
        ("Berg|x", None, "berg x"),  # the key separator can never appear in a key
    ],
)
def test_normalise_surname(surname: str, tussenvoegsel: str | None, key: str) -> None:
    assert normalise_surname(surname, tussenvoegsel) == key


def test_tussenvoegsel_list_holds_the_abbreviations_the_rule_relies_on() -> None:
    assert {"v", "d", "vd", "d'", "'t", "van", "der", "den", "de"} <= TUSSENVOEGSELS


@pytest.mark.parametrize("surname", ["", "   ", "123", "-", "''"])
def test_normalise_surname_without_letters_is_invalid(surname: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_surname(surname)


# --- initial ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_names", "initial"),
    [
        ("Jan", "j"),
        ("Jan Pieter", "j"),
        ("J.P.", "j"),
        ("j", "j"),
        ("Jan-Pieter", "j"),
        ("IJsbrand", "ij"),
        ("Ijsbrand", "ij"),
        ("IJ.", "ij"),
        ("Ĳsbrand", "ij"),  # the single-codepoint IJ ligature
        ("I.J.", "i"),
        ("Ingrid", "i"),
        ("Daniëlle", "d"),
        ("Émile", "e"),
        ("Çağrı", "c"),
        ("Ömer", "o"),
        ("  sanne  ", "s"),
    ],
)
def test_first_initial(first_names: str, initial: str) -> None:
    assert first_initial(first_names) == initial


@pytest.mark.parametrize("first_names", ["", "  ", "...", "123"])
def test_first_initial_without_letters_is_invalid(first_names: str) -> None:
    with pytest.raises(InvalidIdentifier):
        first_initial(first_names)


# --- subject keys -----------------------------------------------------------------------


def test_subject_key_formats() -> None:
    assert subject_key(BsnIdentifier(bsn="123456782")) == "bsn:123456782"
    jan = PersonIdentifier(
        surname="Berg",
        tussenvoegsel="van der",
        first_names="Jan",
        birth_date=datetime.date(1990, 1, 31),
    )
    assert subject_key(jan) == "person:berg|j|1990-01-31"
    with_addition = AddressIdentifier(postcode="4331 ab", house_number=12, addition="a")
    assert subject_key(with_addition) == "address:4331AB|12|A"
    without = AddressIdentifier(postcode="4331AB", house_number=12)
    assert subject_key(without) == "address:4331AB|12|"


def test_jan_van_der_berg_and_j_vd_berg_have_the_same_key() -> None:
    full = PersonIdentifier(
        surname="van der Berg", first_names="Jan", birth_date=datetime.date(1990, 1, 31)
    )
    short = PersonIdentifier(surname="V.d. Berg", first_names="J.", birth_date="1990-01-31")
    assert subject_key(full) == subject_key(short) == "person:berg|j|1990-01-31"


def test_person_key_differs_by_initial_and_by_date() -> None:
    base = {"kind": "person", "surname": "Berg", "first_names": "Jan", "birth_date": "1990-01-31"}
    other_initial = {**base, "first_names": "Piet"}
    other_date = {**base, "birth_date": "1990-01-30"}
    keys = {subject_key(parse_identifier(d)) for d in (base, other_initial, other_date)}
    assert len(keys) == 3


# --- addresses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("4331AB", "4331AB"), ("4331 ab", "4331AB"), (" 4331ab ", "4331AB"), ("9999 ZZ", "9999ZZ")],
)
def test_postcode_is_normalised(given: str, stored: str) -> None:
    assert AddressIdentifier(postcode=given, house_number=1).postcode == stored


@pytest.mark.parametrize(
    "postcode",
    ["0123AB", "123AB", "12345AB", "1234A", "1234ABC", "ABCD12", "1234SA", "1234 sd", "1234ss"],
)
def test_postcode_rules_reject(postcode: str) -> None:
    with pytest.raises(InvalidIdentifier, match="postcode"):
        parse_identifier({"kind": "address", "postcode": postcode, "house_number": 1})


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("a", "A"),
        (" hs ", "HS"),
        ("-1", "1"),
        ("1-hoog", "1HOOG"),
        ("bis", "BIS"),
        ("2 a", "2A"),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_addition_is_normalised_to_upper_case_alphanumerics(
    given: str | None, stored: str | None
) -> None:
    address = AddressIdentifier(postcode="4331AB", house_number=12, addition=given)
    assert address.addition == stored


@pytest.mark.parametrize("addition", ["ABCDEFG", "1-hoog-achter", "ä", 7])
def test_addition_rejects_long_or_non_ascii(addition: object) -> None:
    with pytest.raises(InvalidIdentifier, match="addition"):
        parse_identifier(
            {"kind": "address", "postcode": "4331AB", "house_number": 12, "addition": addition}
        )


@pytest.mark.parametrize(("given", "stored"), [(1, 1), (99999, 99999), ("12", 12), (" 7 ", 7)])
def test_house_number_accepts_1_to_99999(given: object, stored: int) -> None:
    data = {"kind": "address", "postcode": "4331AB", "house_number": given}
    address = parse_identifier(data)
    assert isinstance(address, AddressIdentifier)
    assert address.house_number == stored


@pytest.mark.parametrize("number", [0, -1, 100000, "12a", "", True, 12.5, None])
def test_house_number_rejects(number: object) -> None:
    with pytest.raises(InvalidIdentifier, match="house_number"):
        parse_identifier({"kind": "address", "postcode": "4331AB", "house_number": number})


# --- birth dates ------------------------------------------------------------------------


def _person(birth_date: object) -> dict[str, object]:
    return {"kind": "person", "surname": "Berg", "first_names": "Jan", "birth_date": birth_date}


def test_birth_date_in_the_future_is_rejected() -> None:
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    with pytest.raises(InvalidIdentifier, match="in the future"):
        parse_identifier(_person(tomorrow.isoformat()))


def test_birth_date_before_1900_is_rejected() -> None:
    with pytest.raises(InvalidIdentifier, match="before 1900-01-01"):
        parse_identifier(_person("1899-12-31"))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("1900-01-01", datetime.date(1900, 1, 1)),
        ("31-01-1990", datetime.date(1990, 1, 31)),
        (datetime.date(1990, 1, 31), datetime.date(1990, 1, 31)),
        (datetime.date.today().isoformat(), datetime.date.today()),
    ],
)
def test_birth_date_accepted_forms(given: object, stored: datetime.date) -> None:
    person = parse_identifier(_person(given))
    assert isinstance(person, PersonIdentifier)
    assert person.birth_date == stored


@pytest.mark.parametrize(
    "given", ["1990-02-30", "1990/01/31", "31-13-1990", "", 19900131, datetime.datetime(1990, 1, 1)]
)
def test_birth_date_malformed_is_rejected(given: object) -> None:
    with pytest.raises(InvalidIdentifier, match="birth_date"):
        parse_identifier(_person(given))


# --- parse_identifier -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "passport", "number": "X"}, "kind must be one of bsn, person, address"),
        ({"bsn": "123456782"}, "kind must be one of bsn, person, address (got missing)"),
        ({"kind": "bsn", "bsn": "123456782", "extra": 1}, "extra: unknown field"),
        ({"kind": "person", "surname": "Berg", "birth_date": "1990-01-31"}, "first_names: field"),
        (_person("1990-01-31") | {"surname": ""}, "surname must not be empty"),
        (_person("1990-01-31") | {"surname": "Berg\x00"}, "surname contains control"),
        (_person("1990-01-31") | {"first_names": "..."}, "first_names '...' contains no letters"),
        (_person("1990-01-31") | {"tussenvoegsel": 3}, "tussenvoegsel must be a string"),
    ],
)
def test_parse_identifier_gives_one_line_invalid_identifier(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        parse_identifier(data)
    assert message in info.value.detail
    assert "\n" not in info.value.detail
    assert not isinstance(info.value, ValidationError)


def test_parse_identifier_names_every_problem_on_one_line() -> None:
    with pytest.raises(InvalidIdentifier) as info:
        parse_identifier({"kind": "address", "postcode": "0000XX", "house_number": 0})
    assert info.value.detail.count(";") == 1
    assert "postcode" in info.value.detail
    assert "house_number" in info.value.detail


def test_parse_identifier_rejects_non_mapping() -> None:
    with pytest.raises(InvalidIdentifier):
        parse_identifier(["bsn", "123456782"])  # type: ignore[arg-type]


def test_empty_tussenvoegsel_becomes_none() -> None:
    person = parse_identifier(_person("1990-01-31") | {"tussenvoegsel": "  "})
    assert isinstance(person, PersonIdentifier)
    assert person.tussenvoegsel is None


def test_identifiers_are_frozen() -> None:
    bsn = BsnIdentifier(bsn="123456782")
    with pytest.raises(ValidationError):
        bsn.bsn = "111222333"  # type: ignore[misc]


def test_subject_identifier_union_discriminates_on_kind() -> None:
    adapter: TypeAdapter[SubjectIdentifier] = TypeAdapter(SubjectIdentifier)
    parsed = adapter.validate_python({"kind": "address", "postcode": "4331AB", "house_number": 3})
    assert isinstance(parsed, AddressIdentifier)
    assert adapter.dump_python(parsed) == {
        "kind": "address",
        "postcode": "4331AB",
        "house_number": 3,
        "addition": None,
    }
