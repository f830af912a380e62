"""Registrations — what a partner's source system says it knows — and streaming import.

A registration is one record of the source system: its own reference, the themes it falls
under and the identifiers of its subject (a person, or an address). Import files are read
row by row, never whole, and a bad row becomes a :class:`RowError` with its line number
while the good rows around it still come through. An import keeps what it can of a row:
an identifier that does not validate is left out and reported (a ``RowError`` with
``whole_row`` False) while at least one other identifier of the row is valid; the
registration API (:func:`parse_registration`) refuses the whole registration instead.
The formats, for the people who produce the files, are in docs/api.md "Import files".

JSONL (``.jsonl``, ``.ndjson``): one registration object per line, e.g.::

    {"ref": "BPS-2026-000123", "themes": ["veelplegers"],
     "identifiers": [{"kind": "bsn", "bsn": "123456782"},
                     {"kind": "person", "surname": "Berg", "tussenvoegsel": "van der",
                      "first_names": "Jan", "birth_date": "1990-01-31"}]}

Errors name JSON member paths (``identifiers[1].postcode``) and a JSON syntax error the
character column in the line.

CSV: a header line naming some of :data:`CSV_COLUMNS` (``ref`` and ``themes`` required),
delimiter ``,`` or ``;`` taken from the header line. ``themes`` holds one or more themes
separated by ``;`` or ``|``. A row yields a BSN identifier when ``bsn`` is filled, a person
identifier when ``surname``, ``first_names`` and ``birth_date`` are filled (partly filled
is an error), an address identifier when ``postcode`` and ``house_number`` are filled
(likewise). Errors name CSV columns, never the internal ``identifiers[i]``.

Details: a JSONL registration may carry ``"details": {"contactpersoon": "…"}``, the source
system's own text per data category of the convenant catalogue (see
:class:`Registration`). CSV rows cannot carry details: a ``details`` column is not
accepted (it is not in :data:`CSV_COLUMNS`); use JSONL or the registration API.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from node.errors import DetailTooLarge, InputError, InvalidIdentifier
from node.protocol.convenant import ID_PATTERN
from node.protocol.identifiers import (
    SubjectIdentifier,
    field_error,
    format_validation_error,
    parse_identifier,
    registration_keys,
)

__all__ = [
    "CSV_COLUMNS",
    "MAX_DETAIL_CATEGORIES",
    "MAX_DETAIL_CHARS",
    "MAX_IDENTIFIERS",
    "MAX_LINE_CHARS",
    "Registration",
    "RowError",
    "check_details",
    "iter_csv",
    "iter_file",
    "iter_jsonl",
    "parse_registration",
]

MAX_IDENTIFIERS = 16
MAX_REF_CHARS = 128
# A registration with 16 identifiers is a few kB, with 16 details of 4,000 characters at
# most 64,000 characters of text, or ~384 kB written as JSON \uXXXX escapes; anything far
# beyond is not a registration, and refusing it keeps one runaway line from exhausting memory.
MAX_LINE_CHARS = 512 * 1024
# Details: the source system's text per data category (issue 3 item 2). A category id
# follows the convenant catalogue's id pattern (node/protocol/convenant.py ID_PATTERN).
MAX_DETAIL_CATEGORIES = 16
MAX_DETAIL_CHARS = 4_000

CSV_COLUMNS: tuple[str, ...] = (
    "ref",
    "themes",
    "bsn",
    "surname",
    "tussenvoegsel",
    "first_names",
    "birth_date",
    "postcode",
    "house_number",
    "addition",
    "retain_until",
)
_REQUIRED_CSV_COLUMNS = ("ref", "themes")
_PERSON_COLUMNS = ("surname", "first_names", "birth_date")
_ADDRESS_COLUMNS = ("postcode", "house_number")

_THEME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_THEME_SEPARATORS = re.compile(r"[;|]")
# iter_file decodes with surrogateescape so that one bad byte costs one row, not the file;
# such bytes show up as lone surrogates.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
_FIELDS = frozenset({"ref", "themes", "identifiers", "retain_until", "details"})
_CATEGORY_ID = re.compile(ID_PATTERN)
# Control characters (C0, DEL, C1) other than tab and newline, and lone surrogates.
_DETAIL_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class Registration(BaseModel):
    """One record of a partner's source system about one subject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ref: str
    themes: tuple[str, ...]
    identifiers: tuple[SubjectIdentifier, ...]
    # The source system's retention decision: after this day the node purges the
    # registration (docs/audit.md "Retention"); None = until the source removes it.
    retain_until: datetime.date | None = None
    # The source system's detail text per data category (category id → text); empty =
    # none. The partner's own data: stored beside the registration, never logged and
    # never sent anywhere in this version (docs/api.md "Details").
    details: dict[str, str] = Field(default_factory=dict)

    @field_validator("ref", mode="before")
    @classmethod
    def _check_ref(cls, value: object) -> str:
        if not isinstance(value, str):
            raise field_error("invalid_ref", "ref must be a string")
        ref = value.strip()
        if not 1 <= len(ref) <= MAX_REF_CHARS:
            raise field_error("invalid_ref", "ref must be 1 to {n} characters", n=MAX_REF_CHARS)
        if not ref.isprintable():
            raise field_error("invalid_ref", "ref contains control or unprintable characters")
        return ref

    @field_validator("themes", mode="before")
    @classmethod
    def _check_themes(cls, value: object) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            raise field_error("invalid_theme", "themes must be a list of theme names")
        themes: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise field_error("invalid_theme", "themes must be strings")
            theme = item.strip().lower()
            if not _THEME.fullmatch(theme):
                raise field_error(
                    "invalid_theme",
                    "theme {value} must be a-z, 0-9, '_' or '-' (at most 64, starting a-z0-9)",
                    value=repr(item[:70]),
                )
            themes.add(theme)
        if not themes:
            raise field_error("invalid_theme", "themes: at least one theme is required")
        return tuple(sorted(themes))

    @field_validator("identifiers", mode="before")
    @classmethod
    def _check_identifier_count(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            if not value:
                raise field_error(
                    "invalid_identifiers", "identifiers: at least one identifier is required"
                )
            if len(value) > MAX_IDENTIFIERS:
                raise field_error(
                    "invalid_identifiers",
                    "identifiers: at most {n} per registration, got {got}",
                    n=MAX_IDENTIFIERS,
                    got=len(value),
                )
        return value

    @field_validator("details", mode="before")
    @classmethod
    def _check_details(cls, value: object) -> dict[str, str]:
        return check_details(value)

    def subject_keys(self) -> tuple[str, ...]:
        """The keys this registration yields (docs/protocol.md §11.6): of every identifier
        its subject key and the variants of it, sorted and without duplicates. Each
        becomes a tag."""
        return tuple(sorted({k for i in self.identifiers for k in registration_keys(i)}))

    def fingerprint(self, subject_keys: tuple[str, ...] | None = None) -> str:
        """SHA-256 (hex) of the canonical content, so re-importing a row changes nothing.

        The content is the JSON array ``[ref, themes, subject_keys]`` (UTF-8, no spaces,
        non-ASCII unescaped), followed by ``retain_until`` and the details object (keys
        sorted) only when present. Two registrations whose names yield the same keys and
        that differ only in how they were typed, in theme order or in identifier order have
        the same fingerprint.
        """
        # Callers that already hold the keys pass them: name normalisation is the costliest
        # non-crypto step of an import.
        keys = self.subject_keys() if subject_keys is None else subject_keys
        content: list[object] = [self.ref, list(self.themes), list(keys)]
        if self.retain_until is not None:  # absent keeps older fingerprints unchanged
            content.append(self.retain_until.isoformat())
        if self.details:  # likewise: no details, the fingerprint of before details existed
            content.append(dict(sorted(self.details.items())))
        encoded = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def check_details(value: object) -> dict[str, str]:
    """Validate a ``details`` member: ``{category id: text}``; None or ``{}`` is none.

    Text over :data:`MAX_DETAIL_CHARS` raises :class:`DetailTooLarge` naming the category
    (pydantic lets it through unchanged: it is not a ValueError); any other problem is a
    field error, i.e. ``invalid_input``. ``\\r\\n`` becomes ``\\n``; tab and newline are
    the only control characters allowed.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise field_error("invalid_details", "details must be an object of category: text")
    if len(value) > MAX_DETAIL_CATEGORIES:
        raise field_error(
            "invalid_details",
            "details: at most {n} categories per registration, got {got}",
            n=MAX_DETAIL_CATEGORIES,
            got=len(value),
        )
    out: dict[str, str] = {}
    for category, raw_text in value.items():
        if not isinstance(category, str) or not _CATEGORY_ID.fullmatch(category):
            raise field_error(
                "invalid_details",
                "details: category {value} must be a catalogue id (a-z, 0-9, '_', '.', '-';"
                " 2 to 128, starting a-z0-9)",
                value=repr(str(category)[:70]),
            )
        if not isinstance(raw_text, str):
            raise field_error(
                "invalid_details", "details[{cat}] must be a string", cat=repr(category)
            )
        text = raw_text.replace("\r\n", "\n")
        if len(text) > MAX_DETAIL_CHARS:
            raise DetailTooLarge(
                f"details[{category!r}]: {len(text)} characters, at most {MAX_DETAIL_CHARS}"
            )
        if not text.strip():
            raise field_error(
                "invalid_details", "details[{cat}] must not be empty", cat=repr(category)
            )
        if _DETAIL_FORBIDDEN.search(text):
            raise field_error(
                "invalid_details",
                "details[{cat}] contains control characters (only tab and newline are allowed)",
                cat=repr(category),
            )
        out[category] = text
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class RowError:
    """A row that could not be imported, or one identifier of a row that was left out.

    ``line`` is the 1-based physical line the row starts on. ``field`` names where the
    problem is as the file names it: a CSV column (``postcode``) or a JSON member path
    (``identifiers[1].postcode``); None when it is the row as a whole. ``whole_row`` False:
    only this identifier was left out, and the row was imported with its other identifiers.
    """

    line: int
    reason: str
    field: str | None = None
    whole_row: bool = True

    def __str__(self) -> str:
        if self.whole_row:
            return f"line {self.line}: {self.reason} (row refused)"
        return (
            f"line {self.line}: {self.reason} "
            "(identifier left out; the row's other identifiers are imported)"
        )


@dataclass(frozen=True)
class _Problem:
    """A problem found while parsing one row, before it has a line number."""

    field: str | None
    reason: str


class _RowRefused(Exception):
    def __init__(self, problems: list[_Problem]) -> None:
        super().__init__(problems[0].reason)
        self.problems = problems


def parse_registration(
    data: Mapping[str, object], *, today: datetime.date | None = None
) -> Registration:
    """Validate one registration, all or nothing (the registration API): InputError
    subclasses with a one-line message; one bad identifier refuses the registration.

    ``today``: the last valid birth date (see :func:`parse_identifier`).
    """
    if not isinstance(data, Mapping):
        raise InputError("a registration must be a JSON object")
    raw = _raw_identifiers(data)
    identifiers: list[SubjectIdentifier] = []
    for index, item in enumerate(raw):
        try:
            identifiers.append(parse_identifier(item, today=today))
        except InvalidIdentifier as exc:
            raise type(exc)(f"identifiers[{index}]: {exc.detail}") from None
    try:
        return _validated(data, identifiers)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc)) from None


def _raw_identifiers(data: Mapping[str, object]) -> Sequence[Any]:
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        raise InputError(f"unknown field(s): {', '.join(unknown)}")
    raw = data.get("identifiers")
    if raw is None:
        raise InputError("identifiers: field required")
    if not isinstance(raw, list | tuple):
        raise InputError("identifiers must be a list")
    if not raw:
        raise InputError("identifiers: at least one identifier is required")
    if len(raw) > MAX_IDENTIFIERS:
        raise InputError(f"identifiers: at most {MAX_IDENTIFIERS} per registration, got {len(raw)}")
    return raw


def _validated(data: Mapping[str, object], identifiers: list[SubjectIdentifier]) -> Registration:
    fields: dict[str, object] = {
        k: data[k] for k in ("ref", "themes", "retain_until", "details") if k in data
    }
    fields["identifiers"] = identifiers
    return Registration.model_validate(fields)


def _validation_problem(exc: ValidationError, *, column: bool) -> _Problem:
    """A refused row's problem, named by the field of the first thing pydantic found."""
    errors = exc.errors(include_url=False)
    loc = tuple(errors[0]["loc"]) if errors else ()
    name = str(loc[0]) if loc else None
    return _Problem(name, _named(name, format_validation_error(exc), column=column))


def _named(name: str | None, text: str, *, column: bool) -> str:
    """``text`` said of ``name``: "column postcode: …" (CSV) or "identifiers[1]: …"."""
    if name is None:
        return text
    if not column:
        return text if text.startswith(name) else f"{name}: {text}"
    for prefix in (f"{name}: ", f"{name} "):
        if text.startswith(prefix):
            text = text.removeprefix(prefix)
            break
    return f"column {name}: {text}"


def _import_registration(
    data: Mapping[str, object], today: datetime.date | None
) -> tuple[Registration, list[_Problem]]:
    """A JSONL row: a bad identifier is left out (and reported) while at least one is
    valid; any other problem refuses the row (InputError)."""
    raw = _raw_identifiers(data)
    identifiers: list[SubjectIdentifier] = []
    left_out: list[_Problem] = []
    for index, item in enumerate(raw):
        try:
            identifiers.append(parse_identifier(item, today=today))
        except InvalidIdentifier as exc:
            where = f"identifiers[{index}]"
            field = f"{where}.{exc.field}" if exc.field else where
            left_out.append(_Problem(field, f"{where}: {exc.detail}"))
    if not identifiers:
        raise _RowRefused(left_out)
    try:
        return _validated(data, identifiers), left_out
    except ValidationError as exc:
        raise _RowRefused([_validation_problem(exc, column=False)]) from None


def _row_result(
    line_no: int, registration: Registration, left_out: list[_Problem]
) -> list[Registration | RowError]:
    return [
        *(RowError(line_no, p.reason, p.field, whole_row=False) for p in left_out),
        registration,
    ]


def _refused(line_no: int, problems: list[_Problem]) -> RowError:
    """One error for a refused row: every problem named, the first one's field."""
    return RowError(line_no, "; ".join(p.reason for p in problems), problems[0].field)


# --- JSONL ------------------------------------------------------------------------------


def _read_lines(stream: TextIO) -> Iterator[str | None]:
    """Physical lines, each at most MAX_LINE_CHARS; None stands for an over-long line."""
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            # drain the rest of the line in bounded pieces rather than holding it
            while True:
                rest = stream.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith(("\n", "\r")):
                    break
            yield None
            continue
        yield line


def iter_jsonl(
    stream: TextIO, *, today: datetime.date | None = None
) -> Iterator[tuple[int, Registration | RowError]]:
    """Registrations from a JSON-lines stream; blank lines are skipped.

    A row imported without some of its identifiers yields a :class:`RowError` with
    ``whole_row`` False for each identifier left out, then the registration, all with the
    row's line number.
    """
    line_no = 0
    for line in _read_lines(stream):
        line_no += 1
        if line is None:
            yield line_no, RowError(line_no, f"line longer than {MAX_LINE_CHARS} characters")
            continue
        if not line.strip():
            continue
        for item in _jsonl_row(line_no, line, today):
            yield line_no, item


def _jsonl_row(
    line_no: int, line: str, today: datetime.date | None
) -> list[Registration | RowError]:
    if _UNDECODABLE.search(line):
        return [RowError(line_no, "line is not valid UTF-8")]
    # Without its line break: JSON would count the break as a line of its own and name
    # "column 1" of it for anything that goes wrong at the end of the row.
    text = line.rstrip("\r\n")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = "at the end of the line" if exc.pos >= len(text) else f"at column {exc.pos + 1}"
        return [RowError(line_no, f"invalid JSON: {exc.msg} {where}")]
    except RecursionError:
        return [RowError(line_no, "invalid JSON: nested too deeply")]
    if not isinstance(data, dict):
        return [RowError(line_no, "a registration must be a JSON object")]
    try:
        registration, left_out = _import_registration(data, today)
    except _RowRefused as exc:
        return [_refused(line_no, exc.problems)]
    except DetailTooLarge as exc:
        return [RowError(line_no, exc.detail, "details")]
    except InputError as exc:
        return [RowError(line_no, exc.detail)]
    return _row_result(line_no, registration, left_out)


# --- CSV --------------------------------------------------------------------------------


def _sniff_delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _header_problem(columns: list[str]) -> str | None:
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        return (
            f"unknown column(s): {', '.join(repr(c) for c in unknown)}; "
            f"allowed: {', '.join(CSV_COLUMNS)}"
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        return f"duplicate column(s): {', '.join(duplicates)}"
    missing = [c for c in _REQUIRED_CSV_COLUMNS if c not in columns]
    if missing:
        return f"missing required column(s): {', '.join(missing)}"
    return None


def iter_csv(
    stream: TextIO, *, today: datetime.date | None = None
) -> Iterator[tuple[int, Registration | RowError]]:
    """Registrations from a CSV stream with a header line (see the module docstring)."""
    header = stream.readline(MAX_LINE_CHARS + 1)
    if not header.strip():
        yield 1, RowError(1, "missing header line")
        return
    if len(header) > MAX_LINE_CHARS:
        yield 1, RowError(1, f"header line longer than {MAX_LINE_CHARS} characters")
        return
    delimiter = _sniff_delimiter(header)
    try:
        names = next(csv.reader([header.lstrip("\ufeff")], delimiter=delimiter))
    except csv.Error as exc:
        yield 1, RowError(1, f"unreadable header line: {exc}")
        return
    columns = [n.strip().lower() for n in names]
    problem = _header_problem(columns)
    if problem is not None:
        yield 1, RowError(1, problem)
        return

    too_long: list[int] = []  # physical line numbers, ascending
    reader = csv.reader(_bounded_lines(stream, too_long), delimiter=delimiter)
    consumed = 1  # physical lines read so far, the header included
    while True:
        start = consumed + 1
        problem = ""
        try:
            fields: list[str] | None = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            fields, problem = None, f"unreadable CSV row: {exc}"
        consumed = 1 + reader.line_num
        while too_long and too_long[0] < start:
            too_long.pop(0)
        if too_long and too_long[0] <= consumed:
            yield start, RowError(too_long[0], f"line longer than {MAX_LINE_CHARS} characters")
            continue
        if fields is None:
            yield start, RowError(start, problem)
            continue
        if not any(f.strip() for f in fields):
            continue
        for item in _csv_row(start, columns, fields, today):
            yield start, item


def _bounded_lines(stream: TextIO, too_long: list[int]) -> Iterator[str]:
    """Physical lines after the header; an over-long one is noted and yielded empty."""
    line_no = 1
    for line in _read_lines(stream):
        line_no += 1
        if line is None:
            too_long.append(line_no)
            yield "\n"
        else:
            yield line


def _csv_row(
    line_no: int, columns: list[str], fields: list[str], today: datetime.date | None
) -> list[Registration | RowError]:
    if len(fields) != len(columns):
        return [
            RowError(
                line_no,
                f"expected {len(columns)} fields (one per header column), found {len(fields)}",
            )
        ]
    row = {c: f.strip() for c, f in zip(columns, fields, strict=True)}
    for column, value in row.items():
        if _UNDECODABLE.search(value):
            return [RowError(line_no, f"column {column}: not valid UTF-8", column)]
    identifiers: list[SubjectIdentifier] = []
    left_out: list[_Problem] = []
    for built in _csv_identifiers(row):
        if isinstance(built, _Problem):
            left_out.append(built)
            continue
        try:
            identifiers.append(parse_identifier(built, today=today))
        except InvalidIdentifier as exc:
            column = exc.field if exc.field in row else _KIND_COLUMN[str(built["kind"])]
            left_out.append(_Problem(column, _named(column, exc.detail, column=True)))
    if not identifiers:
        if not left_out:
            left_out = [_Problem(None, _NO_IDENTIFIER)]
        return [_refused(line_no, left_out)]
    themes = [t for t in _THEME_SEPARATORS.split(row.get("themes", "")) if t.strip()]
    data: dict[str, object] = {"ref": row.get("ref", ""), "themes": themes}
    if row.get("retain_until"):
        data["retain_until"] = row["retain_until"]
    try:
        registration = _validated(data, identifiers)
    except ValidationError as exc:
        return [_refused(line_no, [_validation_problem(exc, column=True)])]
    except InputError as exc:
        return [RowError(line_no, exc.detail)]
    return _row_result(line_no, registration, left_out)


def _columns(names: list[str]) -> str:
    return ("column " if len(names) == 1 else "columns ") + ", ".join(names)


_NO_IDENTIFIER = (
    "no identifier: fill bsn, or surname, first_names and birth_date, or postcode and house_number"
)
# The column an identifier's problem is reported under when it names no field of its own.
_KIND_COLUMN = {"bsn": "bsn", "person": "surname", "address": "postcode"}


def _csv_identifiers(row: Mapping[str, str]) -> Iterator[dict[str, object] | _Problem]:
    """The identifiers a CSV row fills in (at most one of each kind), or the problem of
    a partly filled one."""

    def filled(name: str) -> bool:
        return bool(row.get(name))

    if filled("bsn"):
        yield {"kind": "bsn", "bsn": row["bsn"]}
    if any(filled(c) for c in (*_PERSON_COLUMNS, "tussenvoegsel")):
        missing = [c for c in _PERSON_COLUMNS if not filled(c)]
        if missing:
            yield _Problem(
                missing[0],
                f"{_columns(missing)} empty: a person needs surname, first_names and birth_date",
            )
        else:
            yield {
                "kind": "person",
                "surname": row["surname"],
                "tussenvoegsel": row.get("tussenvoegsel") or None,
                "first_names": row["first_names"],
                "birth_date": row["birth_date"],
            }
    if any(filled(c) for c in (*_ADDRESS_COLUMNS, "addition")):
        missing = [c for c in _ADDRESS_COLUMNS if not filled(c)]
        if missing:
            yield _Problem(
                missing[0],
                f"{_columns(missing)} empty: an address needs postcode and house_number",
            )
        else:
            yield {
                "kind": "address",
                "postcode": row["postcode"],
                "house_number": row["house_number"],
                "addition": row.get("addition") or None,
            }


# --- files ------------------------------------------------------------------------------

_SUFFIX_FORMATS: dict[str, Literal["csv", "jsonl"]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_READERS: dict[str, Callable[..., Iterator[tuple[int, Registration | RowError]]]] = {
    "csv": iter_csv,
    "jsonl": iter_jsonl,
}


def iter_file(
    path: Path,
    fmt: Literal["csv", "jsonl"] | None = None,
    *,
    today: datetime.date | None = None,
) -> Iterator[tuple[int, Registration | RowError]]:
    """Registrations from a file; the format comes from ``fmt`` or the file's suffix.

    ``today``: the last valid birth date (see :func:`parse_identifier`).

    An unknown format or an unreadable file raises InputError at once, before iteration.
    """
    path = Path(path)
    chosen = fmt or _SUFFIX_FORMATS.get(path.suffix.lower())
    if chosen is None or chosen not in _READERS:
        raise InputError(
            f"{path.name}: cannot tell the format; use a .csv, .jsonl or .ndjson file or name it"
        )
    try:
        stream = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    return _close_after(stream, _READERS[chosen](stream, today=today))


def _close_after(
    stream: TextIO, rows: Iterable[tuple[int, Registration | RowError]]
) -> Iterator[tuple[int, Registration | RowError]]:
    with stream:
        yield from rows
