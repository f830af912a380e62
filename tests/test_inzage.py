"""Access requests (node/flows/audit/inzage.py) over real logs with many persons.

Thirty synthetic persons in households are registered at two providers (in batches, one
batch removing and changing registrations) and asked about in varied rounds: single
persons by BSN, by name, families in one round, an address, a purpose the convenant does
not grant, and rounds asked by a second requester. For every person, at every node, the
access report must list exactly the entries whose subjects include one of the person's
subject keys — computed here from the script, not from the log — with this person's own
status, the number of persons in the entry, and no other person's pseudonym.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import main
from node.config import NodeConfig
from node.demo.synthetic import Person, make_population
from node.flows import admin
from node.flows.audit import inzage
from node.flows.context import open_node
from node.flows.publishing import apply_changes
from node.protocol.identifiers import parse_identifier, subject_key
from node.protocol.registration import Registration, parse_registration
from node.store import log
from tests.federation import OTHER_PURPOSE, Federation, log_entries, standard_federation

RUNNER = CliRunner()
VH, POLITIE, OM, GGZ = "vh-test", "politie-test", "om-test", "ggz-test"
HEX64 = re.compile(r"[0-9a-f]{64}")


def _ids(p: Person) -> list[dict[str, Any]]:
    return [
        p.bsn_identifier().model_dump(mode="json"),
        p.person_identifier().model_dump(mode="json"),
        p.address_identifier().model_dump(mode="json"),
    ]


def _keys(identifiers: Sequence[dict[str, Any]]) -> list[str]:
    return [subject_key(parse_identifier(i)) for i in identifiers]


@dataclass
class Round:
    asker: str
    keys: list[str]
    result: dict[str, Any]


@dataclass
class World:
    """The federation plus the ground truth of everything the script did."""

    fed: Federation
    people: list[Person]
    rounds: list[Round] = field(default_factory=list)
    batches: dict[str, list[set[str]]] = field(default_factory=dict)  # node → changed keys
    inzages: dict[str, list[set[str]]] = field(default_factory=dict)  # node → keys looked up

    def keys_of(self, p: Person) -> set[str]:
        return set(_keys(_ids(p)))

    def expected(self, node_id: str, keys: set[str]) -> list[tuple[Any, ...]]:
        """(kind, trace, partner, statuses of these keys, persons in entry), log order
        within a kind; what an access request for ``keys`` at ``node_id`` must list."""
        out: list[tuple[Any, ...]] = []
        for changed in self.batches.get(node_id, []):
            if changed & keys:
                out.append(("registry.changed", None, None, (), len(changed)))
        for r in self.rounds:
            if r.asker != node_id or not set(r.keys) & keys:
                continue
            # The round's intent, logged before anything was sent (no partner, no status).
            out.append(("bekendheid.round", r.result["trace_id"], None, (), len(set(r.keys))))
            for p in r.result["partners"]:
                statuses = tuple(s for k, s in zip(r.keys, p["subjects"], strict=True) if k in keys)
                trace = r.result["trace_id"]
                out.append(("bekendheid.asked", trace, p["partner"], statuses, len(set(r.keys))))
        for looked_up in self.inzages.get(node_id, []):
            if looked_up & keys:
                out.append(("audit.inzage", None, None, (), len(looked_up)))
        return sorted(out, key=repr)

    def register(
        self, node_id: str, regs: Sequence[Registration], removals: Sequence[str] = ()
    ) -> None:
        ctx = self.fed.nodes[node_id].ctx
        changed: set[str] = set()
        for reg in regs:
            changed.update(reg.subject_keys())
            row = ctx.conn.execute(
                "SELECT subject_keys FROM registrations WHERE ref = ?", (reg.ref,)
            ).fetchone()
            if row is not None:
                changed.update(json.loads(row[0]))
        for ref in removals:
            row = ctx.conn.execute(
                "SELECT subject_keys FROM registrations WHERE ref = ?", (ref,)
            ).fetchone()
            changed.update(json.loads(row[0]))
        apply_changes(ctx, list(regs), list(removals), actor="bron")
        self.batches.setdefault(node_id, []).append(changed)

    async def ask(self, asker: str, subjects: list[dict[str, Any]], **kw: Any) -> None:
        result = await self.fed.query(asker, subjects, **kw)
        self.rounds.append(Round(asker, _keys(subjects), result))


def _found(rep: inzage.InzageReport) -> list[tuple[Any, ...]]:
    return sorted(
        (
            (
                e.kind,
                e.trace_id,
                e.counterparty,
                tuple(m.status for m in e.matched if m.status is not None),
                e.subjects_in_entry,
            )
            for e in rep.entries
        ),
        key=repr,
    )


def _reg(ref: str, themes: list[str], identifiers: list[dict[str, Any]]) -> Registration:
    return parse_registration({"ref": ref, "themes": themes, "identifiers": identifiers})


async def _build(fed: Federation) -> World:
    people = make_population(30, random.Random(20260))
    w = World(fed, people)
    person_keys = [_keys(_ids(p))[1] for p in people]
    assert len(set(person_keys)) == 30  # no two persons share a name key in this population
    families: dict[int, list[Person]] = {}
    for p in people:
        families.setdefault(p.family_id, []).append(p)
    assert any(len(f) >= 3 for f in families.values())

    # registrations: politie in three batches (the last removes one, changes another), om in one
    w.register(POLITIE, [_reg(f"BPS-{p.pid}", ["veelplegers"], _ids(p)[:2]) for p in people[:12]])
    w.register(
        POLITIE, [_reg(f"HGV-{p.pid}", ["huiselijk_geweld"], _ids(p)[2:]) for p in people[12:15]]
    )
    w.register(POLITIE, [_reg("BPS-4", ["huiselijk_geweld"], _ids(people[4])[:1])], ["BPS-3"])
    w.register(OM, [_reg(f"OM-{p.pid}", ["veelplegers"], _ids(p)[:1]) for p in people[:6]])

    # vh-test's rounds
    for p in people[:10]:
        await w.ask(VH, [_ids(p)[0]])
    for p in people[10:15]:
        await w.ask(VH, [_ids(p)[1]])
    for members in families.values():
        if members[0].pid >= 15:
            await w.ask(VH, [_ids(m)[0] for m in members])
    big = max(families.values(), key=len)
    await w.ask(VH, [_ids(big[0])[2], *(_ids(m)[0] for m in big)])  # address and BSNs
    await w.ask(VH, [_ids(people[3])[0], _ids(people[7])[1]], purpose=OTHER_PURPOSE)
    # politie-test's rounds
    for p in people[20:25]:
        await w.ask(POLITIE, [_ids(p)[0]])
    await w.ask(POLITIE, [_ids(m)[1] for m in big])
    return w


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    fed = await standard_federation(tmp_path)
    try:
        yield await _build(fed)
    finally:
        await fed.close()


async def _answer(w: World, node_id: str, identifiers: list[dict[str, Any]]) -> inzage.InzageReport:
    rep = await inzage.answer(
        w.fed.nodes[node_id].ctx, [parse_identifier(i) for i in identifiers], "fg-test"
    )
    w.inzages.setdefault(node_id, []).append(set(_keys(identifiers)))
    return rep


def _no_pseudonyms(rep: inzage.InzageReport) -> None:
    text = json.dumps(rep.as_json()) + inzage.render_text(rep)
    assert not HEX64.search(text), "a pseudonym (or other 64-hex value) in the access report"


async def test_every_person_gets_exactly_their_entries(world: World) -> None:
    w = world
    for node_id in (VH, POLITIE, OM, GGZ):
        for p in w.people:
            expected = w.expected(node_id, w.keys_of(p))
            rep = await _answer(w, node_id, _ids(p))
            assert _found(rep) == expected, (node_id, p.pid)
            _no_pseudonyms(rep)
            for e in rep.entries:
                if e.kind == "bekendheid.asked":
                    # the person's own status, not the round's summary over a family
                    assert e.outcome == (
                        e.matched[0].status if len({m.status for m in e.matched}) == 1 else "mixed"
                    )
    # sanity: the script produced what the test claims to cover
    at_vh = await _answer(
        w, VH, _ids(max(w.people, key=lambda p: len(w.expected(VH, w.keys_of(p)))))
    )
    assert any(e.subjects_in_entry >= 3 for e in at_vh.entries)  # a family round
    assert any(e.outcome == "refused" for e in (await _answer(w, VH, _ids(w.people[3]))).entries)


async def test_found_only_by_the_identifiers_given(world: World) -> None:
    w = world
    p = w.people[10]  # asked about by name only
    by_bsn = await _answer(w, VH, _ids(p)[:1])
    assert [e.kind for e in by_bsn.entries] == []
    expected = w.expected(VH, set(_keys(_ids(p)[1:2])))
    by_name = await _answer(w, VH, _ids(p)[1:2])
    assert {e.kind for e in by_name.entries} == {"bekendheid.round", "bekendheid.asked"}
    assert len(by_name.entries) == 5  # one round: its intent, then four partners' answers
    assert _found(by_name) == expected
    assert {m.identifier for e in by_name.entries for m in e.matched} == set(_keys(_ids(p)[1:2]))


async def test_provider_lists_registry_changes_and_current_registrations(world: World) -> None:
    w = world
    p3, p4, p12 = w.people[3], w.people[4], w.people[12]
    rep = await _answer(w, POLITIE, _ids(p3))
    assert [e.kind for e in rep.entries] == ["registry.changed", "registry.changed"]  # in, out
    assert rep.registrations == []  # BPS-3 was removed
    rep = await _answer(w, POLITIE, _ids(p4))
    assert [(r.ref, r.themes) for r in rep.registrations] == [("BPS-4", ("huiselijk_geweld",))]
    assert rep.registrations[0].matched == (f"bsn:{p4.bsn}",)
    rep = await _answer(w, POLITIE, _ids(p12))
    same_address = [f"HGV-{p.pid}" for p in w.people[12:15] if p.address == p12.address]
    assert [r.ref for r in rep.registrations] == same_address
    # om answered evaluations about persons 0..5, but the blind protocol leaves no trace
    # of whom it was asked about: only its own registry changes appear
    rep = await _answer(w, OM, _ids(w.people[0]))
    assert [e.kind for e in rep.entries] == ["registry.changed"]
    assert log_entries(w.fed.nodes[OM], "bekendheid.evaluated")
    assert all(e["subjects"] == [] for e in log_entries(w.fed.nodes[OM], "bekendheid.evaluated"))


async def test_the_lookup_itself_is_logged_and_shows_next_time(world: World) -> None:
    w = world
    p = w.people[0]
    first = await _answer(w, VH, _ids(p)[:1])
    [entry] = log_entries(w.fed.nodes[VH], "audit.inzage")[-1:]
    assert entry["actor"] == "fg-test"
    assert entry["data"]["entries"] == len(first.entries)
    key = w.fed.nodes[VH].ctx.keys.pseudonym_key()
    assert entry["subjects"] == [log.pseudonym(key, f"bsn:{p.bsn}")]
    second = await _answer(w, VH, _ids(p)[:1])
    assert [e.kind for e in second.entries] == [*(e.kind for e in first.entries), "audit.inzage"]
    assert log.verify(w.fed.nodes[VH].ctx.conn, VH, w.fed.nodes[VH].ctx.keys.signing_public).ok


# --- API and CLI ---------------------------------------------------------------------------


async def test_api_and_cli(world: World) -> None:
    w = world
    p = w.people[1]
    expected = w.expected(VH, w.keys_of(p))
    request = {"subjects": _ids(p), "request_ref": "AVG-15-2026-7"}
    status, body = await w.fed.api(
        VH, "POST", "/api/v1/audit/inzage", role="privacy_officer", json=request
    )
    assert status == 200, body
    w.inzages.setdefault(VH, []).append(w.keys_of(p))
    assert body["request_ref"] == "AVG-15-2026-7"
    assert [i["subject_key"] for i in body["identifiers"]] == _keys(_ids(p))
    found = sorted(
        (
            e["kind"],
            e["trace_id"],
            e["counterparty"],
            tuple(m["status"] for m in e["matched"] if m["status"]),
            e["subjects_in_entry"],
        )
        for e in body["entries"]
    )
    assert found == sorted(expected)
    assert not HEX64.search(json.dumps(body))
    assert log_entries(w.fed.nodes[VH], "audit.inzage")[-1]["actor"] == f"privacy_officer-{VH}"

    home = str(w.fed.nodes[VH].home)
    person = f"{p.surname}|{p.tussenvoegsel or ''}|{p.first_names}|{p.birth_date}"
    args = ["audit", "inzage", "--home", home, "--bsn", p.bsn, "--person", person]
    result = RUNNER.invoke(main, [*args, "--ref", "AVG-15-2026-8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["request_ref"] == "AVG-15-2026-8"
    assert len(data["entries"]) == len(w.expected(VH, set(_keys(_ids(p)[:2]))))
    assert log_entries(w.fed.nodes[VH], "audit.inzage")[-1]["actor"].startswith("cli")
    text = RUNNER.invoke(main, ["audit", "inzage", "--home", home, "--bsn", p.bsn]).stdout
    assert f"bsn:{p.bsn}" in text
    assert "Log entries about this person:" in text
    assert "blind" in text
    assert not HEX64.search(text)


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    f = await standard_federation(tmp_path)
    try:
        yield f
    finally:
        await f.close()


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (
            {"subjects": [{"kind": "bsn", "bsn": "123456783"}]},
            "invalid_bsn",
            "subjects.0: BSN 123456783 fails the 11-proef",
        ),
        (
            {"subjects": [{"kind": "bsn", "bsn": "123456782"}, {"kind": "person", "surname": "X"}]},
            "invalid_identifier",
            "subjects.1:",
        ),
        ({"subjects": [{"kind": "passport", "number": "X1"}]}, "invalid_identifier", "kind"),
        ({"subjects": []}, "invalid_input", "non-empty list"),
        ({}, "invalid_input", "subjects"),
        ([1, 2], "invalid_input", "JSON object"),
        ({"subjects": [{"kind": "bsn", "bsn": "123456782"}], "who": 1}, "invalid_input", "who"),
        ({"subjects": [{"kind": "bsn", "bsn": "123456782"}] * 65}, "invalid_input", "at most 64"),
        (
            {"subjects": [{"kind": "bsn", "bsn": "123456782"}], "request_ref": 7},
            "invalid_input",
            "request_ref",
        ),
    ],
)
async def test_api_bad_input(fed: Federation, body: Any, code: str, detail: str) -> None:
    before = len(log_entries(fed.nodes[VH]))
    status, problem = await fed.api(VH, "POST", "/api/v1/audit/inzage", role="admin", json=body)
    assert status == 400
    assert problem["type"].endswith("/" + code), problem
    assert detail in problem["detail"]
    assert len(log_entries(fed.nodes[VH])) == before  # nothing looked up, nothing logged


async def test_api_body_not_json(fed: Federation) -> None:
    status, problem = await fed.api(
        VH, "POST", "/api/v1/audit/inzage", role="admin", data=b"{not json"
    )
    assert (status, problem["type"].rsplit("/", 1)[1]) == (400, "invalid_input")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--bsn", "123456783"], 1, "error: BSN 123456783 fails the 11-proef"),
        (["--person", "Berg|van der|Jan"], 1, "expected 'Surname|tussenvoegsel|first names|"),
        (["--person", "Berg||Jan|1990-02-30"], 1, "birth_date"),
        (["--address", "1234|12"], 1, "postcode"),
        ([], 2, "give at least one --bsn, --person or --address"),
    ],
)
def test_cli_bad_input(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    result = RUNNER.invoke(main, ["audit", "inzage", "--home", str(tmp_path), *args])
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


# --- scale: one registry batch of 20,000 ---------------------------------------------------


async def test_a_20000_row_batch_is_one_entry_and_still_found(tmp_path: Path) -> None:
    cfg = NodeConfig.model_validate(
        {
            "node_id": "ggz-big",
            "organisation": "GGZ",
            "org_type": "ggz",
            "endpoint": "http://127.0.0.1:1",
        }
    )
    admin.init_node(tmp_path / "home", cfg)
    ctx = open_node(tmp_path / "home")
    try:
        rng = random.Random(5)
        people = make_population(20_000, rng)
        regs = [_reg(f"G-{p.pid}", ["zorg"], _ids(p)[:1]) for p in people]
        started = time.perf_counter()
        apply_changes(ctx, regs, actor="import")
        took = time.perf_counter() - started
        [changed] = log_entries_ctx(ctx.conn, "registry.changed")
        assert len(changed["subjects"]) == 20_000
        assert changed["subjects"] == sorted(changed["subjects"])
        started = time.perf_counter()
        rep = await inzage.answer(ctx, [parse_identifier(_ids(people[12_345])[0])], "fg")
        lookup = time.perf_counter() - started
        print(f"20,000-row batch {took:.2f}s; access request {lookup * 1000:.0f} ms")
        [entry] = rep.entries
        assert (entry.kind, entry.subjects_in_entry) == ("registry.changed", 20_000)
        assert [r.ref for r in rep.registrations] == ["G-12345"]
        _no_pseudonyms(rep)
    finally:
        ctx.close()


def log_entries_ctx(conn: sqlite3.Connection, kind: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT body FROM log_entries WHERE kind = ? ORDER BY seq", (kind,))
    return [json.loads(r[0]) for r in rows]
