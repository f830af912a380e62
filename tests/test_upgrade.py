"""Upgrading node homes written by release 0.1.0 (tests/fixtures/release-0.1.0/README.md).

The fixture's two homes are copied, opened with this code (the schema steps run), and
must keep their signed logs byte for byte, verify, answer every round of the fixture as
0.1.0 did, and find a person's pre-upgrade log entries in an access request although the
pseudonym key is now derived with HKDF (docs/adr/0003-migrations-and-key-derivation.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.cli import main
from node.clock import ManualClock
from node.flows.context import open_node
from node.protocol.identifiers import parse_identifier, subject_key
from node.store import log, migrations
from tests.federation import Federation, SimNode, log_entries

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "release-0.1.0"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
NODES: dict[str, Any] = EXPECTED["nodes"]
VH, POLITIE = "vh-fixture", "politie-fixture"
ASKED_BEFORE = {"kind": "bsn", "bsn": "120000003"}  # FIX-R01 and FIX-R10, a hit at both


def copy_homes(tmp_path: Path) -> Path:
    """The homes as an operator has them after copying: home and key folder 0700, keys
    and database 0600 (git keeps no modes; the node refuses to open a home others can
    read, tests/test_file_modes.py)."""
    root = tmp_path / "release-0.1.0"
    for n in NODES.values():
        shutil.copytree(FIXTURE / n["home"], root / n["home"])
        (root / n["home"]).chmod(0o700)
        (root / n["home"] / "keys").chmod(0o700)
    for private in (*root.glob("*/keys/*"), *root.glob("*/node.db*")):
        private.chmod(0o600)
    return root


def raw_log(db_path: Path) -> tuple[list[bytes], list[str], int]:
    """(leaf hashes, signed heads, user_version) read with plain SQLite: no vhnode code."""
    conn = sqlite3.connect(db_path)
    try:
        leaves = [
            bytes(r[0]) for r in conn.execute("SELECT leaf_hash FROM log_entries ORDER BY seq")
        ]
        heads = [str(r[0]) for r in conn.execute("SELECT jws FROM tree_heads ORDER BY tree_size")]
        return leaves, heads, int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def seed(home: Path) -> bytes:
    return bytes.fromhex((home / "keys" / "oprf.seed").read_text().strip())


def legacy_pseudonym(home: Path, key: str) -> str:
    """Release 0.1.0's derivation, written out here (docs/protocol.md §9.2, legacy)."""
    pkey = hmac.new(seed(home), b"vhnode/v1 log pseudonym key", hashlib.sha256).digest()
    return hmac.new(pkey, key.encode(), hashlib.sha256).hexdigest()


def hkdf_pseudonym(home: Path, key: str) -> str:
    pkey = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"vhnode/v1 hkdf log pseudonym key"
    ).derive(seed(home))
    return hmac.new(pkey, key.encode(), hashlib.sha256).hexdigest()


def seqs_naming(db_path: Path, pseudonym: str) -> list[int]:
    """Entries whose signed body names ``pseudonym`` (the body, not the derived index)."""
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT seq, body FROM log_entries ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [int(seq) for seq, body in rows if pseudonym in json.loads(body).get("subjects", [])]


def test_upgrade_keeps_every_signed_entry_and_head(tmp_path: Path) -> None:
    root = copy_homes(tmp_path)
    for node_id, n in NODES.items():
        home = root / n["home"]
        leaves, heads, version = raw_log(home / "node.db")
        assert version == n["user_version"] == 0
        assert len(leaves) == n["log_size"]

        ctx = open_node(home)
        try:
            conn = ctx.conn
            assert migrations.user_version(conn) == migrations.latest()
            assert migrations.legacy_pseudonyms_before(conn) == n["log_size"]
            assert (
                conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is None
            )
            assert (
                conn.execute("SELECT count(*) FROM registrations").fetchone()[0]
                == n["registrations"]
            )
            report = log.verify(conn, node_id, ctx.keys.signing_public)
            assert report.ok, report.problems
            assert report.entries == n["log_size"]
            head = log.latest_head(conn)
            assert head is not None
            want = n["last_tree_head"]
            assert (head.tree_size, head.root_hash.hex()) == (want["tree_size"], want["root_hash"])
            assert log.merkle_root(leaves).hex() == want["root_hash"]
            assert migrations.migrate(conn, ctx.keys) == []  # a second run does nothing
        finally:
            ctx.close()
        assert raw_log(home / "node.db") == (leaves, heads, migrations.latest())

        # The operator's check, as the CLI gives it: one line, exit 0.
        result = CliRunner().invoke(main, ["audit", "verify", "--home", str(home)])
        assert result.exit_code == 0, result.output
        assert result.output == f"OK: {n['log_size']} entries, {len(heads)} signed tree heads\n"


@pytest.fixture
async def upgraded(tmp_path: Path) -> Any:
    root = copy_homes(tmp_path)
    fed = Federation(root)
    try:
        for node_id, n in NODES.items():
            clock = ManualClock(fed.started_at)
            home = root / n["home"]
            fed.nodes[node_id] = SimNode(
                node_id, home, n["port"], clock, open_node(home, clock=clock), tokens=n["tokens"]
            )
        await fed.start()
        yield fed
    finally:
        await fed.close()


async def test_upgraded_nodes_answer_every_round_as_before(upgraded: Federation) -> None:
    fed = upgraded
    for r in EXPECTED["rounds"]:
        result = await fed.query(
            r["requester"],
            r["subjects"],
            purpose=r["purpose"],
            convenant_id=r["convenant_id"],
            case_ref=r["case_ref"],
        )
        got = {p["partner"]: p for p in result["partners"]}
        assert set(got) == set(r["partners"]), r["case_ref"]
        for partner, want in r["partners"].items():
            p = got[partner]
            where = f"{r['case_ref']} {partner}"
            assert p["status"] == want["status"], (where, p)
            assert p.get("reason") == want["reason"], (where, p)
            if "subjects" in want:
                assert p["subjects"] == want["subjects"], (where, p)

    # The heads each node held of the other's 0.1.0 log still prove consistent.
    for node_id in NODES:
        status, body = await fed.api(
            node_id, "POST", "/api/v1/audit/cross-check", role="privacy_officer"
        )
        assert status == 200, body
        assert [p["verdict"] for p in body["peers"]] == ["consistent"], body
    for node_id, node in fed.nodes.items():
        assert log.verify(node.ctx.conn, node_id, node.ctx.keys.signing_public).ok


async def test_access_request_finds_entries_from_before_the_upgrade(upgraded: Federation) -> None:
    fed = upgraded
    key = subject_key(parse_identifier(ASKED_BEFORE))
    old: dict[str, list[int]] = {}
    for node_id, node in fed.nodes.items():
        old[node_id] = seqs_naming(node.home / "node.db", legacy_pseudonym(node.home, key))
        assert old[node_id], node_id  # the fixture names this person at both nodes
        assert all(s < NODES[node_id]["log_size"] for s in old[node_id])

    # Asked again after the upgrade: the new entries carry the HKDF pseudonym only.
    again = next(r for r in EXPECTED["rounds"] if r["case_ref"] == "FIX-R01")
    await fed.query(
        VH,
        [ASKED_BEFORE],
        purpose=again["purpose"],
        convenant_id=again["convenant_id"],
        case_ref="FIX-R01-NA-UPGRADE",
    )
    vh = fed.nodes[VH]
    new = seqs_naming(vh.home / "node.db", hkdf_pseudonym(vh.home, key))
    kinds = [e["kind"] for e in log_entries(vh) if e["seq"] in new]
    assert kinds.count("bekendheid.asked") == 2, kinds  # one per partner
    assert min(new) >= NODES[VH]["log_size"]
    assert seqs_naming(vh.home / "node.db", legacy_pseudonym(vh.home, key)) == old[VH]

    for node_id in NODES:
        status, body = await fed.api(
            node_id,
            "POST",
            "/api/v1/audit/inzage",
            role="privacy_officer",
            json={"subjects": [ASKED_BEFORE], "request_ref": "AVG-15-UPGRADE"},
        )
        assert status == 200, body
        found = [e["seq"] for e in body["entries"]]
        boundary = NODES[node_id]["log_size"]
        assert [s for s in found if s < boundary] == old[node_id], node_id
        if node_id == VH:
            assert [s for s in found if s >= boundary] == new
