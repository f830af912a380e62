"""The transparency log: append, RFC 9162 roots, signed heads, and every kind of tampering
made directly on the SQLite file, which ``verify`` must find at the right entry."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nacl.signing
import pytest

from node.errors import BadSignature, InputError, LogCorrupted, MalformedMessage, NotFound
from node.protocol import jws, merkle
from node.store import log, migrations

NODE = "node-politie-amsterdam"
NOW = datetime(2026, 11, 23, 15, 33, 14, 123456, tzinfo=UTC)
PSEUDONYM_KEY = bytes(range(32))
ROOT_DIR = Path(__file__).resolve().parent.parent

h = bytes.fromhex

# RFC 6962/9162 reference vectors (certificate-transparency testonly/constants.go):
# leaf inputs and the Merkle Tree Hash of the first n of them, n = 1..8.
CT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


# --- helpers ---------------------------------------------------------------------------


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn)
    return conn


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "node.sqlite"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(db_path)
    yield c
    c.close()


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey.generate()


def pub(key: nacl.signing.SigningKey) -> bytes:
    return bytes(key.verify_key)


def entry(i: int) -> log.LogEntry:
    """A varied, realistic entry; outcome is 'hit' or 'no_hit' so tests can edit it."""
    kinds = ["bekendheid.evaluated", "bekendheid.refused", "tag_set.served", "peer.added"]
    return log.LogEntry(
        kind=kinds[i % len(kinds)],
        trace_id=f"trace-{i // 3}",
        convenant_id="conv-veelplegers" if i % 5 else None,
        convenant_version=2 if i % 5 else None,
        purpose="casusoverleg" if i % 2 else None,
        actor=f"user{i % 7}",
        counterparty=f"node-{i % 4}",
        subjects=tuple(
            log.pseudonym(PSEUDONYM_KEY, f"bsn:{100000000 + i + k}") for k in range(i % 3)
        ),
        outcome="hit" if i % 2 else "no_hit",
        reason=None,
        data={"elements": i % 3, "case_ref": f"ZVH-{i}", "note": "één gezin"},
    )


def append(
    conn: sqlite3.Connection,
    key: nacl.signing.SigningKey,
    entries: Sequence[log.LogEntry],
    now: datetime = NOW,
) -> log.TreeHead:
    conn.execute("BEGIN IMMEDIATE")
    head = log.append(conn, key, NODE, entries, now)
    conn.execute("COMMIT")
    return head


def fill(conn: sqlite3.Connection, key: nacl.signing.SigningKey, n: int, batch: int = 1) -> None:
    """n entries, ``batch`` per append (so one head per batch)."""
    for start in range(0, n, batch):
        append(conn, key, [entry(i) for i in range(start, min(n, start + batch))])


def leaves(conn: sqlite3.Connection) -> list[bytes]:
    return [bytes(r[0]) for r in conn.execute("SELECT leaf_hash FROM log_entries ORDER BY seq")]


def body(conn: sqlite3.Connection, seq: int) -> dict[str, object]:
    row = conn.execute("SELECT body FROM log_entries WHERE seq = ?", (seq,)).fetchone()
    result: dict[str, object] = json.loads(row[0])
    return result


def first(report: log.VerifyReport) -> log.LogProblem:
    assert report.problems, "verify found nothing"
    return report.problems[0]


# --- append and formats ----------------------------------------------------------------


def test_single_entry_body_hash_and_head_formats(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    subject = log.pseudonym(PSEUDONYM_KEY, "bsn:111222333")
    e = log.LogEntry(
        kind="bekendheid.evaluated",
        trace_id="t1",
        convenant_id="conv-hg",
        convenant_version=3,
        purpose="casusoverleg",
        actor="alice",
        counterparty="node-om",
        subjects=(subject,),
        outcome="evaluated",
        reason=None,
        data={"elements": 1, "case_ref": "ZVH-7"},
    )
    head = append(conn, key, [e])

    seq, text, leaf, kind, at, trace, conv, cp = conn.execute(
        "SELECT seq, body, leaf_hash, kind, time, trace_id, convenant_id, counterparty"
        " FROM log_entries"
    ).fetchone()
    expected = {
        "seq": 0,
        "prev": "0" * 64,
        "time": "2026-11-23T15:33:14Z",
        "node": NODE,
        "kind": "bekendheid.evaluated",
        "trace_id": "t1",
        "convenant": {"id": "conv-hg", "version": 3},
        "purpose": "casusoverleg",
        "actor": "alice",
        "counterparty": "node-om",
        "subjects": [subject],
        "outcome": "evaluated",
        "reason": None,
        "data": {"case_ref": "ZVH-7", "elements": 1},
    }
    assert seq == 0
    assert text.encode() == jws.canonical(expected)  # stored exactly as canonical JSON
    assert leaf == hashlib.sha256(b"\x00" + text.encode()).digest()
    assert (kind, at, trace, conv, cp) == (
        "bekendheid.evaluated",
        "2026-11-23T15:33:14Z",
        "t1",
        "conv-hg",
        "node-om",
    )
    assert conn.execute("SELECT seq, pseudonym FROM log_subjects").fetchall() == [(0, subject)]

    assert head.tree_size == 1
    assert head.root_hash == leaf  # a one-leaf tree's root is the leaf hash
    assert head.signed_at == datetime(2026, 11, 23, 15, 33, 14, tzinfo=UTC)
    doc = jws.parse(json.loads(head.jws), log.TREE_HEAD_TYP)
    doc.verify(jws.fingerprint(pub(key)), pub(key))
    assert doc.payload == {
        "node": NODE,
        "tree_size": 1,
        "root_hash": jws.b64u_encode(leaf),
        "signed_at": "2026-11-23T15:33:14Z",
    }
    assert log.latest_head(conn) == head
    assert log.verify(conn, NODE, pub(key)).ok


def test_batches_continue_seq_and_chain(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    h1 = append(conn, key, [entry(i) for i in range(3)])
    h2 = append(conn, key, [entry(i) for i in range(3, 8)], NOW + timedelta(seconds=5))
    assert (h1.tree_size, h2.tree_size) == (3, 8)
    seqs = [r[0] for r in conn.execute("SELECT seq FROM log_entries ORDER BY seq")]
    assert seqs == list(range(8))
    hashes = leaves(conn)
    for seq in range(8):
        b = body(conn, seq)
        assert b["seq"] == seq
        assert b["prev"] == ("0" * 64 if seq == 0 else hashes[seq - 1].hex())
    assert body(conn, 7)["time"] == "2026-11-23T15:33:19Z"
    # one head per append call
    assert [r[0] for r in conn.execute("SELECT tree_size FROM tree_heads ORDER BY 1")] == [3, 8]
    assert log.latest_head(conn) == h2


def test_merkle_root_matches_rfc_vectors() -> None:
    leaf_hashes = [log.leaf_hash(h(x)) for x in CT_LEAVES]
    assert log.merkle_root([]) == hashlib.sha256(b"").digest()
    for n in range(1, 9):
        assert log.merkle_root(leaf_hashes[:n]).hex() == CT_ROOTS[n - 1]


def test_every_head_root_is_the_mth_for_sizes_1_to_70(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    for i in range(70):
        head = append(conn, key, [entry(i)])
        assert head.tree_size == i + 1
        assert head.root_hash == log.merkle_root(leaves(conn))
    # the stored heads agree too, and the frontier holds one subtree per set bit of 70
    for size, root in conn.execute("SELECT tree_size, root_hash FROM tree_heads"):
        assert root == log.merkle_root(leaves(conn)[:size])
    levels = [r[0] for r in conn.execute("SELECT level FROM log_frontier ORDER BY level")]
    assert levels == [1, 2, 6]  # 70 = 0b1000110


def test_batched_heads_match_the_reference_root(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    n = 0
    for size in [1, 2, 3, 7, 8, 16, 1, 31, 64, 5]:
        head = append(conn, key, [entry(i) for i in range(n, n + size)])
        n += size
        assert head.tree_size == n
        assert head.root_hash == log.merkle_root(leaves(conn))


def test_signed_head_verifies_only_under_our_key_and_node(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    head = append(conn, key, [entry(i) for i in range(5)])
    checked = log.check_head(json.loads(head.jws), NODE, pub(key))
    assert checked == head
    head.document().verify(jws.fingerprint(pub(key)), pub(key))
    with pytest.raises(BadSignature):
        log.check_head(json.loads(head.jws), NODE, pub(nacl.signing.SigningKey.generate()))
    with pytest.raises(MalformedMessage, match="node"):
        log.check_head(json.loads(head.jws), "node-other", pub(key))


def test_empty_append_signs_the_empty_tree_once(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    assert log.latest_head(conn) is None
    empty = append(conn, key, [])
    assert (empty.tree_size, empty.root_hash) == (0, hashlib.sha256(b"").digest())
    assert append(conn, key, [], NOW + timedelta(hours=1)) == empty
    assert log.verify(conn, NODE, pub(key)).ok
    head = append(conn, key, [entry(0)])
    assert append(conn, key, []) == head


def test_append_refuses_outside_a_transaction(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    with pytest.raises(RuntimeError, match="transaction"):
        log.append(conn, key, NODE, [entry(0)], NOW)
    assert conn.execute("SELECT count(*) FROM log_entries").fetchone() == (0,)


def test_append_refuses_identifiers_and_naive_times(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    conn.execute("BEGIN")
    with pytest.raises(ValueError, match="pseudonyms"):
        log.append(conn, key, NODE, [log.LogEntry(kind="x", subjects=("111222333",))], NOW)
    with pytest.raises(ValueError, match="timezone"):
        log.append(conn, key, NODE, [entry(0)], NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="JSON"):
        log.append(conn, key, NODE, [log.LogEntry(kind="x", data={"v": float("nan")})], NOW)
    conn.execute("ROLLBACK")


def test_append_refuses_to_build_on_a_damaged_tip(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 10, batch=2)
    conn.execute("DELETE FROM log_entries WHERE seq >= 8")
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(LogCorrupted):
        log.append(conn, key, NODE, [entry(10)], NOW)
    conn.execute("ROLLBACK")


def test_pseudonym_is_keyed_and_deterministic() -> None:
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    p = log.pseudonym(k1, "bsn:111222333")
    assert p == log.pseudonym(k1, "bsn:111222333")
    assert len(p) == 64
    assert int(p, 16) >= 0
    assert p != log.pseudonym(k2, "bsn:111222333")
    assert p != log.pseudonym(k1, "bsn:111222334")
    assert p != hashlib.sha256(b"bsn:111222333").hexdigest()  # not an unkeyed hash
    with pytest.raises(ValueError, match="key"):
        log.pseudonym(b"short", "bsn:111222333")


# --- verify: intact logs ---------------------------------------------------------------


def test_verify_ok_on_500_entries(conn: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    n, batches = 0, 0
    for size in [1, 7, 50, 3, 100, 1, 1, 200, 37, 100]:
        append(conn, key, [entry(i) for i in range(n, n + size)])
        n += size
        batches += 1
    assert n == 500
    report = log.verify(conn, NODE, pub(key))
    assert report.ok, report.problems
    assert (report.entries, report.heads) == (500, batches)
    report.raise_if_bad()
    assert not conn.in_transaction  # verify closes the read transaction it opened


def test_verify_under_the_wrong_key_or_node(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 6, batch=2)
    other = log.verify(conn, NODE, pub(nacl.signing.SigningKey.generate()))
    assert [p.kind for p in other.problems] == ["bad_signature"] * 3
    wrong_node = log.verify(conn, "node-other", pub(key))
    assert {p.kind for p in wrong_node.problems} == {"bad_head"}
    with pytest.raises(LogCorrupted):
        wrong_node.raise_if_bad()


def test_append_of_10000_entries_in_one_call(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 5)
    started = time.perf_counter()
    head = append(conn, key, [entry(i) for i in range(5, 10_005)])
    took = time.perf_counter() - started
    assert head.tree_size == 10_005
    assert head.root_hash == log.merkle_root(leaves(conn))
    started = time.perf_counter()
    report = log.verify(conn, NODE, pub(key))
    print(f"append 10,000: {took:.2f}s; verify 10,005: {time.perf_counter() - started:.2f}s")
    assert report.ok, report.problems


# --- verify: tampering made with SQL on the file ---------------------------------------


@pytest.fixture
def tampered(db_path: Path, key: nacl.signing.SigningKey) -> sqlite3.Connection:
    """60 entries in batches of 4 (heads at 4, 8, …, 60), then a fresh connection, as an
    attacker with the file would have."""
    c = open_db(db_path)
    fill(c, key, 60, batch=4)
    assert log.verify(c, NODE, pub(key)).ok
    c.close()
    return open_db(db_path)


def test_edited_body_field(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    assert body(tampered, 21)["outcome"] == "hit"
    tampered.execute(
        "UPDATE log_entries"
        ' SET body = replace(body, \'"outcome":"hit"\', \'"outcome":"no_hit"\')'
        " WHERE seq = 21"
    )
    report = log.verify(tampered, NODE, pub(key))
    p = first(report)
    assert (p.seq, p.kind) == (21, "edited")
    # the next entry still links to the stored (original) leaf hash: reported once; the
    # first signed head over entry 21 no longer matches
    assert [(q.seq, q.kind) for q in report.problems] == [(21, "edited"), (23, "bad_head")]
    assert report.problems[1].tree_size == 24


def test_edited_body_with_recomputed_leaf_hash(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    b = body(tampered, 33)
    b["outcome"] = "no_hit" if b["outcome"] == "hit" else "hit"
    new = jws.canonical(b)
    tampered.execute(
        "UPDATE log_entries SET body = ?, leaf_hash = ? WHERE seq = 33",
        (new.decode(), log.leaf_hash(new)),
    )
    report = log.verify(tampered, NODE, pub(key))
    assert (first(report).seq, first(report).kind) == (33, "edited")
    assert "34" in first(report).detail
    assert [q.kind for q in report.problems] == ["edited", "bad_head"]


def test_edited_column_copy_only(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    tampered.execute("UPDATE log_entries SET counterparty = 'node-x' WHERE seq = 17")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(17, "inconsistent_columns")]
    assert "counterparty" in report.problems[0].detail


def test_removed_subject_row(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    seq = next(i for i in range(60) if body(tampered, i)["subjects"])
    tampered.execute("DELETE FROM log_subjects WHERE seq = ?", (seq,))
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(seq, "inconsistent_columns")]


def test_deleted_middle_row(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("DELETE FROM log_entries WHERE seq = 30")
    tampered.execute("DELETE FROM log_subjects WHERE seq = 30")
    report = log.verify(tampered, NODE, pub(key))
    assert (first(report).seq, first(report).kind) == (30, "missing")
    assert report.entries == 59
    assert not any(q.kind == "truncated" for q in report.problems)


def test_deleted_middle_rows_and_renumbered(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    # A more careful attacker closes the gap so seq stays contiguous.
    for table in ("log_entries", "log_subjects"):
        tampered.execute(f"DELETE FROM {table} WHERE seq IN (30, 31)")
        tampered.execute(f"UPDATE {table} SET seq = seq - 2 WHERE seq > 31")
    report = log.verify(tampered, NODE, pub(key))
    p = first(report)
    assert (p.seq, p.kind) == (30, "missing")
    assert "entries 30..31" in p.detail
    assert not any(q.kind == "reordered" for q in report.problems)
    assert [(q.seq, q.kind) for q in report.problems] == [
        (30, "missing"),
        (31, "bad_head"),
        (58, "truncated"),  # the log now ends at 58
    ]


def test_deleted_last_rows(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("DELETE FROM log_entries WHERE seq >= 55")
    tampered.execute("DELETE FROM log_subjects WHERE seq >= 55")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(55, "truncated")]
    assert report.problems[0].tree_size == 60


def test_deleted_last_rows_and_their_heads_need_a_peer(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    # Cutting the tail at a head boundary *and* deleting the later heads: the stored
    # frontier and the stored subtrees of the cut entries still give it away...
    kept_by_peer = log.latest_head(tampered)
    assert kept_by_peer is not None
    tampered.execute("DELETE FROM log_entries WHERE seq >= 56")
    tampered.execute("DELETE FROM log_subjects WHERE seq >= 56")
    tampered.execute("DELETE FROM tree_heads WHERE tree_size > 56")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [
        (55, "inconsistent_columns"),
        (55, "bad_node"),
    ]
    assert "log_frontier" in report.problems[0].detail
    assert "not in the log" in report.problems[1].detail
    # ...until the attacker rebuilds the frontier (56 = 32 + 16 + 8) and drops the
    # subtrees that reach past entry 55. Then the log is consistent in itself and only a
    # head a peer kept can show the cut.
    hs = leaves(tampered)
    tampered.execute("DELETE FROM log_frontier")
    tampered.executemany(
        "INSERT INTO log_frontier VALUES (?, ?)",
        [
            (5, log.merkle_root(hs[:32])),
            (4, log.merkle_root(hs[32:48])),
            (3, log.merkle_root(hs[48:56])),
        ],
    )
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(55, "bad_node")]
    tampered.execute("DELETE FROM log_nodes WHERE ((idx + 1) << level) > 56")
    assert log.verify(tampered, NODE, pub(key)).ok
    assert log.check_head(json.loads(kept_by_peer.jws), NODE, pub(key)).tree_size == 60


def test_swapped_rows(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("UPDATE log_entries SET seq = -1 WHERE seq = 40")
    tampered.execute("UPDATE log_entries SET seq = 40 WHERE seq = 41")
    tampered.execute("UPDATE log_entries SET seq = 41 WHERE seq = -1")
    report = log.verify(tampered, NODE, pub(key))
    assert (first(report).seq, first(report).kind) == (40, "reordered")
    entry_problems = [(q.seq, q.kind) for q in report.problems if q.kind == "reordered"]
    assert entry_problems == [(40, "reordered"), (41, "reordered")]
    assert not any(q.kind in {"missing", "edited"} for q in report.problems)


def test_swapped_distant_rows(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("UPDATE log_entries SET seq = -1 WHERE seq = 12")
    tampered.execute("UPDATE log_entries SET seq = 12 WHERE seq = 50")
    tampered.execute("UPDATE log_entries SET seq = 50 WHERE seq = -1")
    report = log.verify(tampered, NODE, pub(key))
    reordered = [q.seq for q in report.problems if q.kind == "reordered"]
    assert (first(report).seq, first(report).kind) == (12, "reordered")
    assert reordered == [12, 50]
    assert not any(q.kind in {"missing", "edited"} for q in report.problems)


def test_row_replaced_by_a_copy_of_another(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    tampered.execute(
        "UPDATE log_entries SET (body, leaf_hash) ="
        " (SELECT body, leaf_hash FROM log_entries WHERE seq = 5) WHERE seq = 20"
    )
    report = log.verify(tampered, NODE, pub(key))
    assert (first(report).seq, first(report).kind) == (20, "edited")
    assert "copy of entry 5" in first(report).detail
    assert not any(q.kind in {"missing", "reordered"} for q in report.problems)


def test_frontier_edited(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("UPDATE log_frontier SET hash = zeroblob(32) WHERE level = 2")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(59, "inconsistent_columns")]


def test_head_replaced_by_one_signed_with_another_key(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    size, text = tampered.execute(
        "SELECT tree_size, jws FROM tree_heads WHERE tree_size = 28"
    ).fetchone()
    payload = jws.parse(json.loads(text), log.TREE_HEAD_TYP).payload
    forged = jws.sign(log.TREE_HEAD_TYP, payload, nacl.signing.SigningKey.generate())
    tampered.execute(
        "UPDATE tree_heads SET jws = ? WHERE tree_size = 28", (json.dumps(forged.to_json()),)
    )
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind, q.tree_size) for q in report.problems] == [(27, "bad_signature", 28)]
    assert size == 28


def test_head_columns_edited(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("UPDATE tree_heads SET root_hash = zeroblob(32) WHERE tree_size = 12")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(11, "inconsistent_columns")]


def test_garbage_head(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    tampered.execute("UPDATE tree_heads SET jws = '{not json' WHERE tree_size = 8")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(7, "bad_head")]


def test_unsigned_tail(tampered: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    # Rows added behind the node's back, even correctly chained, have no signed head.
    prev = leaves(tampered)[-1]
    b = body(tampered, 59)
    b.update(seq=60, prev=prev.hex())
    raw = jws.canonical(b)
    tampered.execute(
        "INSERT INTO log_entries (seq, body, leaf_hash, kind, time, trace_id, convenant_id,"
        " counterparty) SELECT 60, ?, ?, kind, time, trace_id, convenant_id, counterparty"
        " FROM log_entries WHERE seq = 59",
        (raw.decode(), log.leaf_hash(raw)),
    )
    tampered.execute(
        "INSERT INTO log_subjects SELECT 60, pseudonym FROM log_subjects WHERE seq = 59"
    )
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(60, "bad_head")]


def test_problems_are_capped_and_the_first_is_earliest(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    tampered.execute("UPDATE log_entries SET kind = 'x' WHERE seq >= 5")
    report = log.verify(tampered, NODE, pub(key))
    assert len(report.problems) == log.MAX_PROBLEMS
    assert [q.seq for q in report.problems] == list(range(5, 5 + log.MAX_PROBLEMS))


# --- crashes ---------------------------------------------------------------------------


def test_rollback_leaves_no_partial_entries(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 10, batch=5)
    before = log.latest_head(conn)
    conn.execute("BEGIN IMMEDIATE")
    log.append(conn, key, NODE, [entry(i) for i in range(10, 20)], NOW)
    conn.execute("ROLLBACK")  # e.g. the decision it recorded failed
    assert conn.execute("SELECT count(*) FROM log_entries").fetchone() == (10,)
    assert log.latest_head(conn) == before
    assert log.verify(conn, NODE, pub(key)).ok
    head = append(conn, key, [entry(i) for i in range(10, 12)])  # the frontier was restored
    assert head.root_hash == log.merkle_root(leaves(conn))


def test_process_crash_mid_transaction(db_path: Path, key: nacl.signing.SigningKey) -> None:
    c = open_db(db_path)
    fill(c, key, 20, batch=4)
    c.close()
    # A real crash: the child appends 1000 entries, then dies before COMMIT.
    script = f"""
import os, sqlite3, nacl.signing
from datetime import datetime, UTC
from node.store import log
conn = sqlite3.connect({str(db_path)!r}, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
log.append(conn, nacl.signing.SigningKey({bytes(key)!r}), {NODE!r},
           [log.LogEntry(kind="crash.test", data={{"i": i}}) for i in range(1000)],
           datetime.now(UTC))
os._exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT_DIR, check=False)
    assert done.returncode == 3
    c = open_db(db_path)
    assert c.execute("SELECT count(*), max(seq) FROM log_entries").fetchone() == (20, 19)
    assert log.verify(c, NODE, pub(key)).ok
    assert append(c, key, [entry(20)]).tree_size == 21
    c.close()


# --- stored subtrees and proofs --------------------------------------------------------


def stored_nodes(conn: sqlite3.Connection) -> dict[tuple[int, int], bytes]:
    rows = conn.execute("SELECT level, idx, hash FROM log_nodes")
    return {(lv, i): bytes(hh) for lv, i, hh in rows}


def expected_nodes(hashes: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect aligned subtree above the leaves, from the reference MTH."""
    out = {}
    level = 1
    while (1 << level) <= len(hashes):
        for i in range(len(hashes) >> level):
            out[(level, i)] = log.merkle_root(hashes[i << level : (i + 1) << level])
        level += 1
    return out


@pytest.fixture
def proof_log(conn: sqlite3.Connection, key: nacl.signing.SigningKey) -> sqlite3.Connection:
    """300 entries in appends of varied size: 37 signed heads, at sizes of every shape."""
    n = 0
    sizes = [
        1,
        1,
        1,
        1,
        2,
        3,
        5,
        8,
        13,
        21,
        34,
        55,
        1,
        1,
        64,
        1,
        2,
        4,
        8,
        16,
        32,
        7,
        3,
        1,
        2,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        1,
        2,
    ]
    for size in sizes:
        append(conn, key, [entry(i) for i in range(n, n + size)])
        n += size
    assert n == 300
    return conn


def test_log_nodes_hold_every_complete_subtree(
    proof_log: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    hs = leaves(proof_log)
    assert stored_nodes(proof_log) == expected_nodes(hs)
    assert len(stored_nodes(proof_log)) == 300 - bin(300).count("1")  # n - popcount(n)
    for start in range(0, 41):
        for end in range(start, 41):
            assert log.subtree_hash(proof_log, start, end) == log.merkle_root(hs[start:end])
    for end in range(301):
        assert log.subtree_hash(proof_log, 0, end) == log.merkle_root(hs[:end])


def test_proofs_from_sqlite_verify_against_every_signed_head(
    proof_log: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    hs = leaves(proof_log)
    heads = [
        log.check_head(json.loads(r[0]), NODE, pub(key))
        for r in proof_log.execute("SELECT jws FROM tree_heads ORDER BY tree_size")
    ]
    assert len(heads) == 37
    in_memory = lambda a, b: log.merkle_root(hs[a:b])  # noqa: E731
    proofs = 0
    for head in heads:
        assert log.head_at(proof_log, head.tree_size) == head
        n = head.tree_size
        for seq in range(n):  # every entry under every head
            proof = log.inclusion_proof(proof_log, seq, n)
            assert merkle.verify_inclusion(hs[seq], seq, n, proof, head.root_hash)
            if seq % 17 == 0:
                assert proof == merkle.inclusion_proof(seq, n, in_memory)
            proofs += 1
        for old in heads:  # and every pair of heads
            if old.tree_size <= n:
                proof = log.consistency_proof(proof_log, old.tree_size, n)
                assert proof == merkle.consistency_proof(old.tree_size, n, in_memory)
                assert merkle.verify_consistency(
                    old.tree_size, n, old.root_hash, head.root_hash, proof
                )
                proofs += 1
    assert proofs > 5000
    # sizes without a head of their own are served too (nothing to self-check against)
    assert log.head_at(proof_log, 299) is None
    proof = log.inclusion_proof(proof_log, 7, 299)
    assert merkle.verify_inclusion(hs[7], 7, 299, proof, log.merkle_root(hs[:299]))


def test_proof_requests_outside_the_log_are_refused(proof_log: sqlite3.Connection) -> None:
    with pytest.raises(InputError):
        log.inclusion_proof(proof_log, 10, 10)
    with pytest.raises(InputError):
        log.inclusion_proof(proof_log, -1, 10)
    with pytest.raises(InputError):
        log.inclusion_proof(proof_log, 0, True)
    with pytest.raises(NotFound):
        log.inclusion_proof(proof_log, 0, 301)
    with pytest.raises(InputError):
        log.consistency_proof(proof_log, 20, 10)
    with pytest.raises(NotFound):
        log.consistency_proof(proof_log, 10, 1000)
    with pytest.raises(InputError):
        log.subtree_hash(proof_log, 5, 4)
    with pytest.raises(NotFound):
        log.subtree_hash(proof_log, 0, 301)
    assert log.consistency_proof(proof_log, 0, 300) == []
    assert log.consistency_proof(proof_log, 300, 300) == []
    assert log.subtree_hash(proof_log, 7, 7) == hashlib.sha256(b"").digest()


def test_backfill_of_a_log_written_before_log_nodes(
    db_path: Path, key: nacl.signing.SigningKey
) -> None:
    c = open_db(db_path)
    fill(c, key, 150, batch=7)
    want = stored_nodes(c)
    # The shape of a database from before the table (and before numbered migrations).
    c.execute("DROP TABLE log_nodes")
    c.execute("PRAGMA user_version = 0")
    c.close()

    # A read-only connection cannot backfill: proofs are computed from the leaf hashes.
    ro = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    c = open_db(db_path)  # step 1 creates the empty table
    assert log.verify(c, NODE, pub(key)).ok  # empty: not built yet, nothing to report
    ro_head = log.latest_head(ro)
    assert ro_head is not None
    proof = log.inclusion_proof(ro, 100, 147)
    head = log.head_at(ro, 147)
    assert head is not None
    assert merkle.verify_inclusion(leaves(c)[100], 100, 147, proof, head.root_hash)
    assert stored_nodes(c) == {}
    ro.close()

    # The first proof on a writable connection backfills (and commits) the whole table.
    old, new = log.head_at(c, 147), log.head_at(c, 150)
    assert old is not None
    assert new is not None
    proof = log.consistency_proof(c, 147, 150)
    assert merkle.verify_consistency(147, 150, old.root_hash, new.root_hash, proof)
    assert not c.in_transaction
    assert stored_nodes(c) == want
    assert log.backfill_nodes(c) == 0  # only an empty table is backfilled
    assert log.verify(c, NODE, pub(key)).ok

    # Append backfills too, inside the caller's transaction.
    c.execute("DELETE FROM log_nodes")
    head = append(c, key, [entry(i) for i in range(150, 160)])
    assert stored_nodes(c) == expected_nodes(leaves(c))
    assert head.root_hash == log.subtree_hash(c, 0, 160)
    assert log.verify(c, NODE, pub(key)).ok
    c.close()


def test_a_database_without_the_table_still_verifies_and_proves(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 40, batch=8)
    hs = leaves(conn)
    conn.execute("DROP TABLE log_nodes")  # e.g. a read-only copy of an old node's file
    assert log.verify(conn, NODE, pub(key)).ok
    proof = log.inclusion_proof(conn, 13, 40)
    assert merkle.verify_inclusion(hs[13], 13, 40, proof, log.merkle_root(hs))
    assert log.subtree_hash(conn, 8, 24) == log.merkle_root(hs[8:24])


def test_backfill_refuses_a_log_with_a_hole(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 20, batch=5)
    conn.execute("DELETE FROM log_nodes")
    conn.execute("DELETE FROM log_entries WHERE seq = 9")
    with pytest.raises(LogCorrupted, match="backfill"):
        log.backfill_nodes(conn)
    assert not conn.in_transaction  # its own savepoint rolled back
    assert stored_nodes(conn) == {}


def test_tampered_node_row_is_caught_by_verify_and_by_the_proofs(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    # level 2, index 5: the subtree of entries 20..23
    tampered.execute("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 5")
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(23, "bad_node")]
    assert "entries 20..23" in report.problems[0].detail
    assert "differs" in report.problems[0].detail
    # a proof that needs that subtree is refused rather than sent
    with pytest.raises(LogCorrupted, match="does not verify"):
        log.inclusion_proof(tampered, 17, 60)
    with pytest.raises(LogCorrupted, match="does not verify"):
        log.consistency_proof(tampered, 20, 60)
    # one that does not need it still goes out
    hs = leaves(tampered)
    proof = log.inclusion_proof(tampered, 40, 60)
    assert merkle.verify_inclusion(hs[40], 40, 60, proof, log.merkle_root(hs))


def test_missing_and_surplus_node_rows(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    tampered.execute("DELETE FROM log_nodes WHERE level = 3 AND idx = 1")  # entries 8..15
    tampered.execute("INSERT INTO log_nodes VALUES (7, 0, zeroblob(32))")  # 128 entries
    tampered.execute("INSERT INTO log_nodes VALUES (0, 3, zeroblob(32))")  # leaves are not stored
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(15, "bad_node"), (59, "bad_node")]
    assert "missing" in report.problems[0].detail
    assert "level 0, index 3) has no place in the tree" in report.problems[1].detail
    tampered.execute("DELETE FROM log_nodes WHERE level = 0")
    report = log.verify(tampered, NODE, pub(key))
    assert "level 7, index 0) for entries 0..127 covers entries that are not in the log" in (
        report.problems[1].detail
    )
    with pytest.raises(LogCorrupted, match="missing"):
        log.inclusion_proof(tampered, 0, 60)


@pytest.mark.parametrize(
    "row",
    [(-1, 0), (0, 3), (1, -2), (1000, 0), (2, "x"), ("x", 1), (3, 10**15), (62, 1)],
)
def test_garbage_node_rows_are_reported_not_crashed_on(
    tampered: sqlite3.Connection, key: nacl.signing.SigningKey, row: tuple[object, object]
) -> None:
    tampered.execute("INSERT INTO log_nodes VALUES (?, ?, zeroblob(32))", row)
    report = log.verify(tampered, NODE, pub(key))
    assert [(q.seq, q.kind) for q in report.problems] == [(59, "bad_node")], row


def test_append_refuses_when_log_nodes_lags_or_runs_ahead(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    fill(conn, key, 10, batch=5)
    conn.execute("DELETE FROM log_nodes WHERE level = 1 AND idx = 4")
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(LogCorrupted, match="log_nodes"):
        log.append(conn, key, NODE, [entry(10)], NOW)
    conn.execute("ROLLBACK")
    conn.execute("INSERT INTO log_nodes VALUES (1, 4, zeroblob(32)), (1, 5, zeroblob(32))")
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(LogCorrupted, match="log_nodes"):
        log.append(conn, key, NODE, [entry(10)], NOW)
    conn.execute("ROLLBACK")
