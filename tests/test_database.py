"""The server's database threads (node/store/database.py): commit groups, savepoints per
job, results only after COMMIT, readers on their own connections, never the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from node.errors import DatabaseBusy
from node.http.statuses import http_status
from node.store import db
from node.store.database import AfterCommit, Database, thread_connection


@pytest.fixture
async def database(tmp_path: Path) -> Database:
    path = tmp_path / "node.db"
    db.connect(path).close()  # the schema, as the node's first connection makes it
    commits: list[int] = []

    def prepare(conn: db.NodeConnection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")

        def before_commit() -> int:
            commits.append(1)
            return len(commits)  # stands in for the group's signed head

        conn.before_commit = before_commit

    d = Database(path, prepare)
    d.start()
    d.commits = commits  # type: ignore[attr-defined]
    yield d
    await d.close()


def _conn() -> sqlite3.Connection:
    conn = thread_connection()
    assert conn is not None
    return conn


def _insert(k: str, v: int) -> str:
    _conn().execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
    return k


async def test_jobs_run_off_the_loop_thread(database: Database) -> None:
    loop_thread = threading.get_ident()
    writer = await database.write(threading.get_ident)
    reader = await database.read(threading.get_ident)
    assert loop_thread not in (writer, reader)
    assert thread_connection() is None  # the loop thread has no connection of its own


async def test_a_failing_job_rolls_back_alone_in_its_group(database: Database) -> None:
    def failing() -> None:
        _insert("b", 2)
        raise ValueError("this job fails after writing")

    results = await asyncio.gather(
        database.write(lambda: _insert("a", 1)),
        database.write(failing),
        database.write(lambda: _insert("c", 3)),
        return_exceptions=True,
    )
    assert results[0] == "a"
    assert isinstance(results[1], ValueError)
    assert results[2] == "c"
    rows = await database.read(lambda: _conn().execute("SELECT k FROM t ORDER BY k").fetchall())
    assert rows == [("a",), ("c",)]


async def test_jobs_that_arrive_together_share_one_commit(database: Database) -> None:
    before = len(database.commits)  # type: ignore[attr-defined]
    # Queued before the writer wakes: one group (the writer takes what is waiting).
    await asyncio.gather(*(database.write(lambda i=i: _insert(f"k{i}", i)) for i in range(50)))
    groups = len(database.commits) - before  # type: ignore[attr-defined]
    assert 1 <= groups < 50
    n = await database.read(lambda: _conn().execute("SELECT COUNT(*) FROM t").fetchone()[0])
    assert n == 50


async def test_after_commit_gets_the_groups_sealed_value(database: Database) -> None:
    def job() -> AfterCommit[tuple[str, int]]:
        _insert("x", 1)
        return AfterCommit(lambda sealed: ("finished", sealed))

    finished, sealed = await database.write(job)
    assert finished == "finished"
    assert sealed == len(database.commits)  # type: ignore[attr-defined]
    # Durable before the result came back: another connection sees it.
    other = sqlite3.connect(database.path)
    assert other.execute("SELECT v FROM t WHERE k = 'x'").fetchone() == (1,)
    other.close()


async def test_readers_see_committed_data_and_cannot_write(database: Database) -> None:
    await database.write(lambda: _insert("r", 7))
    assert await database.read(lambda: _conn().execute("SELECT v FROM t").fetchone()) == (7,)
    with pytest.raises(sqlite3.OperationalError):
        await database.read(lambda: _insert("nope", 0))


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    db.connect(path).close()
    d = Database(path, lambda c: c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)"))
    d.start()
    pending = [asyncio.ensure_future(d.write(lambda i=i: _insert(f"q{i}", i))) for i in range(20)]
    await asyncio.sleep(0)
    await d.close()
    assert [p.result() for p in pending] == [f"q{i}" for i in range(20)]
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM t").fetchone() == (20,)
    other.close()


async def test_a_lock_held_too_long_elsewhere_is_busy_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    db.connect(path).close()
    d = Database(
        path,
        lambda c: c.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)"),
        busy_timeout=0.2,
    )
    d.start()
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a CLI command stuck inside its transaction
        with pytest.raises(DatabaseBusy):
            await d.write(lambda: _insert("late", 1))
        other.execute("ROLLBACK")
        other.close()
        assert await d.write(lambda: _insert("now", 2)) == "now"
        rows = await d.read(lambda: _conn().execute("SELECT k FROM t").fetchall())
        assert rows == [("now",)]
    finally:
        await d.close()
    assert http_status(DatabaseBusy("x")) == 503  # answered as 503 problem+json, type busy
