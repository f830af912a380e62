"""Subject identifiers and the rule that turns each into its subject key.

A partner registers subjects, and a coordinator asks about them, by one of three kinds of
identifier: a BSN, a person (name and date of birth) or an address. Each is reduced to a
*subject key*, a short text that is the OPRF input (callers UTF-8 encode it). Two parties
that type the same subject differently must derive the same key, so the rule below is part
of the protocol: changing it changes every tag.

Subject keys
============

``bsn:<9 digits>``
    e.g. ``bsn:123456782``. Spaces and dots are removed; an 8-digit number is left-padded
    with one ``0`` (BSNs are sometimes written without their leading zero). The result must
    be 9 digits, not all zeros, and pass the 11-proef:
    ``9*d1 + 8*d2 + 7*d3 + 6*d4 + 5*d5 + 4*d6 + 3*d7 + 2*d8 - 1*d9 ≡ 0 (mod 11)``.

``person:<surname key>|<initial>|<YYYY-MM-DD>``
    e.g. "Jan van der Berg, 1990-01-31" → ``person:berg|j|1990-01-31``. The date of birth
    must lie between 1900-01-01 and today.

``address:<POSTCODE>|<house number>|<ADDITION or empty>``
    e.g. ``address:4331AB|12|A`` and ``address:4331AB|12|``. The postcode is four digits
    not starting with 0 followed by two letters other than SA, SD and SS; a space between
    them is accepted and dropped, letters are upper-cased. The house number is 1..99999.
    The addition has whitespace and punctuation removed and is upper-cased; what remains
    must be 1..6 ASCII letters or digits, or nothing (then it is absent).

Character classes (docs/protocol.md §11, exactly)
=================================================

*Whitespace* is the Unicode White_Space property (:data:`WHITESPACE`), not Python's
``str.split``; a *letter* is general category L* (:func:`is_letter`), not the Alphabetic
property; *printable* means no character of category C* (:func:`is_printable`); lengths
are code points after collapsing. "Not after today" is the date in Europe/Amsterdam at
the node's clock (:func:`amsterdam_date`, passed in as ``today``).

Registration keys
=================

A registration yields the subject key and its variants (:func:`registration_keys`,
docs/protocol.md §11.6): the parts of a double surname, the glued and the transliterated
surname, every given name's initial, day and month swapped, the address without its
addition. The asker sends the subject key alone.

Folding (applied to surname, tussenvoegsel and first names)
===========================================================

1. Typographic apostrophes (U+2018, U+2019, U+201A, U+201B, U+02BC, U+02B9, U+2032, the
   grave accent ````` and the acute accent ``´``) become ``'``.
2. Unicode case folding (``str.casefold``: "ß" → "ss").
3. NFKD normalisation, then every nonspacing mark (Unicode general category Mn) is
   removed: "Çelik" → "celik", "Daniëlle" → "danielle", the ligature "Ĳ" → "ij".
4. Letters that NFKD does not decompose are mapped: ı→i, ø→o, æ→ae, œ→oe, ł→l, đ→d, ð→d,
   þ→th, ħ→h (so "Yılmaz", "YILMAZ" and "Yilmaz" agree).

Surname key
===========

1. Join the tussenvoegsel field (if any) and the surname field with a space, and fold.
2. Every character that is neither a letter (general category L*) nor an apostrophe
   becomes a space. Hyphens, commas, dots, slashes and digits therefore separate tokens, so
   "Jansen-van der Berg", "Berg, van der" and "v.d. Berg" / "v/d Berg" split into plain
   tokens.
3. Split on whitespace. Then, per token:

   a. a token that is only apostrophes is dropped;
   b. an elided article is split off: ``d'ancona`` → ``d'`` ``ancona``, ``l'...`` likewise;
   c. a tussenvoegsel written together with ``'t`` or ``'s`` is split:
      ``van't`` → ``van`` ``'t``, ``in't`` → ``in`` ``'t``;
   d. any other token that is not itself a tussenvoegsel loses apostrophes at its start and
      end; apostrophes inside a token stay ("o'brien").

4. Remove every token that is in the tussenvoegsel list (:data:`TUSSENVOEGSELS`), wherever
   it occurs, in either field. The abbreviations "v.", "v.d.", "vd", "v/d" and "d'" need no
   separate expansion: after step 2 they are the tokens ``v``, ``d``, ``vd`` and ``d'``,
   which are in the list.
5. The surname key is the remaining tokens, in order, joined by single spaces. If no token
   remains (a surname consisting only of tussenvoegsels) all tokens of step 3 are kept.

The list, taken from the Dutch BRP table of voorvoegsels (Dutch, Flemish, German, French,
Italian/Spanish/Portuguese and Arabic articles and prepositions) plus the usual
abbreviations::

    's 't aan al am auf aus bij d d' da de del della dem den der des dos du el het in l l'
    la le les onder op over s t te ten ter tot uit v van van't vande vanden vander vd voor
    vom von zu zum zur

Consequences, chosen deliberately (recall over precision): tussenvoegsel variants collapse
("van den Berg", "van der Berg", "de Berg" and "Berg" share the key ``berg``), and a
double-barrelled name keeps both parts ("Jansen-van der Berg" → ``jansen berg``). The
initial and the date of birth in the same key keep accidental matches rare; a hit only
says a partner *may* know the person, and detail sharing confirms it.

Initial
=======

Fold the first-names field and take its first run of letters (category L*), so
"Jan Pieter", "J.P." and "Jan-Pieter" all start with "j". The initial is the run's first
letter, except that a run starting with "ij" gives ``ij`` because the Dutch IJ digraph is
one letter ("IJsbrand", "Ijsbrand", "IJ." → ``ij``). Written as "I.J." the first run is
"i", so the initial is ``i``. A first-names field without letters is invalid.
"""

from __future__ import annotations

import datetime
import re
import string
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from node.errors import InvalidBsn, InvalidIdentifier

__all__ = [
    "MIN_BIRTH_DATE",
    "TUSSENVOEGSELS",
    "AddressIdentifier",
    "BsnIdentifier",
    "PersonIdentifier",
    "SubjectIdentifier",
    "bsn_is_valid",
    "field_error",
    "first_initial",
    "format_validation_error",
    "normalise_surname",
    "parse_identifier",
    "registration_keys",
    "subject_key",
]

TUSSENVOEGSELS: frozenset[str] = frozenset(
    {
        "'s", "'t", "aan", "al", "am", "auf", "aus", "bij", "d", "d'", "da", "de", "del", "della",
        "dem", "den", "der", "des", "dos", "du", "el", "het", "in", "l", "l'", "la", "le",
        "les", "onder", "op", "over", "s", "t", "te", "ten", "ter", "tot", "uit", "v", "van",
        "van't", "vande", "vanden", "vander", "vd", "voor", "vom", "von", "zu", "zum", "zur",
    }
)  # fmt: skip

MIN_BIRTH_DATE = datetime.date(1900, 1, 1)

_MAX_NAME_CHARS = 200
_MAX_TUSSENVOEGSEL_CHARS = 50

_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)

_APOSTROPHES = str.maketrans(
    dict.fromkeys("\u2018\u2019\u201a\u201b\u02bc\u02b9\u2032`\u00b4", "'")
)
_UNDECOMPOSABLE = str.maketrans(
    {"ı": "i", "ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ħ": "h"}
)
# The German way to type an umlaut without the key for it (Öztürk → Oeztuerk), and ø as oe.
_UMLAUT = re.compile("([aou])\u0308")
_TRANSLITERATED = str.maketrans(
    {"ı": "i", "ø": "oe", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ħ": "h"}
)
# Between the parts of a double surname: hyphen-minus, U+2010..U+2015 (hyphen to
# horizontal bar) and the minus sign; folding (NFKD) has mapped the compatibility forms
# (U+FE58, U+FE63, U+FF0D) onto these.
_DASHES = re.compile("[-\u2010-\u2015\u2212]")
_ELISION = re.compile(r"([dl]')(.+)")
_JOINED_T_OR_S = re.compile(r"(.+?)('[ts])")
_POSTCODE = re.compile(r"([1-9][0-9]{3}) *([A-Za-z]{2})")
_FORBIDDEN_POSTCODE_LETTERS = frozenset({"SA", "SD", "SS"})
_ADDITION = re.compile(r"[A-Z0-9]{1,6}")
_ADDITION_NOISE = str.maketrans(dict.fromkeys(string.whitespace + string.punctuation))
# [0-9], not \d: \d also takes Arabic-Indic and other decimal digits, which int() accepts
_DMY = re.compile(r"([0-9]{2})-([0-9]{2})-([0-9]{4})")
_YMD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# The Unicode White_Space property (PropList.txt), spelled out: str.split() and str.strip()
# also treat U+001C..U+001F as whitespace, which another implementation would not.
WHITESPACE: frozenset[str] = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WHITESPACE_CHARS = "".join(sorted(WHITESPACE))
_WHITESPACE_RUN = re.compile("[" + re.escape(_WHITESPACE_CHARS) + "]+")
_VALIDATION_TODAY = "today"

# Errors raised by our own validators carry this type prefix; their messages name the
# field themselves, so the formatter does not prepend its location.
_OWN_ERROR_PREFIX = "vh_"


# --- folding and name rules ---------------------------------------------------------


def _fold(text: str, *, transliterate: bool = False) -> str:
    text = text.translate(_APOSTROPHES)
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text.casefold())
    if transliterate:
        text = _UMLAUT.sub(r"\1e", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return text.translate(_TRANSLITERATED if transliterate else _UNDECOMPOSABLE)


def is_letter(char: str) -> bool:
    """A letter of this rule: Unicode general category L* (Lu, Ll, Lt, Lm, Lo).

    Not the Alphabetic property, which also takes combining vowel signs (Mc, Mn) and a few
    symbols: implementations must agree on the category, so it is named exactly.
    """
    return unicodedata.category(char)[0] == "L"


def collapse_whitespace(text: str) -> str:
    """Runs of :data:`WHITESPACE` become one U+0020; leading and trailing ones go."""
    return _WHITESPACE_RUN.sub(" ", text).strip(" ")


def trim_whitespace(text: str) -> str:
    """Leading and trailing :data:`WHITESPACE` removed; inner characters kept."""
    return text.strip(_WHITESPACE_CHARS)


def is_printable(text: str) -> bool:
    """No character of general category C* (Cc, Cf, Cs, Co, Cn).

    Applied after :func:`collapse_whitespace`, which has turned every Z* character (all
    of them are White_Space) into U+0020, so this is Python's ``str.isprintable`` there.
    """
    return all(unicodedata.category(c)[0] != "C" for c in text)


def amsterdam_date(now: datetime.datetime) -> datetime.date:
    """The calendar date in the Netherlands (Europe/Amsterdam) at the instant ``now``.

    Central European Time, UTC+1, and summer time, UTC+2, from 01:00 UTC on the last
    Sunday of March to 01:00 UTC on the last Sunday of October (EU directive 2000/84/EC).
    Written out rather than read from a time-zone database, which a slim host may lack.
    """
    if now.tzinfo is None:
        raise ValueError("amsterdam_date needs a timezone-aware time")
    utc = now.astimezone(datetime.UTC)
    summer_starts = _last_sunday_0100_utc(utc.year, 3)
    summer_ends = _last_sunday_0100_utc(utc.year, 10)
    offset = 2 if summer_starts <= utc < summer_ends else 1
    return (utc + datetime.timedelta(hours=offset)).date()


def _last_sunday_0100_utc(year: int, month: int) -> datetime.datetime:
    last_day = datetime.date(year, month + 1, 1) - datetime.timedelta(days=1)
    sunday = last_day - datetime.timedelta(days=(last_day.weekday() + 1) % 7)
    return datetime.datetime(sunday.year, sunday.month, sunday.day, 1, tzinfo=datetime.UTC)


def _letters_and_apostrophes(text: str) -> str:
    return "".join(c if c == "'" or is_letter(c) else " " for c in text)


def _split_token(token: str) -> list[str]:
    if token in TUSSENVOEGSELS:
        return [token]
    out: list[str] = []
    if m := _ELISION.fullmatch(token):
        out.append(m.group(1))
        token = m.group(2)
    if (m := _JOINED_T_OR_S.fullmatch(token)) and m.group(1) in TUSSENVOEGSELS:
        return [*out, m.group(1), m.group(2)]
    if token not in TUSSENVOEGSELS:
        token = token.strip("'")
    return [*out, token] if token else out


def _tokens(folded: str) -> list[str]:
    tokens: list[str] = []
    for raw in _letters_and_apostrophes(folded).split(" "):
        if raw:
            tokens.extend(_split_token(raw))
    return tokens


def _surname_tokens(surname: str, tussenvoegsel: str | None) -> list[str]:
    joined = f"{tussenvoegsel} {surname}" if tussenvoegsel else surname
    return _tokens(_fold(joined))


def _surname_key(surname: str, tussenvoegsel: str | None) -> str:
    tokens = _surname_tokens(surname, tussenvoegsel)
    kept = [t for t in tokens if t not in TUSSENVOEGSELS] or tokens
    return " ".join(kept)


def _initial(first_names: str) -> str:
    runs = "".join(c if is_letter(c) else " " for c in _fold(first_names)).split(" ")
    runs = [r for r in runs if r]
    if not runs:
        return ""
    return "ij" if runs[0].startswith("ij") else runs[0][0]


def normalise_surname(surname: str, tussenvoegsel: str | None = None) -> str:
    """The surname key (see the module docstring); InvalidIdentifier if it has no letters."""
    key = _surname_key(surname, tussenvoegsel)
    if not key:
        raise InvalidIdentifier(f"surname {surname!r} contains no letters")
    return key


def first_initial(first_names: str) -> str:
    """The initial of the first given name (see the module docstring)."""
    initial = _initial(first_names)
    if not initial:
        raise InvalidIdentifier(f"first_names {first_names!r} contains no letters")
    return initial


def bsn_is_valid(bsn: str) -> bool:
    """True for exactly 9 digits, not all zeros, that pass the 11-proef."""
    if len(bsn) != 9 or not bsn.isascii() or not bsn.isdigit():
        return False
    if bsn == "000000000":
        return False
    return sum(w * int(d) for w, d in zip(_BSN_WEIGHTS, bsn, strict=True)) % 11 == 0


# --- field checks shared by the models -------------------------------------------------


def field_error(kind: str, template: str, **context: object) -> PydanticCustomError:
    """A validator error whose message stands alone (it names its field).

    ``template`` uses ``{name}`` placeholders filled from ``context``; user text goes in
    ``context`` (already ``repr``-ed where quoting helps), never into the template.
    """
    return PydanticCustomError(_OWN_ERROR_PREFIX + kind, template, context or None)


def _name_error(message: str, **context: object) -> PydanticCustomError:
    return field_error("invalid_name", message, **context)


def _check_text(field: str, value: object, max_chars: int) -> str:
    if not isinstance(value, str):
        raise _name_error(f"{field} must be a string")
    text = collapse_whitespace(value)
    if not text:
        raise _name_error(f"{field} must not be empty")
    if len(text) > max_chars:
        raise _name_error(f"{field} is longer than {max_chars} characters")
    if not is_printable(text):
        raise _name_error(f"{field} contains control or unprintable characters")
    return text


def _date_from_text(text: str) -> datetime.date | None:
    try:
        if _YMD.fullmatch(text):
            return datetime.date.fromisoformat(text)
        if m := _DMY.fullmatch(text):
            return datetime.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
    except ValueError:
        return None
    return None


def _parse_birth_date(value: object, today: datetime.date) -> datetime.date:
    if isinstance(value, datetime.datetime):
        # a datetime is a date subclass, but a time of day means the caller mixed up fields
        raise field_error("invalid_birth_date", "birth_date must be a date, not a datetime")
    if isinstance(value, datetime.date):
        parsed = value
    elif isinstance(value, str) and (found := _date_from_text(trim_whitespace(value))) is not None:
        parsed = found
    elif isinstance(value, str):
        raise field_error(
            "invalid_birth_date",
            "birth_date {value} is not a date (YYYY-MM-DD or DD-MM-YYYY)",
            value=repr(trim_whitespace(value)[:32]),
        )
    else:
        raise field_error("invalid_birth_date", "birth_date must be a YYYY-MM-DD string")
    if parsed < MIN_BIRTH_DATE:
        raise field_error(
            "invalid_birth_date",
            "birth_date {value} is before 1900-01-01",
            value=parsed.isoformat(),
        )
    if parsed > today:
        raise field_error(
            "invalid_birth_date", "birth_date {value} is in the future", value=parsed.isoformat()
        )
    return parsed


# --- models -----------------------------------------------------------------------------


class BsnIdentifier(BaseModel):
    """A burgerservicenummer, stored as its 9 digits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["bsn"] = "bsn"
    bsn: str

    @field_validator("bsn", mode="before")
    @classmethod
    def _check_bsn(cls, value: object) -> str:
        if not isinstance(value, str):
            # an integer has already lost any leading zero, so we refuse to guess
            raise field_error("invalid_bsn", "BSN must be a string of 9 digits")
        digits = value.replace(" ", "").replace(".", "")
        if len(digits) == 8:
            digits = "0" + digits
        if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
            raise field_error("invalid_bsn", "BSN {value} is not 9 digits", value=repr(value[:32]))
        if not bsn_is_valid(digits):
            raise field_error("invalid_bsn", "BSN {bsn} fails the 11-proef", bsn=digits)
        return digits


class PersonIdentifier(BaseModel):
    """Name and date of birth. Names are kept as given; :func:`subject_key` normalises."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["person"] = "person"
    surname: str
    tussenvoegsel: str | None = None
    first_names: str
    birth_date: datetime.date

    @field_validator("surname", mode="before")
    @classmethod
    def _check_surname(cls, value: object) -> str:
        text = _check_text("surname", value, _MAX_NAME_CHARS)
        if not _surname_key(text, None):
            raise _name_error("surname {value} contains no letters", value=repr(text))
        return text

    @field_validator("tussenvoegsel", mode="before")
    @classmethod
    def _check_tussenvoegsel(cls, value: object) -> str | None:
        if value is None or (isinstance(value, str) and not collapse_whitespace(value)):
            return None
        return _check_text("tussenvoegsel", value, _MAX_TUSSENVOEGSEL_CHARS)

    @field_validator("first_names", mode="before")
    @classmethod
    def _check_first_names(cls, value: object) -> str:
        text = _check_text("first_names", value, _MAX_NAME_CHARS)
        if not _initial(text):
            raise _name_error("first_names {value} contains no letters", value=repr(text))
        return text

    @field_validator("birth_date", mode="before")
    @classmethod
    def _check_birth_date(cls, value: object, info: ValidationInfo) -> datetime.date:
        context = info.context if isinstance(info.context, dict) else {}
        today = context.get(_VALIDATION_TODAY)
        if not isinstance(today, datetime.date):
            # Built in code or parsed without a node (the CLI's check before it sends):
            # the machine's clock. Every node path passes its own clock's date.
            today = amsterdam_date(datetime.datetime.now(datetime.UTC))
        return _parse_birth_date(value, today)


class AddressIdentifier(BaseModel):
    """A Dutch address: postcode, house number and optional addition, all normalised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["address"] = "address"
    postcode: str
    house_number: int
    addition: str | None = None

    @field_validator("postcode", mode="before")
    @classmethod
    def _check_postcode(cls, value: object) -> str:
        if not isinstance(value, str):
            raise field_error("invalid_postcode", "postcode must be a string")
        m = _POSTCODE.fullmatch(trim_whitespace(value))
        if m is None:
            raise field_error(
                "invalid_postcode",
                "postcode {value} is not a Dutch postcode (1234AB)",
                value=repr(value[:32]),
            )
        letters = m.group(2).upper()
        if letters in _FORBIDDEN_POSTCODE_LETTERS:
            raise field_error(
                "invalid_postcode",
                "postcode {value}: the letters SA, SD and SS are not used",
                value=repr(value),
            )
        return m.group(1) + letters

    @field_validator("house_number", mode="before")
    @classmethod
    def _check_house_number(cls, value: object) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and (digits := trim_whitespace(value)).isascii():
            number = int(digits) if digits.isdigit() else None
        if number is None or not 1 <= number <= 99999:
            raise field_error(
                "invalid_house_number",
                "house_number {value} is not a whole number from 1 to 99999",
                value=repr(value)[:32],
            )
        return number

    @field_validator("addition", mode="before")
    @classmethod
    def _check_addition(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise field_error("invalid_addition", "addition must be a string")
        # ASCII upper-casing only: str.upper() would turn "ß" into "SS" and "ﬀ" into "FF"
        cleaned = value.translate(_ADDITION_NOISE)
        if not cleaned:
            return None
        cleaned = cleaned.upper() if cleaned.isascii() else cleaned
        if not _ADDITION.fullmatch(cleaned):
            raise field_error(
                "invalid_addition",
                "addition {value} must be at most 6 letters or digits",
                value=repr(value[:32]),
            )
        return cleaned


SubjectIdentifier = Annotated[
    BsnIdentifier | PersonIdentifier | AddressIdentifier, Field(discriminator="kind")
]

_MODELS: dict[str, type[BsnIdentifier | PersonIdentifier | AddressIdentifier]] = {
    "bsn": BsnIdentifier,
    "person": PersonIdentifier,
    "address": AddressIdentifier,
}


def subject_key(identifier: BsnIdentifier | PersonIdentifier | AddressIdentifier) -> str:
    """The OPRF input for an identifier (see the module docstring for the formats)."""
    if isinstance(identifier, BsnIdentifier):
        return f"bsn:{identifier.bsn}"
    if isinstance(identifier, PersonIdentifier):
        surname = normalise_surname(identifier.surname, identifier.tussenvoegsel)
        initial = first_initial(identifier.first_names)
        return f"person:{surname}|{initial}|{identifier.birth_date.isoformat()}"
    return f"address:{identifier.postcode}|{identifier.house_number}|{identifier.addition or ''}"


# --- registration keys: the subject key and its variants (docs/protocol.md §11.6) -----


def _surname_forms(surname: str, tussenvoegsel: str | None) -> list[str]:
    """The surname key first, then the forms a coordinator may type instead."""
    joined = f"{tussenvoegsel} {surname}" if tussenvoegsel else surname
    forms: list[str] = []
    for folded in (_fold(joined), _fold(joined, transliterate=True)):
        tokens = _tokens(folded)
        kept = [t for t in tokens if t not in TUSSENVOEGSELS]
        forms.append(" ".join(kept or tokens))
        parts = [_tokens(p) for p in _DASHES.split(folded)]
        parts = [p for p in parts if any(t not in TUSSENVOEGSELS for t in p)]
        if len(parts) < 2:
            # one name: also glued, as typed without spaces and apostrophes (Dancona)
            forms.append("".join(tokens).replace("'", ""))
            continue
        for part in parts:
            forms.append(" ".join(t for t in part if t not in TUSSENVOEGSELS))
            forms.append("".join(part).replace("'", ""))
    return list(dict.fromkeys(f for f in forms if f))


def _all_initials(first_names: str) -> list[str]:
    runs = "".join(c if is_letter(c) else " " for c in _fold(first_names)).split(" ")
    return list(dict.fromkeys("ij" if r.startswith("ij") else r[0] for r in runs if r))


def _birth_dates(born: datetime.date) -> list[datetime.date]:
    if born.day > 12 or born.day == born.month:
        return [born]
    return [born, born.replace(month=born.day, day=born.month)]


def registration_keys(
    identifier: BsnIdentifier | PersonIdentifier | AddressIdentifier,
) -> tuple[str, ...]:
    """The keys a registration yields for ``identifier``: its subject key first, then the
    variants a coordinator may type for the same subject (docs/protocol.md §11.6).

    The asker sends the subject key alone; each variant here is one more tag in the
    partner's set, so a typed variant finds the registration without costing the asker
    or the answering partner an element.
    """
    if isinstance(identifier, PersonIdentifier):
        surnames = _surname_forms(identifier.surname, identifier.tussenvoegsel)
        initials = _all_initials(identifier.first_names)
        return tuple(
            f"person:{s}|{i}|{d.isoformat()}"
            for s in surnames
            for i in initials
            for d in _birth_dates(identifier.birth_date)
        )
    key = subject_key(identifier)
    if isinstance(identifier, AddressIdentifier) and identifier.addition:
        return (key, f"address:{identifier.postcode}|{identifier.house_number}|")
    return (key,)


# --- parsing with readable errors -------------------------------------------------------


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    loc = _format_loc(tuple(error["loc"]))
    if kind.startswith(_OWN_ERROR_PREFIX):
        return str(error["msg"])
    if kind == "missing":
        message = "field required"
    elif kind == "extra_forbidden":
        message = "unknown field"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def format_validation_error(error: ValidationError) -> str:
    """One line naming every problem pydantic found, in the order it found them."""
    return "; ".join(_describe(e) for e in error.errors(include_url=False))


def parse_identifier(
    data: Mapping[str, object], *, today: datetime.date | None = None
) -> SubjectIdentifier:
    """Validate one identifier; InvalidBsn / InvalidIdentifier with a one-line message.

    ``today`` is the date a birth date may not lie after: a node passes its clock's
    :func:`amsterdam_date`; without it the machine's clock is read.
    """
    if not isinstance(data, Mapping):
        raise InvalidIdentifier("identifier must be an object with a 'kind'")
    kind = data.get("kind")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        shown = "missing" if kind is None else repr(kind)[:40]
        error = InvalidIdentifier(f"kind must be one of bsn, person, address (got {shown})")
        error.field = "kind"
        raise error
    try:
        context = {_VALIDATION_TODAY: today} if today is not None else None
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        message = format_validation_error(exc)
        errors = exc.errors(include_url=False)
        if any(e["type"] == _OWN_ERROR_PREFIX + "invalid_bsn" for e in errors):
            error = InvalidBsn(message)
        else:
            error = InvalidIdentifier(message)
        loc = errors[0]["loc"] if errors else ()
        error.field = str(loc[0]) if loc else None
        raise error from None
