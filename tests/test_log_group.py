"""Group commit for the log (docs/protocol.md §9): ``append_entries`` many times in one
transaction, one ``seal`` (one signed head) per group, and a per-connection tip that is
never trusted when the stored log moved under it (a rolled-back savepoint, another
connection's appends, damage between groups)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import nacl.signing
import pytest

from node.errors import LogCorrupted
from node.store import log
from tests.test_log import NODE, NOW, append, body, entry, leaves, open_db, pub


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


def heads(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT tree_size FROM tree_heads ORDER BY tree_size")]


def bodies(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT body FROM log_entries ORDER BY seq")]


def assert_sound(conn: sqlite3.Connection, key: nacl.signing.SigningKey) -> None:
    report = log.verify(conn, NODE, pub(key))
    assert report.ok, report.problems
    head = log.latest_head(conn)
    assert head is not None
    assert head.root_hash == log.merkle_root(leaves(conn))


def test_several_append_entries_then_one_seal_equal_one_append(
    tmp_path: Path, key: nacl.signing.SigningKey
) -> None:
    grouped, single = open_db(tmp_path / "grouped.db"), open_db(tmp_path / "single.db")
    append(grouped, key, [entry(0)])
    append(single, key, [entry(0)])

    grouped.execute("BEGIN IMMEDIATE")
    sizes = [log.append_entries(grouped, NODE, [entry(i) for i in r], NOW)
             for r in (range(1, 4), range(4, 5), range(5, 5), range(5, 12))]  # fmt: skip
    head = log.seal(grouped, key, NODE, NOW)
    grouped.execute("COMMIT")
    one = append(single, key, [entry(i) for i in range(1, 12)])

    assert sizes == [4, 5, 5, 12]
    assert bodies(grouped) == bodies(single)
    assert (head.tree_size, head.root_hash) == (one.tree_size, one.root_hash)
    assert heads(grouped) == heads(single) == [1, 12]  # one head for the group
    for c in (grouped, single):
        assert_sound(c, key)
    assert grouped.execute("SELECT * FROM log_frontier ORDER BY level").fetchall() == (
        single.execute("SELECT * FROM log_frontier ORDER BY level").fetchall()
    )


def test_seal_without_new_entries_signs_nothing(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    empty = log.seal(conn, key, NODE, NOW)  # the empty tree's head, once
    again = log.seal(conn, key, NODE, NOW + timedelta(seconds=1))
    conn.execute("COMMIT")
    assert empty == again
    assert empty.tree_size == 0
    head = append(conn, key, [entry(0), entry(1)])
    conn.execute("BEGIN IMMEDIATE")
    assert log.append_entries(conn, NODE, [], NOW) == 2
    assert log.seal(conn, key, NODE, NOW + timedelta(seconds=9)) == head
    conn.execute("COMMIT")
    assert heads(conn) == [0, 2]


def test_rolled_back_savepoint_after_append_entries_leaves_no_stale_tip(
    tmp_path: Path, key: nacl.signing.SigningKey
) -> None:
    """A commit group of jobs, each in its own savepoint; the middle one fails."""
    grouped, reference = open_db(tmp_path / "grouped.db"), open_db(tmp_path / "ref.db")
    append(grouped, key, [entry(i) for i in range(3)])
    append(reference, key, [entry(i) for i in range(3)])

    grouped.execute("BEGIN IMMEDIATE")
    log.append_entries(grouped, NODE, [entry(3)], NOW)  # job 1
    grouped.execute("SAVEPOINT job2")
    log.append_entries(grouped, NODE, [entry(100), entry(101), entry(102)], NOW)
    log.append_entries(grouped, NODE, [entry(103)], NOW)
    grouped.execute("ROLLBACK TO job2")  # job 2 failed after logging
    grouped.execute("RELEASE job2")
    grouped.execute("SAVEPOINT job3")
    log.append_entries(grouped, NODE, [entry(4), entry(5)], NOW)
    grouped.execute("RELEASE job3")
    head = log.seal(grouped, key, NODE, NOW)
    grouped.execute("COMMIT")
    ref = append(reference, key, [entry(i) for i in range(3, 6)])

    assert bodies(grouped) == bodies(reference)
    assert (head.tree_size, head.root_hash) == (ref.tree_size, ref.root_hash)
    assert_sound(grouped, key)
    # and the next group starts from the right tip
    after = append(grouped, key, [entry(6)])
    assert after.root_hash == append(reference, key, [entry(6)]).root_hash
    assert_sound(grouped, key)


def test_savepoint_rolled_back_to_the_start_of_the_group(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    append(conn, key, [entry(0)])
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("SAVEPOINT job")
    log.append_entries(conn, NODE, [entry(1), entry(2)], NOW)
    conn.execute("ROLLBACK TO job")
    conn.execute("RELEASE job")
    assert log.append_entries(conn, NODE, [entry(3)], NOW) == 2
    log.seal(conn, key, NODE, NOW)
    conn.execute("COMMIT")
    assert [body(conn, s)["trace_id"] for s in (0, 1)] == [entry(0).trace_id, entry(3).trace_id]
    assert_sound(conn, key)


def test_rolled_back_seal_inside_the_group_is_signed_again(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    append(conn, key, [entry(0)])
    conn.execute("BEGIN IMMEDIATE")
    log.append_entries(conn, NODE, [entry(1)], NOW)
    conn.execute("SAVEPOINT sealing")
    log.seal(conn, key, NODE, NOW)
    conn.execute("ROLLBACK TO sealing")  # the head and the frontier it wrote are gone
    conn.execute("RELEASE sealing")
    log.append_entries(conn, NODE, [entry(2)], NOW)
    head = log.seal(conn, key, NODE, NOW)
    conn.execute("COMMIT")
    assert head.tree_size == 3
    assert heads(conn) == [1, 3]
    assert_sound(conn, key)


def test_whole_group_rolled_back_then_the_next_group(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    append(conn, key, [entry(0)])
    for sealed in (False, True):
        conn.execute("BEGIN IMMEDIATE")
        log.append_entries(conn, NODE, [entry(50), entry(51), entry(52)], NOW)
        if sealed:
            log.seal(conn, key, NODE, NOW)
        conn.execute("ROLLBACK")
        assert heads(conn) == [1]
    head = append(conn, key, [entry(1)])
    assert head.tree_size == 2
    assert_sound(conn, key)


def test_another_connection_appending_between_groups_is_seen(
    db_path: Path, conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    other = open_db(db_path)
    append(conn, key, [entry(0), entry(1)])
    conn.execute("BEGIN IMMEDIATE")
    log.append_entries(conn, NODE, [entry(2)], NOW)
    log.seal(conn, key, NODE, NOW)
    conn.execute("COMMIT")
    # e.g. a CLI command on the same home, as its own process would
    append(other, key, [entry(3), entry(4), entry(5)])
    conn.execute("BEGIN IMMEDIATE")
    assert log.append_entries(conn, NODE, [entry(6)], NOW) == 7
    log.append_entries(conn, NODE, [entry(7)], NOW)
    head = log.seal(conn, key, NODE, NOW)
    conn.execute("COMMIT")
    assert head.tree_size == 8
    assert [body(conn, s)["seq"] for s in range(8)] == list(range(8))
    assert_sound(conn, key)
    other.close()


def test_a_group_committed_without_seal_is_an_unsigned_tail(
    db_path: Path, conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    append(conn, key, [entry(0)])
    conn.execute("BEGIN IMMEDIATE")
    log.append_entries(conn, NODE, [entry(1)], NOW)
    conn.execute("COMMIT")  # a caller bug: no seal
    report = log.verify(conn, NODE, pub(key))
    assert [(p.seq, p.kind) for p in report.problems] == [(1, "bad_head")]
    other = open_db(db_path)  # a connection that did not write it refuses to build on it
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(LogCorrupted, match="tree head"):
        log.append_entries(other, NODE, [entry(2)], NOW)
    other.execute("ROLLBACK")
    other.close()


def test_damage_between_groups_is_caught_at_the_next_group(
    conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    """The tip is re-checked against the tables at the start of every group, even by the
    connection that holds it (the checks test_log's damaged-tip tests make per append)."""
    append(conn, key, [entry(i) for i in range(6)])
    conn.execute("DELETE FROM log_frontier WHERE level = 1")
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(LogCorrupted, match="frontier"):
        log.append_entries(conn, NODE, [entry(6)], NOW)
    with pytest.raises(LogCorrupted, match="frontier"):
        log.seal(conn, key, NODE, NOW)
    conn.execute("ROLLBACK")


def test_heads_deleted_during_a_group_are_not_papered_over(
    db_path: Path, conn: sqlite3.Connection, key: nacl.signing.SigningKey
) -> None:
    append(conn, key, [entry(0)])
    append(conn, key, [entry(1)])
    conn.execute("BEGIN IMMEDIATE")
    log.append_entries(conn, NODE, [entry(2)], NOW)
    conn.execute("DELETE FROM tree_heads WHERE tree_size = 2")  # inside the group
    with pytest.raises(LogCorrupted, match="tree head"):
        log.seal(conn, key, NODE, NOW)
    conn.execute("ROLLBACK")


def test_many_connections_keep_their_own_tips(db_path: Path, key: nacl.signing.SigningKey) -> None:
    # More connections than the writer cache holds: evicted ones reload, none is stale.
    conns = [open_db(db_path) for _ in range(40)]
    for round_ in range(3):
        for i, c in enumerate(conns):
            c.execute("BEGIN IMMEDIATE")
            log.append_entries(c, NODE, [entry(round_ * 100 + i)], NOW)
            log.seal(c, key, NODE, NOW)
            c.execute("COMMIT")
    assert_sound(conns[0], key)
    assert heads(conns[0])[-1] == 120
    for c in conns:
        c.close()
