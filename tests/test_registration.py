from __future__ import annotations

import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from node.demo.synthetic import make_bsn
from node.errors import InputError, InvalidBsn, InvalidIdentifier
from node.protocol.registration import (
    MAX_LINE_CHARS,
    Registration,
    RowError,
    iter_csv,
    iter_file,
    iter_jsonl,
    parse_registration,
)

JAN = {
    "kind": "person",
    "surname": "Berg",
    "tussenvoegsel": "van der",
    "first_names": "Jan",
    "birth_date": "1990-01-31",
}


def _reg(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ref": "BPS-2026-000123",
        "themes": ["veelplegers"],
        "identifiers": [{"kind": "bsn", "bsn": "123456782"}, JAN],
    }
    return base | overrides


# --- parse_registration -----------------------------------------------------------------


def test_parse_registration_normalises_themes_and_sorts_subject_keys() -> None:
    registration = parse_registration(
        _reg(themes=["Veelplegers", " hennep ", "veelplegers"], identifiers=[JAN, JAN])
    )
    assert registration.themes == ("hennep", "veelplegers")
    # the subject key, and the variant typed with the tussenvoegsel glued on (§11.6)
    assert registration.subject_keys() == (
        "person:berg|j|1990-01-31",
        "person:vanderberg|j|1990-01-31",
    )


def test_subject_keys_are_sorted_and_unique() -> None:
    registration = parse_registration(
        _reg(
            identifiers=[
                JAN,
                {"kind": "bsn", "bsn": "123456782"},
                {"kind": "bsn", "bsn": "123 456 782"},
            ]
        )
    )
    assert registration.subject_keys() == (
        "bsn:123456782",
        "person:berg|j|1990-01-31",
        "person:vanderberg|j|1990-01-31",
    )


def test_bad_bsn_names_its_identifier_index() -> None:
    data = _reg(identifiers=[{"kind": "bsn", "bsn": "123456789"}])
    with pytest.raises(InvalidBsn) as info:
        parse_registration(data)
    assert info.value.detail == "identifiers[0]: BSN 123456789 fails the 11-proef"


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (_reg(identifiers=[JAN | {"surname": ""}]), InvalidIdentifier, "identifiers[0]: surname"),
        (_reg(identifiers=[]), InputError, "identifiers: at least one identifier is required"),
        (_reg(identifiers=[JAN] * 17), InputError, "identifiers: at most 16 per registration"),
        (_reg(identifiers="123456782"), InputError, "identifiers must be a list"),
        ({"ref": "x", "themes": ["a"]}, InputError, "identifiers: field required"),
        (_reg(colour="red"), InputError, "unknown field(s): colour"),
        (_reg(themes=[]), InputError, "themes: at least one theme is required"),
        (_reg(themes="veelplegers"), InputError, "themes must be a list"),
        (_reg(themes=["Huiselijk geweld"]), InputError, "theme 'Huiselijk geweld' must be"),
        (_reg(themes=["_x"]), InputError, "theme '_x'"),
        (_reg(themes=["a" * 65]), InputError, "theme 'aaaa"),
        (_reg(ref="x" * 129), InputError, "ref must be 1 to 128 characters"),
        (_reg(ref="   "), InputError, "ref must be 1 to 128 characters"),
        (_reg(ref="A\x07B"), InputError, "ref contains control"),
        (_reg(ref=42), InputError, "ref must be a string"),
        ({"themes": ["a"], "identifiers": [JAN]}, InputError, "ref: field required"),
    ],
)
def test_parse_registration_rejects_with_one_line_message(
    data: dict[str, Any], error: type[InputError], message: str
) -> None:
    with pytest.raises(error) as info:
        parse_registration(data)
    assert message in info.value.detail
    assert "\n" not in info.value.detail


def test_ref_and_themes_edge_values_are_accepted() -> None:
    registration = parse_registration(_reg(ref="R" * 128, themes=["a", "z9_-" + "x" * 60]))
    assert len(registration.ref) == 128
    assert registration.themes == ("a", "z9_-" + "x" * 60)


# --- fingerprint ------------------------------------------------------------------------


def test_fingerprint_is_sha256_of_ref_themes_and_subject_keys() -> None:
    registration = parse_registration(_reg())
    content = (
        '["BPS-2026-000123",["veelplegers"],'
        '["bsn:123456782","person:berg|j|1990-01-31","person:vanderberg|j|1990-01-31"]]'
    )
    assert registration.fingerprint() == hashlib.sha256(content.encode()).hexdigest()


def test_fingerprint_ignores_order_case_and_typing_of_the_same_content() -> None:
    a = parse_registration(_reg(themes=["veelplegers", "hennep"]))
    b = parse_registration(
        _reg(
            themes=["HENNEP", "veelplegers", "hennep"],
            identifiers=[
                {
                    "kind": "person",
                    "surname": "VAN DER  BERG",
                    "first_names": "J.",
                    "birth_date": "31-01-1990",
                },
                {"kind": "bsn", "bsn": "1234.56.782"},
            ],
        )
    )
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"ref": "BPS-2026-000124"},
        {"themes": ["hennep"]},
        {"identifiers": [{"kind": "bsn", "bsn": "123456782"}]},
    ],
)
def test_fingerprint_changes_with_content(change: dict[str, Any]) -> None:
    assert (
        parse_registration(_reg()).fingerprint() != parse_registration(_reg(**change)).fingerprint()
    )


def test_fingerprint_survives_a_json_round_trip() -> None:
    registration = parse_registration(_reg())
    again = parse_registration(json.loads(registration.model_dump_json()))
    assert again == registration
    assert again.fingerprint() == registration.fingerprint()


# --- JSONL ------------------------------------------------------------------------------


def _rows(
    results: list[tuple[int, Registration | RowError]],
) -> tuple[dict[int, str], dict[int, str]]:
    good = {n: r.ref for n, r in results if isinstance(r, Registration)}
    bad = {n: r.reason for n, r in results if isinstance(r, RowError)}
    for n, r in results:
        if isinstance(r, RowError):
            assert r.line == n
    return good, bad


def test_iter_jsonl_keeps_valid_rows_and_reports_bad_ones_by_line() -> None:
    lines = [
        json.dumps(_reg(ref="R1")),
        "",
        json.dumps(_reg(ref="R3", identifiers=[{"kind": "bsn", "bsn": "123456789"}])),
        '{"ref": "R4", ',
        "   ",
        json.dumps(_reg(ref="R6")),
        json.dumps(["not", "an", "object"]),
        json.dumps(_reg(ref="R8", themes=[])),
        json.dumps(_reg(ref="R9", identifiers=[JAN | {"postcode": "4331AB"}])),
        json.dumps(_reg(ref="R10")),
    ]
    results = list(iter_jsonl(io.StringIO("\n".join(lines) + "\n")))
    good, bad = _rows(results)
    assert good == {1: "R1", 6: "R6", 10: "R10"}
    assert bad == {
        3: "identifiers[0]: BSN 123456789 fails the 11-proef",
        4: bad[4],
        7: "a registration must be a JSON object",
        8: "themes: at least one theme is required",
        9: "identifiers[0]: postcode: unknown field",
    }
    assert bad[4].startswith("invalid JSON:")
    row_error = dict(results)[3]
    assert str(row_error) == (
        "line 3: identifiers[0]: BSN 123456789 fails the 11-proef (row refused)"
    )


def test_iter_jsonl_handles_crlf_and_a_missing_final_newline() -> None:
    text = json.dumps(_reg(ref="A")) + "\r\n" + json.dumps(_reg(ref="B"))
    good, bad = _rows(list(iter_jsonl(io.StringIO(text, newline=""))))
    assert good == {1: "A", 2: "B"}
    assert bad == {}


def test_iter_jsonl_rejects_an_over_long_line_and_continues() -> None:
    huge = json.dumps(_reg(ref="X" * (MAX_LINE_CHARS + 10)))
    text = "\n".join([json.dumps(_reg(ref="A")), huge, json.dumps(_reg(ref="C"))]) + "\n"
    good, bad = _rows(list(iter_jsonl(io.StringIO(text))))
    assert good == {1: "A", 3: "C"}
    assert bad == {2: f"line longer than {MAX_LINE_CHARS} characters"}


def test_iter_jsonl_survives_deeply_nested_json() -> None:
    depth = MAX_LINE_CHARS // 2 - 1  # within the line limit, far beyond the recursion limit
    text = "[" * depth + "]" * depth + "\n" + json.dumps(_reg(ref="B")) + "\n"
    good, bad = _rows(list(iter_jsonl(io.StringIO(text))))
    assert good == {2: "B"}
    assert bad == {1: "invalid JSON: nested too deeply"}


# --- CSV --------------------------------------------------------------------------------

HEADER = (
    "ref,themes,bsn,surname,tussenvoegsel,first_names,birth_date,postcode,house_number,addition"
)


def test_iter_csv_builds_each_kind_of_identifier() -> None:
    text = (
        HEADER + "\n"
        "A1,veelplegers;hennep,123456782,Berg,van der,Jan,31-01-1990,4331 ab,12,a\n"
        "A2,zorg|verslaving,111222333,,,,,,,\n"
        "A3,woonoverlast,,,,,,4331AB,12,\n"
    )
    results = [r for _, r in iter_csv(io.StringIO(text))]
    assert all(isinstance(r, Registration) for r in results)
    keys = [r.subject_keys() for r in results if isinstance(r, Registration)]
    assert keys == [
        (
            "address:4331AB|12|",  # the address without its addition: a variant (§11.6)
            "address:4331AB|12|A",
            "bsn:123456782",
            "person:berg|j|1990-01-31",
            "person:vanderberg|j|1990-01-31",
        ),
        ("bsn:111222333",),
        ("address:4331AB|12|",),
    ]
    first = results[0]
    assert isinstance(first, Registration)
    assert first.themes == ("hennep", "veelplegers")


def test_iter_csv_mixed_rows_report_physical_line_numbers() -> None:
    text = (
        HEADER + "\n"  # line 1
        "A2,veelplegers,123456782,,,,,,,\n"  # 2 ok
        "A3,veelplegers,123456789,,,,,,,\n"  # 3 bad BSN
        "\n"  # 4 blank, skipped
        '"A5\nstill A5",veelplegers,123456782,,,,,,,\n'  # 5-6 one row over two lines (bad ref)
        'A7,veelplegers,,"Berg\nmore",,Jan,1990-01-31,,,\n'  # 7-8 ok, starts on line 7
        "A9,veelplegers,,Berg,,,1990-01-31,,,\n"  # 9 person incomplete
        "A10,veelplegers,,,,,,4331AB,,\n"  # 10 address incomplete
        "A11,veelplegers,123456782\n"  # 11 too few fields
        "A12,veelplegers,,,,,,4331AB,12,\n"  # 12 ok
        "A13,,123456782,,,,,,,\n"  # 13 no themes
        "A14,veelplegers,,,,,,,,\n"  # 14 no identifiers
        "A15,veelplegers,,Berg,,Jan,2999-01-01,,,\n"  # 15 future birth date
    )
    good, bad = _rows(list(iter_csv(io.StringIO(text))))
    assert good == {2: "A2", 7: "A7", 12: "A12"}
    # CSV errors name the column, never the internal identifiers[i] (issue 9 item 15).
    assert bad == {
        3: "column bsn: BSN 123456789 fails the 11-proef",
        5: "column ref: contains control or unprintable characters",
        9: "column first_names empty: a person needs surname, first_names and birth_date",
        10: "column house_number empty: an address needs postcode and house_number",
        11: "expected 10 fields (one per header column), found 3",
        13: "column themes: at least one theme is required",
        14: "no identifier: fill bsn, or surname, first_names and birth_date, "
        "or postcode and house_number",
        15: "column birth_date: 2999-01-01 is in the future",
    }


def test_iter_csv_sniffs_semicolon_delimiter_and_accepts_header_case_and_subset() -> None:
    text = "Ref; Themes; BSN\nA;veelplegers|hennep;123456782\nB;zorg;111222333\n"
    results = [r for _, r in iter_csv(io.StringIO(text))]
    assert [r.ref for r in results if isinstance(r, Registration)] == ["A", "B"]
    first = results[0]
    assert isinstance(first, Registration)
    assert first.themes == ("hennep", "veelplegers")


def test_iter_csv_unknown_column_is_an_error_on_the_header_and_stops() -> None:
    text = "ref,themes,bsn,colour\nA,veelplegers,123456782,red\n"
    results = list(iter_csv(io.StringIO(text)))
    assert len(results) == 1
    line, error = results[0]
    assert line == 1
    assert isinstance(error, RowError)
    assert error.line == 1
    assert error.reason.startswith("unknown column(s): 'colour'")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "missing header line"),
        ("\n", "missing header line"),
        ("ref,bsn\nA,123456782\n", "missing required column(s): themes"),
        ("ref,themes,bsn,BSN\n", "duplicate column(s): bsn"),
    ],
)
def test_iter_csv_header_problems(text: str, reason: str) -> None:
    assert list(iter_csv(io.StringIO(text))) == [(1, RowError(1, reason))]


def test_iter_csv_strips_a_byte_order_mark_from_the_header() -> None:
    results = list(iter_csv(io.StringIO("\ufeffref,themes,bsn\nA,x,123456782\n")))
    assert isinstance(results[0][1], Registration)


def test_iter_csv_rejects_an_over_long_line_and_continues() -> None:
    text = f"ref,themes,bsn\nA,x,123456782\nB,x,{'1' * (MAX_LINE_CHARS + 5)}\nC,x,123456782\n"
    good, bad = _rows(list(iter_csv(io.StringIO(text))))
    assert good == {2: "A", 4: "C"}
    assert bad == {3: f"line longer than {MAX_LINE_CHARS} characters"}


# --- one bad identifier costs that identifier, not the row (issue 9 items 14, 15) --------


def test_jsonl_keeps_the_valid_identifiers_of_a_row_and_reports_the_bad_one() -> None:
    postcode = {"kind": "address", "postcode": "4331 SA", "house_number": 12}
    row = _reg(ref="R1", identifiers=[{"kind": "bsn", "bsn": "123456782"}, postcode, JAN])
    results = list(iter_jsonl(io.StringIO(json.dumps(row) + "\n")))
    assert [line for line, _ in results] == [1, 1]
    left_out, registration = results[0][1], results[1][1]
    assert left_out == RowError(
        1,
        "identifiers[1]: postcode '4331 SA': the letters SA, SD and SS are not used",
        "identifiers[1].postcode",
        whole_row=False,
    )
    assert str(left_out).endswith("(identifier left out; the row's other identifiers are imported)")
    assert isinstance(registration, Registration)
    assert registration.subject_keys() == (
        "bsn:123456782",
        "person:berg|j|1990-01-31",
        "person:vanderberg|j|1990-01-31",  # the glued variant (docs/protocol.md §11.6)
    )


def test_jsonl_refuses_a_row_whose_every_identifier_is_bad_naming_each() -> None:
    bad = [{"kind": "bsn", "bsn": "123456789"}, {"kind": "nope"}]
    [(_, error)] = list(iter_jsonl(io.StringIO(json.dumps(_reg(identifiers=bad)))))
    assert error == RowError(
        1,
        "identifiers[0]: BSN 123456789 fails the 11-proef; "
        "identifiers[1]: kind must be one of bsn, person, address (got 'nope')",
        "identifiers[0].bsn",
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"ref": "R4", ', "invalid JSON: Expecting property name enclosed in double quotes "
         "at the end of the line"),
        ('{"ref": "R4" "themes": []}', "invalid JSON: Expecting ',' delimiter at column 14"),
        ('  {"ref": x}', "invalid JSON: Expecting value at column 11"),
    ],
)  # fmt: skip
def test_a_jsonl_syntax_error_names_the_column_in_the_line(text: str, reason: str) -> None:
    # The line break used to count as a line of its own: every error at the end of a row
    # was "at column 1".
    [(_, error)] = list(iter_jsonl(io.StringIO(text + "\n")))
    assert error == RowError(1, reason)


def test_csv_keeps_a_valid_bsn_beside_an_unusual_postcode() -> None:
    text = (
        "ref;themes;bsn;postcode;house_number;surname;first_names;birth_date\n"
        "A1;veelplegers;123456782;4331 SA;12;;;\n"
        "A2;veelplegers;123456789;;;Berg;Jan;31-02-1990\n"
        "A3;veelplegers;;4331AB;12;Berg;;1990-01-31\n"
    )
    results = list(iter_csv(io.StringIO(text)))
    good = [(n, r.subject_keys()) for n, r in results if isinstance(r, Registration)]
    bad = [(n, r.field, r.whole_row, r.reason) for n, r in results if isinstance(r, RowError)]
    assert good == [(2, ("bsn:123456782",)), (4, ("address:4331AB|12|",))]
    assert bad == [
        (2, "postcode", False,
         "column postcode: '4331 SA': the letters SA, SD and SS are not used"),
        (3, "bsn", True, "column bsn: BSN 123456789 fails the 11-proef; column birth_date: "
         "'31-02-1990' is not a date (YYYY-MM-DD or DD-MM-YYYY)"),
        (4, "first_names", False,
         "column first_names empty: a person needs surname, first_names and birth_date"),
    ]  # fmt: skip
    assert not any("identifiers" in reason for *_, reason in bad)


# --- files ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".JSONL"])
def test_iter_file_reads_jsonl_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"export{suffix}"
    path.write_text(json.dumps(_reg(ref="Ä1")) + "\n", encoding="utf-8")
    results = list(iter_file(path))
    assert [(n, r.ref) for n, r in results if isinstance(r, Registration)] == [(1, "Ä1")]


def test_iter_file_reads_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    text = "ref;themes;surname;first_names;birth_date\r\nA;veelplegers;Çelik;Ayşe;01-02-2000\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    results = list(iter_file(path))
    assert len(results) == 1
    line, registration = results[0]
    assert line == 2
    assert isinstance(registration, Registration)
    # 01-02: also registered with day and month swapped (§11.6)
    assert registration.subject_keys() == ("person:celik|a|2000-01-02", "person:celik|a|2000-02-01")


def test_iter_file_format_argument_overrides_the_suffix(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("ref,themes,bsn\nA,x,123456782\n", encoding="utf-8")
    with pytest.raises(InputError, match="cannot tell the format"):
        iter_file(path)
    assert [n for n, _ in iter_file(path, "csv")] == [2]


def test_iter_file_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        iter_file(tmp_path / "absent.csv")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_iter_file_invalid_utf8_costs_only_that_row(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"export.{fmt}"
    if fmt == "csv":
        rows = [
            b"ref,themes,surname,first_names,birth_date",
            b"A,x,Berg,Jan,1990-01-31",
            b"B,x,B\xe9rg,Jan,1990-01-31",
            b"C,x,Berg,Jan,1990-01-31",
        ]
    else:
        rows = [
            json.dumps(_reg(ref="A")).encode(),
            json.dumps(_reg(ref="B")).encode().replace(b"Berg", b"B\xe9rg"),
            json.dumps(_reg(ref="C")).encode(),
        ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    good, bad = _rows(list(iter_file(path)))
    offset = 1 if fmt == "csv" else 0
    assert good == {1 + offset: "A", 3 + offset: "C"}
    assert list(bad) == [2 + offset]
    assert "not valid UTF-8" in bad[2 + offset]


# --- streaming a large file -------------------------------------------------------------


class _CountingFile(io.FileIO):
    """A raw file that counts the bytes handed to the buffered reader above it."""

    bytes_read = 0

    def readinto(self, buffer: Any) -> int | None:
        n = super().readinto(buffer)
        self.bytes_read += n or 0
        return n


def test_iter_csv_streams_200000_rows_without_reading_the_file_at_once(tmp_path: Path) -> None:
    rows = 200_000
    rng = random.Random(7)
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("ref,themes,bsn,surname,tussenvoegsel,first_names,birth_date\n")
        for i in range(rows):
            if i % 10 == 0:
                out.write(f"BPS-{i:07d},veelplegers,{make_bsn(rng)},Berg,van der,Jan,1990-01-31\n")
            else:
                out.write(f"BPS-{i:07d},veelplegers;hennep,{make_bsn(rng)},,,,\n")
    size = path.stat().st_size

    raw = _CountingFile(path, "r")
    stream = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="")
    count = 0
    read_at_first = read_at_half = 0
    with stream:
        for line, result in iter_csv(stream):
            assert isinstance(result, Registration), (line, result)
            count += 1
            if count == 1:
                read_at_first = raw.bytes_read
            elif count == rows // 2:
                read_at_half = raw.bytes_read
    assert count == rows
    assert read_at_first < 64 * 1024 < size
    assert read_at_half < 0.6 * size
