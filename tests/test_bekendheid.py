"""Bekendheid end to end: real nodes on loopback answer hit / no_hit correctly."""

from __future__ import annotations

from typing import Any

from tests.federation import Federation, interpose, statuses

JAN = {
    "kind": "person",
    "surname": "Berg",
    "tussenvoegsel": "van der",
    "first_names": "Jan Pieter",
    "birth_date": "1990-01-31",
}
JAN_BSN = {"kind": "bsn", "bsn": "123456782"}
ADDRESS = {"kind": "address", "postcode": "4811 AB", "house_number": 12, "addition": "a"}
NOBODY = {"kind": "bsn", "bsn": "111222333"}


def _reg(ref: str, themes: list[str], *identifiers: dict[str, Any]) -> dict[str, Any]:
    return {"ref": ref, "themes": themes, "identifiers": list(identifiers)}


async def test_known_person_is_hit_only_where_registered(federation: Federation) -> None:
    federation.register("politie-test", _reg("BPS-1", ["veelplegers"], JAN_BSN, JAN))
    federation.register("om-test", _reg("COMPAS-1", ["veelplegers"], JAN_BSN))
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result) == {
        "vh-test": "no_hit",
        "politie-test": "hit",
        "om-test": "hit",
        "ggz-test": "no_hit",
    }


async def test_unknown_person_is_no_hit_everywhere(federation: Federation) -> None:
    federation.register("politie-test", _reg("BPS-1", ["veelplegers"], JAN_BSN))
    result = await federation.query("vh-test", [NOBODY])
    assert set(statuses(result).values()) == {"no_hit"}


async def test_name_and_birth_date_match_across_spellings(federation: Federation) -> None:
    federation.register("politie-test", _reg("BPS-2", ["veelplegers"], JAN))
    variants = [
        {**JAN, "surname": "van der Berg", "tussenvoegsel": None, "first_names": "J."},
        {**JAN, "surname": "V.d. Berg", "tussenvoegsel": None, "first_names": "jan"},
        {**JAN, "surname": "BERG", "tussenvoegsel": "van der"},
    ]
    for v in variants:
        result = await federation.query("vh-test", [v])
        assert statuses(result)["politie-test"] == "hit", v
    other_day = {**JAN, "birth_date": "1990-02-01"}
    result = await federation.query("vh-test", [other_day])
    assert statuses(result)["politie-test"] == "no_hit"


async def test_address_hit(federation: Federation) -> None:
    federation.register("politie-test", _reg("BPS-3", ["huiselijk_geweld"], ADDRESS))
    result = await federation.query(
        "vh-test", [{"kind": "address", "postcode": "4811AB", "house_number": 12, "addition": "A"}]
    )
    assert statuses(result)["politie-test"] == "hit"
    # asked without its toevoeging it is found too (docs/protocol.md §11.6) ...
    result = await federation.query(
        "vh-test", [{"kind": "address", "postcode": "4811AB", "house_number": 12, "addition": None}]
    )
    assert statuses(result)["politie-test"] == "hit"
    # ... but another toevoeging is another dwelling
    result = await federation.query(
        "vh-test", [{"kind": "address", "postcode": "4811AB", "house_number": 12, "addition": "B"}]
    )
    assert statuses(result)["politie-test"] == "no_hit"


async def test_out_of_scope_theme_is_not_visible(federation: Federation) -> None:
    # om-test's scope is only "veelplegers": a woonoverlast registration stays invisible.
    federation.register("om-test", _reg("COMPAS-9", ["woonoverlast"], JAN_BSN))
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result)["om-test"] == "no_hit"


async def test_family_query_answers_each_member_in_one_round(federation: Federation) -> None:
    mother = {"kind": "bsn", "bsn": "123456782"}
    child = {"kind": "bsn", "bsn": "111222333"}
    father = {"kind": "bsn", "bsn": "200000019"}
    federation.register("politie-test", _reg("BPS-10", ["huiselijk_geweld"], father))
    federation.register(
        "om-test",
        _reg(
            "COMPAS-10",
            ["veelplegers"],
            mother,
        ),
    )
    result = await federation.query("vh-test", [mother, child, father])
    by_partner = {p["partner"]: p["subjects"] for p in result["partners"]}
    assert by_partner["politie-test"] == ["no_hit", "no_hit", "hit"]
    assert by_partner["om-test"] == ["hit", "no_hit", "no_hit"]
    assert by_partner["ggz-test"] == ["no_hit", "no_hit", "no_hit"]
    assert result["subject_count"] == 3


async def test_registration_api_changes_answers_at_once(federation: Federation) -> None:
    status, body = await federation.api(
        "politie-test",
        "PUT",
        "/api/v1/registrations/BPS-77",
        role="source",
        json=_reg("BPS-77", ["veelplegers"], JAN_BSN),
    )
    assert status == 200
    assert body["changed"] is True
    assert statuses(await federation.query("vh-test", [JAN_BSN]))["politie-test"] == "hit"
    status, body = await federation.api(
        "politie-test", "DELETE", "/api/v1/registrations/BPS-77", role="source"
    )
    assert status == 200
    # The requester holds version n; the answer names n+1, so it syncs the delta first.
    result = await federation.query("vh-test", [JAN_BSN])
    politie = next(p for p in result["partners"] if p["partner"] == "politie-test")
    assert politie["status"] == "no_hit"
    assert politie["tag_set_version"] >= 3


async def test_stopped_partner_is_unreachable_never_no_hit(federation: Federation) -> None:
    await federation.stop("om-test")
    result = await federation.query("vh-test", [JAN_BSN])
    om = next(p for p in result["partners"] if p["partner"] == "om-test")
    assert om["status"] == "unreachable"
    assert om["subjects"] == ["unreachable"]
    assert statuses(result)["politie-test"] == "no_hit"


async def test_slow_partner_is_timeout_never_no_hit(federation: Federation) -> None:
    proxy = await interpose(federation, "ggz-test")
    proxy.delay = 5.0  # the requester's per-partner timeout is 4 s (roomy for a loaded CI)
    result = await federation.query("vh-test", [JAN_BSN])
    assert statuses(result)["ggz-test"] == "timeout"
    assert statuses(result)["politie-test"] == "no_hit"


async def test_hit_at_requesters_own_registry(federation: Federation) -> None:
    federation.register("vh-test", _reg("CASUS-1", ["casus"], JAN_BSN))
    assert statuses(await federation.query("vh-test", [JAN_BSN]))["vh-test"] == "hit"


async def test_both_sides_log_the_exchange_under_one_trace_id(federation: Federation) -> None:
    result = await federation.query("vh-test", [JAN_BSN])
    trace = result["trace_id"]
    for node_id in ("vh-test", "politie-test"):
        conn = federation.nodes[node_id].ctx.conn
        rows = conn.execute("SELECT kind FROM log_entries WHERE trace_id = ?", (trace,)).fetchall()
        assert rows, node_id
    body = (
        federation.nodes["vh-test"]
        .ctx.conn.execute("SELECT body FROM log_entries WHERE trace_id = ?", (trace,))
        .fetchone()[0]
    )
    assert "123456782" not in body  # pseudonyms, not identities
