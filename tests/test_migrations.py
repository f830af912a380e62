"""Schema steps (node/store/migrations.py) and the HKDF key derivations (node/keys.py).

Real SQLite files, real keys. The upgrade of a whole 0.1.0 node home is
tests/test_upgrade.py; here each step's contract on its own.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import nacl.public
import nacl.signing
import pytest
from click.testing import CliRunner

from node.cli import main
from node.errors import ConfigError, MalformedMessage
from node.keys import NodeKeys
from node.protocol import oprf
from node.store import db, log, migrations, oprf_epochs
from node.store.received import open_at_rest, seal_at_rest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "release-0.1.0"
POLITIE = "politie-test"


def schema(conn: sqlite3.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    return {(str(t), str(n), " ".join(str(s).split())) for t, n, s in rows}


def test_a_fresh_database_runs_every_step(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrations.migrate(conn) == list(range(1, migrations.latest() + 1))
    assert migrations.user_version(conn) == migrations.latest()
    # Nothing was made with a legacy key on a node that starts at the newest step.
    assert migrations.legacy_pseudonyms_before(conn) == 0
    assert conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 0


def test_running_the_migrations_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    conn = db.connect(path)
    before = schema(conn)
    assert migrations.migrate(conn) == []
    conn.close()
    conn = db.connect(path)  # and reconnecting: no probe, no repair, no write
    assert schema(conn) == before
    assert migrations.user_version(conn) == migrations.latest()
    conn.close()


def test_a_release_database_ends_with_the_schema_of_a_fresh_one(tmp_path: Path) -> None:
    """Whatever a later step changes, it changes both paths alike."""
    shutil.copy(FIXTURE / "vh-fixture" / "node.db", tmp_path / "old.db")
    old = db.connect(tmp_path / "old.db")  # no received detail: no keys needed
    fresh = db.connect(tmp_path / "fresh.db")
    assert schema(old) == schema(fresh)


def test_a_database_from_a_newer_vhnode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    db.connect(path).close()
    newer = migrations.latest() + 1
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {newer}")
    raw.close()
    with pytest.raises(ConfigError, match=f"at schema step {newer}, written by a newer vhnode"):
        db.connect(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == newer  # left as it was
    raw.close()


def test_the_cli_refuses_a_newer_database_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "vh-fixture"
    shutil.copytree(FIXTURE / "vh-fixture", home)
    # As its admin has it: private modes (git keeps none), else that is the first error.
    home.chmod(0o700)
    (home / "keys").chmod(0o700)
    for private in (*(home / "keys").iterdir(), home / "node.db"):
        private.chmod(0o600)
    raw = sqlite3.connect(home / "node.db")
    raw.execute(f"PRAGMA user_version = {migrations.latest() + 1}")
    raw.close()
    result = CliRunner().invoke(main, ["audit", "verify", "--home", str(home)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "newer vhnode" in lines[0]
    assert "Traceback" not in result.output


def test_a_pre_release_database_is_repaired_once_at_step_1(tmp_path: Path) -> None:
    """The two repairs the old connect ran every time: a registry without retain_until
    and without its registration_keys index (development versions before 0.1.0)."""
    path = tmp_path / "node.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    raw.execute(
        "CREATE TABLE registrations (ref TEXT PRIMARY KEY, themes TEXT NOT NULL,"
        " subject_keys TEXT NOT NULL, fingerprint TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    raw.execute(
        "INSERT INTO registrations VALUES ('r1', '[\"casus\"]',"
        " '[\"bsn:123456782\", \"address:4811AB|12|\"]', 'f', '2026-01-01T00:00:00Z')"
    )
    raw.close()
    conn = db.connect(path)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(registrations)")}
    assert "retain_until" in columns
    assert sorted(conn.execute("SELECT subject_key, ref FROM registration_keys")) == [
        ("address:4811AB|12|", "r1"),
        ("bsn:123456782", "r1"),
    ]
    assert migrations.user_version(conn) == migrations.latest()


# --- step 2: HKDF ---------------------------------------------------------------------


def keys_from(seed: bytes, encryption: bytes) -> NodeKeys:
    return NodeKeys(
        signing=nacl.signing.SigningKey(bytes(32)),
        encryption=nacl.public.PrivateKey(encryption),
        oprf_seed=seed,
    )


def test_key_derivations_match_the_test_vectors() -> None:
    """docs/protocol.md Appendix B: S = 00..1f; the legacy values are 0.1.0's."""
    keys = keys_from(bytes(range(32)), bytes(range(32, 64)))
    assert keys.pseudonym_key().hex() == (
        "e7d18205f79b0a0fa7c77437a3c5b5ff43a9d83ec1e8bd69bcf3bee8fdac91db"
    )
    assert log.pseudonym(keys.pseudonym_key(), "bsn:123456782") == (
        "c68e1884e0f482f23c97c046647a898fa78224f80003d19b9bf4164319b4e648"
    )
    assert keys.legacy_pseudonym_key().hex() == (
        "2e88737ca998bbb050310e9ad42c1782bce364ff8a7a5a1a917a5a6cf350c562"
    )
    assert keys.at_rest_key().hex() == (
        "e5259c43eb8c3c9e6a263b17c55e5de3779329f99b931eb927fa93b55dc3e76f"
    )
    assert len({keys.at_rest_key(), keys.legacy_at_rest_key(), keys.pseudonym_key()}) == 3


def ask(conn: sqlite3.Connection, trace_id: str) -> None:
    conn.execute(
        "INSERT INTO detail_asks (trace_id, partner, round_trace_id, subject, pseudonym,"
        " convenant_id, convenant_version, purpose, case_ref, asked_by, asked_role, asked_at,"
        " outcome, updated_at) VALUES (?, ?, 'r', 0, ?, 'c', 1, 'p', 'CASE', 'u', 'liaison',"
        " '2026-01-01T00:00:00Z', 'answered', '2026-01-01T00:00:00Z')",
        (trace_id, POLITIE, "0" * 64),
    )


def store(conn: sqlite3.Connection, key: bytes, trace_id: str, category: str) -> None:
    nonce, ct = seal_at_rest(key, trace_id, POLITIE, category, [f"tekst {trace_id} {category}"])
    conn.execute(
        "INSERT INTO received_details (trace_id, category, nonce, ciphertext) VALUES (?,?,?,?)",
        (trace_id, category, nonce, ct),
    )


@pytest.fixture
def at_step_1(tmp_path: Path) -> tuple[sqlite3.Connection, NodeKeys]:
    """A database as 0.1.0 left it: received detail under the legacy at-rest key, a log."""
    keys = NodeKeys.generate()
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrations.migrate(conn, target=1) == [1]
    with db.tx(conn):
        for i in range(5):
            trace_id = f"{i:032x}"
            ask(conn, trace_id)
            for category in ("contactpersoon", "samenvatting"):
                store(conn, keys.legacy_at_rest_key(), trace_id, category)
        log.append(
            conn, keys.signing, "vh-test", [log.LogEntry(kind="test.entry")] * 7, datetime.now(UTC)
        )
    return conn, keys


def texts(conn: sqlite3.Connection, key: bytes) -> dict[tuple[str, str], tuple[str, ...]]:
    out = {}
    for trace_id, category, nonce, ct in conn.execute(
        "SELECT trace_id, category, nonce, ciphertext FROM received_details"
    ):
        out[(trace_id, category)] = open_at_rest(key, trace_id, POLITIE, category, nonce, ct)
    return out


def test_step_2_re_encrypts_received_detail_in_small_transactions(
    at_step_1: tuple[sqlite3.Connection, NodeKeys], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, keys = at_step_1
    want = texts(conn, keys.legacy_at_rest_key())
    assert len(want) == 10
    commits: list[int] = []
    monkeypatch.setattr(migrations, "REENCRYPT_BATCH", 3)
    conn.set_trace_callback(lambda sql: commits.append(1) if sql == "COMMIT" else None)
    assert migrations.migrate(conn, keys, target=2) == [2]
    conn.set_trace_callback(None)
    assert len(commits) == 4 + 1  # ten rows three at a time, then the step itself
    assert texts(conn, keys.at_rest_key()) == want
    with pytest.raises(MalformedMessage):
        texts(conn, keys.legacy_at_rest_key())
    # The log's seven entries keep their legacy pseudonyms; from seq 7 on, the HKDF key.
    assert migrations.legacy_pseudonyms_before(conn) == 7


def test_step_2_resumes_after_a_crash_and_leaves_altered_rows(
    at_step_1: tuple[sqlite3.Connection, NodeKeys],
) -> None:
    conn, keys = at_step_1
    want = texts(conn, keys.legacy_at_rest_key())
    # A run that died after its first batch: some rows are under the new key already.
    with db.tx(conn):
        assert migrations._reencrypt(conn, keys, ("", ""), 4) is not None
    altered = (f"{4:032x}", "samenvatting")
    conn.execute(
        "UPDATE received_details SET ciphertext = zeroblob(40) WHERE trace_id = ? AND category = ?",
        altered,
    )
    assert migrations.migrate(conn, keys, target=2) == [2]
    rows = conn.execute(
        "SELECT trace_id, category, nonce, ciphertext FROM received_details"
        " WHERE NOT (trace_id = ? AND category = ?)",
        altered,
    ).fetchall()
    assert len(rows) == 9
    for trace_id, category, nonce, ct in rows:
        got = open_at_rest(keys.at_rest_key(), trace_id, POLITIE, category, nonce, ct)
        assert got == want[(trace_id, category)]
    (ct,) = conn.execute(
        "SELECT ciphertext FROM received_details WHERE trace_id = ? AND category = ?", altered
    ).fetchone()
    assert bytes(ct) == bytes(40)  # unreadable before, unreadable after: not dropped


def test_step_2_without_the_keys_stops_at_step_1(
    at_step_1: tuple[sqlite3.Connection, NodeKeys],
) -> None:
    conn, keys = at_step_1
    with pytest.raises(ConfigError, match="needs the node's keys"):
        migrations.migrate(conn)
    assert migrations.user_version(conn) == 1
    assert not conn.in_transaction
    assert migrations.migrate(conn, keys, target=2) == [2]


def test_step_3_dates_the_first_disclosure_of_each_delivered_category_from_the_log(
    tmp_path: Path,
) -> None:
    keys = NodeKeys.generate()
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrations.migrate(conn, keys, target=2) == [1, 2]
    sent, approved = "a" * 32, "b" * 32
    with db.tx(conn):
        for trace_id in (sent, approved):
            conn.execute(
                "INSERT INTO detail_requests VALUES (?, ?, 'c', 1, 'p', 'CASE', 'u', "
                "'coordinator', 'r', 'x', '[]', '2026-01-01T00:00:00Z')",
                ("vh-test", trace_id),
            )
            conn.execute(
                "INSERT INTO detail_categories (requester, trace_id, category, position, "
                "status, rule) VALUES ('vh-test', ?, 'contactpersoon', 0, 'delivered', 'allow')",
                (trace_id,),
            )
        when = datetime(2026, 1, 2, tzinfo=UTC)
        # Only the first was ever sealed to the requester: the log says so.
        entry = log.LogEntry(
            kind="detail.disclosed",
            trace_id=sent,
            counterparty="vh-test",
            data={"category": "contactpersoon"},
        )
        log.append(conn, keys.signing, POLITIE, [entry, entry], when)
        conn.execute(
            "INSERT INTO hit_notices (requester, convenant_id, convenant_version, purpose, "
            "case_ref, requesting_user, round_trace_id, subject_pseudonym, refs, received_at) "
            "VALUES ('vh-test', 'c', 1, 'p', 'CASE', 'u', 'r', 'x', '[\"BVH-1\"]', 't')"
        )
    assert migrations.migrate(conn, keys, target=3) == [3]
    disclosed = dict(conn.execute("SELECT trace_id, disclosed_at FROM detail_categories"))
    assert disclosed == {sent: "2026-01-02T00:00:00Z", approved: None}
    assert conn.execute("SELECT acknowledged_at FROM hit_notices").fetchall() == [(None,)]


def test_step_4_adds_web_sign_in_tables_even_where_they_already_are(tmp_path: Path) -> None:
    keys = NodeKeys.generate()
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrations.migrate(conn, keys, target=3) == [1, 2, 3]
    tables = "SELECT name FROM sqlite_master WHERE name IN ('user_credentials', 'web_sessions')"
    assert conn.execute(tables).fetchall() == []
    assert migrations.migrate(conn, keys, target=4) == [4]
    assert sorted(r[0] for r in conn.execute(tables)) == ["user_credentials", "web_sessions"]
    # A development copy whose user_version says 3 while it holds step 4's tables.
    conn.execute("PRAGMA user_version = 3")
    assert migrations.migrate(conn, keys, target=4) == [4]
    assert migrations.user_version(conn) == 4


def test_step_5_adds_oprf_key_epochs_and_keeps_the_tags(tmp_path: Path) -> None:
    # A database from before key epochs has no epoch row: it is epoch 0, whose key is
    # the one it always had, so its published tags stay valid until the first change.
    keys = NodeKeys.generate()
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrations.migrate(conn, keys, target=4) == [1, 2, 3, 4]
    assert migrations.migrate(conn, keys, target=5) == [5]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"oprf_epochs", "peer_oprf_keys", "peer_oprf_key_conflicts"} <= tables
    assert oprf_epochs.current(conn, "vh-test-veelplegers").epoch == 0
    legacy = oprf.derive_key_pair(keys.oprf_seed, b"vhnode/v1 convenant vh-test-veelplegers")
    assert keys.oprf_key("vh-test-veelplegers", 0) == legacy
    assert keys.oprf_key("vh-test-veelplegers", 1) != legacy


def test_step_6_keeps_held_heads_as_epoch_0_and_keys_them_by_epoch(tmp_path: Path) -> None:
    keys = NodeKeys.generate()
    conn = sqlite3.connect(tmp_path / "node.db", isolation_level=None)
    assert migrations.migrate(conn, keys, target=5) == [1, 2, 3, 4, 5]
    conn.execute(
        "INSERT INTO peer_tree_heads (peer, tree_size, root_hash, head, received_at)"
        " VALUES ('om-test', 5, x'00', '{}', '2026-01-01T00:00:00Z')"
    )
    assert migrations.migrate(conn, keys) == [6]
    assert migrations.user_version(conn) == migrations.latest()
    held = "SELECT peer, epoch, tree_size FROM peer_tree_heads"
    assert conn.execute(held).fetchall() == [("om-test", 0, 5)]
    # The same size in a later epoch is another head, not a conflict of keys.
    conn.execute(
        "INSERT INTO peer_tree_heads (peer, epoch, tree_size, root_hash, head, received_at)"
        " VALUES ('om-test', 1, 5, x'01', '{}', '2026-01-02T00:00:00Z')"
    )
    assert len(conn.execute(held).fetchall()) == 2
