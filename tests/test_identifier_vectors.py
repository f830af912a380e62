"""docs/protocol.md §11: the character classes, the test vectors of §11.7 read from the
spec itself, and the date a birth date is checked against."""

from __future__ import annotations

import datetime
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from node.errors import InvalidBsn, InvalidIdentifier
from node.protocol.identifiers import (
    WHITESPACE,
    amsterdam_date,
    collapse_whitespace,
    is_letter,
    is_printable,
    parse_identifier,
    registration_keys,
    subject_key,
)
from tests.federation import Federation, statuses

SPEC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
DEFAULT_TODAY = datetime.date(2026, 12, 3)


def _vectors() -> list[dict[str, Any]]:
    text = SPEC.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- identifier-vectors:begin -->\n```jsonl\n(.*?)```\n<!-- identifier-vectors:end -->",
        text,
        re.DOTALL,
    )
    assert block is not None, "docs/protocol.md §11.7 lost its vector block"
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()]


VECTORS = _vectors()


def test_the_spec_holds_vectors_of_every_kind_and_outcome() -> None:
    kinds = {(v["identifier"]["kind"], "error" in v) for v in VECTORS}
    assert kinds == {(k, e) for k in ("bsn", "person", "address") for e in (False, True)}
    assert any("registration_keys" in v for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[str(i) for i in range(len(VECTORS))])
def test_vector(vector: dict[str, Any]) -> None:
    today = datetime.date.fromisoformat(vector.get("today", DEFAULT_TODAY.isoformat()))
    if "error" in vector:
        expected = InvalidBsn if vector["error"] == "invalid_bsn" else InvalidIdentifier
        with pytest.raises(InvalidIdentifier) as info:
            parse_identifier(vector["identifier"], today=today)
        assert type(info.value) is expected
        return
    identifier = parse_identifier(vector["identifier"], today=today)
    assert subject_key(identifier) == vector["key"]
    keys = registration_keys(identifier)
    assert keys[0] == vector["key"]
    assert set(keys) == set(vector.get("registration_keys", [vector["key"]]))
    assert len(set(keys)) == len(keys)


# --- the character classes are the ones the spec names -------------------------------------


def test_letters_are_general_category_l_not_the_alphabetic_property() -> None:
    assert is_letter("a")
    assert is_letter("ß")
    assert is_letter("ʰ")
    assert is_letter("श")
    # Mc (Devanagari vowel sign aa) and Me are Alphabetic in Unicode but not letters here
    assert not is_letter("\u093e")
    assert not is_letter("\u20dd")
    assert not is_letter("'")
    assert not is_letter("-")
    assert not is_letter("1")


def test_every_separator_is_whitespace_so_printable_needs_only_the_c_categories() -> None:
    separators = {
        chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in {"Zs", "Zl", "Zp"}
    }
    assert separators <= WHITESPACE
    # str.split() would also collapse U+001C..U+001F; here they stay and are unprintable
    assert collapse_whitespace("a\x1cb") == "a\x1cb"
    assert not is_printable("a\x1cb")
    assert collapse_whitespace("\u00a0de\t\u3000Jong\n") == "de Jong"
    assert not is_printable("Jo\u00adng")
    assert not is_printable("Jan\u200dna")


# --- "today" is the date in Amsterdam at the node's clock -----------------------------------


def test_amsterdam_date_follows_the_eu_summer_time_rule() -> None:
    utc = datetime.UTC
    # winter: UTC+1
    assert amsterdam_date(datetime.datetime(2026, 12, 3, 22, 59, tzinfo=utc)) == datetime.date(
        2026, 12, 3
    )
    assert amsterdam_date(datetime.datetime(2026, 12, 3, 23, 0, tzinfo=utc)) == datetime.date(
        2026, 12, 4
    )
    # summer: UTC+2, from 01:00 UTC on the last Sunday of March (2026-03-29)
    assert amsterdam_date(datetime.datetime(2026, 6, 1, 22, 0, tzinfo=utc)) == datetime.date(
        2026, 6, 2
    )
    assert amsterdam_date(datetime.datetime(2026, 3, 29, 0, 59, tzinfo=utc)).day == 29
    with pytest.raises(ValueError, match="timezone-aware"):
        amsterdam_date(datetime.datetime(2026, 1, 1))


def test_amsterdam_date_agrees_with_the_time_zone_database() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        amsterdam = zoneinfo.ZoneInfo("Europe/Amsterdam")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time-zone database on this host")
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    for quarter_hours in range(0, 4 * 24 * 366 * 3, 3):
        when = start + datetime.timedelta(minutes=15 * quarter_hours)
        assert amsterdam_date(when) == when.astimezone(amsterdam).date(), when


def _newborn(born: str) -> dict[str, Any]:
    return {
        "ref": "BPS-NEWBORN",
        "themes": ["veelplegers"],
        "identifiers": [
            {"kind": "person", "surname": "Jong", "first_names": "Eva", "birth_date": born}
        ],
    }


async def test_a_node_checks_birth_dates_against_its_own_clock(federation: Federation) -> None:
    """A child born just after midnight in Amsterdam, while UTC is still on the day
    before, is registered and asked for at once; the day after is refused. The nodes'
    clocks stand days ahead of the machine's, so a check against the machine would
    refuse the child too."""
    ahead = federation.started_at + datetime.timedelta(days=5)
    # 23:30 UTC in winter (UTC+1) is 00:30 on the next day in Amsterdam
    if amsterdam_date(ahead.replace(hour=23, minute=30)) == ahead.date():
        ahead += datetime.timedelta(days=150)  # a summer start: take a winter day
    late_evening_utc = ahead.replace(hour=23, minute=30, second=0, microsecond=0)
    born = amsterdam_date(late_evening_utc)
    assert born == late_evening_utc.date() + datetime.timedelta(days=1)
    for node in federation.nodes.values():
        node.clock.set(late_evening_utc)

    status, body = await federation.api(
        "politie-test", "PUT", "/api/v1/registrations/BPS-NEWBORN", "source",
        json=_newborn(born.isoformat()),
    )  # fmt: skip
    assert status == 200, body
    person = {
        "kind": "person",
        "surname": "de Jong",
        "first_names": "E.",
        "birth_date": born.strftime("%d-%m-%Y"),
    }
    assert statuses(await federation.query("vh-test", [person]))["politie-test"] == "hit"

    day_after = (born + datetime.timedelta(days=1)).isoformat()
    status, body = await federation.api(
        "politie-test", "PUT", "/api/v1/registrations/BPS-NEWBORN", "source",
        json=_newborn(day_after),
    )  # fmt: skip
    assert status == 400
    assert f"{day_after} is in the future" in body["detail"]
