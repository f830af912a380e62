"""Details supplied by the source system with a registration (issue 3, item 2, first half):
stored beside the registration, replaced and removed with it, never logged."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from node.errors import DetailTooLarge, InputError
from node.flows import admin
from node.http.statuses import http_status
from node.protocol.registration import (
    MAX_DETAIL_CATEGORIES,
    MAX_DETAIL_CHARS,
    RowError,
    iter_csv,
    parse_registration,
)
from node.store import registry
from tests.federation import Federation, state_counts

JAN = {"kind": "bsn", "bsn": "123456782"}
PROBLEM = "https://vhnode.nl/problems/"
SECRET = "Contactpersoon: wijkagent De Vries, 06-12345678"
PATH = "/api/v1/registrations/BPS-1"


def _reg(ref: str = "BPS-1", **extra: Any) -> dict[str, Any]:
    return {"ref": ref, "themes": ["veelplegers"], "identifiers": [JAN], **extra}


def _all_log_bodies(fed: Federation) -> str:
    return "\n".join(
        r[0]
        for node in fed.nodes.values()
        for r in node.ctx.conn.execute("SELECT body FROM log_entries")
    )


# --- model and fingerprint ------------------------------------------------------------


def test_fingerprint_without_details_is_unchanged() -> None:
    # Pinned: the fingerprint of a registration without details is the one computed before
    # details existed, so an upgraded node re-importing its old file changes nothing.
    reg = parse_registration(_reg())
    assert reg.details == {}
    # values computed with the code before details existed
    assert reg.fingerprint() == ("fe15e0227eb0a3c3163dd105385e3a208da4d518eb450962b26d0da3bde07d78")
    assert parse_registration(_reg(retain_until="2027-01-31")).fingerprint() == (
        "26144843db42d21336a893946422e149ba08f5e906bb516780edb76f8e9f98fb"
    )
    assert parse_registration(_reg(details={})).fingerprint() == reg.fingerprint()
    assert parse_registration(_reg(details=None)).fingerprint() == reg.fingerprint()
    with_details = parse_registration(_reg(details={"contactpersoon": SECRET}))
    assert with_details.fingerprint() != reg.fingerprint()
    # order of categories does not matter
    a = parse_registration(_reg(details={"a1": "x", "b2": "y"}))
    b = parse_registration(_reg(details={"b2": "y", "a1": "x"}))
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    ("details", "needle"),
    [
        (["contactpersoon"], "details must be an object"),
        ("text", "details must be an object"),
        ({"Contactpersoon": "x"}, "catalogue id"),
        ({"x": "y"}, "catalogue id"),  # ids are 2 to 128 characters
        ({"contactpersoon": 5}, "must be a string"),
        ({"contactpersoon": "  "}, "must not be empty"),
        ({"contactpersoon": "a\x00b"}, "control characters"),
        ({"contactpersoon": "a\x1bb"}, "control characters"),
        ({f"cat{i:02d}": "x" for i in range(MAX_DETAIL_CATEGORIES + 1)}, "at most 16"),
    ],
)
def test_invalid_details_are_invalid_input(details: object, needle: str) -> None:
    with pytest.raises(InputError, match=needle) as info:
        parse_registration(_reg(details=details))
    assert info.value.code == "invalid_input"


def test_oversized_detail_names_its_category() -> None:
    with pytest.raises(DetailTooLarge, match="contactpersoon") as info:
        parse_registration(_reg(details={"contactpersoon": "x" * (MAX_DETAIL_CHARS + 1)}))
    assert (info.value.code, http_status(info.value)) == ("detail_too_large", 413)


def test_allowed_text() -> None:
    reg = parse_registration(
        _reg(details={"samenvatting": "regel 1\r\n\tregel 2 — é", "lopend.traject-1": "x" * 4000})
    )
    assert reg.details["samenvatting"] == "regel 1\n\tregel 2 — é"
    assert len(reg.details["lopend.traject-1"]) == MAX_DETAIL_CHARS


def test_csv_has_no_details_column() -> None:
    rows = list(iter_csv(io.StringIO("ref,themes,bsn,details\nA,x,123456782,hi\n")))
    assert len(rows) == 1
    assert isinstance(rows[0][1], RowError)
    assert "details" in rows[0][1].reason


# --- the node --------------------------------------------------------------------------


async def test_put_stores_details_and_put_without_removes_them(federation: Federation) -> None:
    node = federation.nodes["politie-test"]
    conn = node.ctx.conn
    body = _reg(details={"contactpersoon": SECRET, "lopend_traject": "Reclassering"})
    status, answer = await federation.api("politie-test", "PUT", PATH, "source", json=body)
    assert status == 200, answer
    assert answer["changed"] is True
    assert registry.details(conn, "BPS-1") == {
        "contactpersoon": SECRET,
        "lopend_traject": "Reclassering",
    }
    # the same again changes nothing
    status, answer = await federation.api("politie-test", "PUT", PATH, "source", json=body)
    assert (status, answer["changed"]) == (200, False)
    # other text replaces; a category left out is gone
    body = _reg(details={"contactpersoon": "iemand anders"})
    status, answer = await federation.api("politie-test", "PUT", PATH, "source", json=body)
    assert (status, answer["changed"]) == (200, True)
    assert registry.details(conn, "BPS-1") == {"contactpersoon": "iemand anders"}
    # without details: none left
    status, answer = await federation.api("politie-test", "PUT", PATH, "source", json=_reg())
    assert (status, answer["changed"]) == (200, True)
    assert registry.details(conn, "BPS-1") == {}
    assert SECRET not in _all_log_bodies(federation)
    assert "iemand anders" not in _all_log_bodies(federation)


async def test_delete_removes_details(federation: Federation) -> None:
    node = federation.nodes["politie-test"]
    body = _reg(details={"contactpersoon": SECRET})
    status, _ = await federation.api("politie-test", "PUT", PATH, "source", json=body)
    assert status == 200
    status, answer = await federation.api("politie-test", "DELETE", PATH, "source")
    assert status == 200, answer
    assert registry.details(node.ctx.conn, "BPS-1") == {}
    count = node.ctx.conn.execute("SELECT COUNT(*) FROM registration_details").fetchone()[0]
    assert count == 0


async def test_retention_purge_removes_details(federation: Federation) -> None:
    node = federation.nodes["politie-test"]
    today = node.clock.now().date().isoformat()
    federation.register(
        "politie-test",
        _reg("BPS-1", retain_until=today, details={"contactpersoon": SECRET}),
        _reg("BPS-2", details={"contactpersoon": "blijft"}),
    )
    node.clock.set(federation.started_at + timedelta(days=1))
    assert admin.purge_all_expired(node.ctx) == ["BPS-1"]
    assert registry.details(node.ctx.conn, "BPS-1") == {}
    assert registry.details(node.ctx.conn, "BPS-2") == {"contactpersoon": "blijft"}
    assert SECRET not in _all_log_bodies(federation)


async def test_reimport_with_details_changes_nothing(
    federation: Federation, tmp_path: Path
) -> None:
    node = federation.nodes["politie-test"]
    path = tmp_path / "export.jsonl"
    lines = [
        _reg("BPS-1", details={"contactpersoon": SECRET}),
        _reg("BPS-2"),
        _reg("BPS-3", details={f"cat{i:02d}": "é\n" * 1999 for i in range(16)}),
    ]
    # ensure_ascii (the default) writes é as \u00e9: the longest way to write the text
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    first = admin.import_registrations(node.ctx, path)
    assert (first.upserted, first.errors) == (3, [])
    assert registry.details(node.ctx.conn, "BPS-1") == {"contactpersoon": SECRET}
    assert len(registry.details(node.ctx.conn, "BPS-3")) == 16
    before = state_counts(federation)
    again = admin.import_registrations(node.ctx, path)
    assert (again.upserted, again.unchanged, again.errors) == (0, 3, [])
    assert state_counts(federation) == before
    assert SECRET not in _all_log_bodies(federation)


async def test_import_reports_bad_details_by_line(federation: Federation, tmp_path: Path) -> None:
    node = federation.nodes["politie-test"]
    path = tmp_path / "export.jsonl"
    lines = [
        _reg("BPS-1", details={"contactpersoon": "x" * (MAX_DETAIL_CHARS + 1)}),
        _reg("BPS-2", details={"BAD": "x"}),
        _reg("BPS-3", details={"contactpersoon": SECRET}),
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    result = admin.import_registrations(node.ctx, path)
    assert result.upserted == 1
    reasons = {e.line: e.reason for e in result.errors}
    assert set(reasons) == {1, 2}
    assert "contactpersoon" in reasons[1]
    assert "4000" in reasons[1]
    assert "catalogue id" in reasons[2]
    assert registry.get(node.ctx.conn, "BPS-1") is None


@pytest.mark.parametrize(
    ("details", "status", "code"),
    [
        ({"contactpersoon": "x" * (MAX_DETAIL_CHARS + 1)}, 413, "detail_too_large"),
        ({"contactpersoon": ["x"]}, 400, "invalid_input"),
        ("contactpersoon", 400, "invalid_input"),
        ({"Contact Persoon": "x"}, 400, "invalid_input"),
        ({"contactpersoon": "bel\x07"}, 400, "invalid_input"),
    ],
)
async def test_bad_details_change_nothing(
    federation: Federation, details: object, status: int, code: str
) -> None:
    node = federation.nodes["politie-test"]
    good = _reg(details={"contactpersoon": SECRET})
    assert (await federation.api("politie-test", "PUT", PATH, "source", json=good))[0] == 200
    stored = registry.get(node.ctx.conn, "BPS-1")
    before = state_counts(federation)

    bad = _reg(details=details)
    bad["themes"] = ["huiselijk_geweld"]  # would change the registration, were it accepted
    got, problem = await federation.api("politie-test", "PUT", PATH, "source", json=bad)
    assert got == status, problem
    assert problem["type"] == PROBLEM + code
    if code == "detail_too_large":
        assert "contactpersoon" in problem["detail"]
    assert state_counts(federation) == before
    assert registry.get(node.ctx.conn, "BPS-1") == stored
    assert registry.details(node.ctx.conn, "BPS-1") == {"contactpersoon": SECRET}
