"""Opening the node database and creating its schema (docs/protocol.md §10).

One SQLite file per node, WAL mode, autocommit connection with explicit transactions
(``tx``). The schema is made and changed by numbered steps, node/store/migrations.py.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from node.config import create_private_file
from node.errors import DISK_FULL_DETAIL, DiskFull
from node.keys import NodeKeys
from node.store import migrations


class NodeConnection(sqlite3.Connection):
    """A connection with the hooks ``tx`` runs around its outermost COMMIT.

    ``before_commit`` seals the transaction's log entries under a signed tree head (set by
    the node: node/flows/context.py) and leaves it in ``sealed_head``; ``after_commit``
    holds work that cannot run inside a transaction (a WAL checkpoint after a purge).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_commit: Callable[[], Any] | None = None
        self.sealed_head: Any = None
        self.after_commit: list[Callable[[], None]] = []
        self.savepoints = 0
        # Set by the node: entries were appended since the last seal; a commit group is open.
        self.log_dirty = False
        self.in_group = False
        # The error under which SQLite rolled back the whole open transaction itself (it
        # may, on SQLITE_FULL or SQLITE_IOERR): nothing more may run or commit in it.
        self.lost: BaseException | None = None


def connect(
    path: Path,
    keys: NodeKeys | None = None,
    *,
    check_same_thread: bool = False,
    migrate: bool = True,
    timeout: float = 30.0,
) -> NodeConnection:
    """Open (and if new, create) the node database, brought to the newest schema step
    (node/store/migrations.py). Autocommit mode: callers use ``tx``.

    ``keys``: needed only by a step that re-encrypts with a key derived from them
    (ConfigError without). ``migrate=False`` for the server's extra connections: the
    node's first connection has brought the schema up to date already. ``timeout``: how
    long a write waits for a lock another process holds.
    """
    create_private_file(path)  # 0600 before SQLite makes it with the umask
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=check_same_thread,
        timeout=timeout,
        factory=NodeConnection,
    )
    assert isinstance(conn, NodeConnection)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # Deleted personal data (purged detail, removed registrations) is overwritten in the
    # file, not left in free pages; ``flush_deleted`` then clears it from the WAL.
    conn.execute("PRAGMA secure_delete=ON")
    if migrate:
        try:
            migrations.migrate(conn, keys)
        except BaseException:
            conn.close()
            raise
    return conn


def trust_generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'trust_generation'").fetchone()
    return int(row[0]) if row else 0


def bump_trust_generation(conn: sqlite3.Connection) -> None:
    """Mark peers or convenants changed (inside the changing transaction; node/flows/trust.py)."""
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('trust_generation', '1') ON CONFLICT (key) "
        "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
    )


def flush_deleted(conn: sqlite3.Connection) -> None:
    """Write the WAL back into the database and truncate it, so the old page images of
    deleted rows (zeroed in the file by ``secure_delete``) are gone from the WAL too.
    Called after retention purges; inside a transaction it runs after the COMMIT."""
    if conn.in_transaction and isinstance(conn, NodeConnection):
        conn.after_commit.append(lambda: flush_deleted(conn))
        return
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def is_disk_full(e: BaseException) -> bool:
    # Errors raised by the sqlite3 module itself (a closed connection, a misuse) carry no
    # SQLite error code at all: they are no full disk, and must keep their own message.
    code = getattr(e, "sqlite_errorcode", None)
    return isinstance(e, sqlite3.Error) and code == sqlite3.SQLITE_FULL


def _disk_full(e: BaseException) -> BaseException:
    """``e`` as the node names it: SQLITE_FULL becomes DiskFull, anything else stays."""
    return DiskFull(DISK_FULL_DETAIL) if is_disk_full(e) else e


def _undo(conn: sqlite3.Connection, statement: str) -> None:
    """Roll back, when there is still something to roll back. SQLite may have rolled the
    whole transaction back itself (on SQLITE_FULL, SQLITE_IOERR, …): a ROLLBACK then fails
    with "no transaction is active", which must not replace the error that caused it."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute(statement)


def lost_error(conn: sqlite3.Connection) -> BaseException:
    """Why the open transaction is gone (``NodeConnection.lost``)."""
    lost = getattr(conn, "lost", None)
    if isinstance(lost, BaseException):
        return lost
    return sqlite3.OperationalError("SQLite rolled the transaction back")


def set_max_size(conn: sqlite3.Connection, max_bytes: int) -> None:
    """Let the database grow to ``max_bytes`` at most (``PRAGMA max_page_count``); past it
    a write fails as on a full disk (SQLITE_FULL → DiskFull)."""
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size)}")


def room_left(conn: sqlite3.Connection, path: Path) -> int:
    """Bytes the database can still grow by: under ``[database] max_size_mib`` (SQLite's
    max_page_count, free pages included) and on the file system that holds it."""
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    most = int(conn.execute("PRAGMA max_page_count").fetchone()[0])
    under_limit = (most - pages + free) * page_size
    return min(under_limit, shutil.disk_usage(path.parent).free)


def size_bytes(path: Path) -> int:
    """The database's size on disk: the file and its write-ahead log."""
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with suppress(FileNotFoundError):
            total += p.stat().st_size
    return total


@contextmanager
def tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: a state change and its log entries commit together or not.

    Nested inside an open transaction it is a savepoint: the inner work rolls back alone
    on error, and commits with the outer transaction (the writer's commit group,
    node/store/database.py). The outermost one runs the connection's ``before_commit``
    (sealing the log) before COMMIT and its ``after_commit`` work after it.

    A full disk (SQLITE_FULL) leaves as DiskFull, at any depth; if SQLite rolled the whole
    transaction back, the outermost level notices and commits nothing.
    """
    if conn.in_transaction:
        depth = getattr(conn, "savepoints", 0)
        name = f"sp{depth}"
        if isinstance(conn, NodeConnection):
            conn.savepoints = depth + 1
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException as e:
            _undo(conn, f"ROLLBACK TO {name}")
            _undo(conn, f"RELEASE {name}")
            error = _disk_full(e)
            if isinstance(conn, NodeConnection) and not conn.in_transaction:
                conn.lost = error
            if error is e:
                raise
            raise error from e
        finally:
            if isinstance(conn, NodeConnection):
                conn.savepoints = depth
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    if isinstance(conn, NodeConnection):
        conn.sealed_head = None  # never a previous transaction's
        conn.lost = None
    try:
        yield conn
        if not conn.in_transaction:
            # SQLite rolled the transaction back under an inner error that was handled
            # (a commit group's failed job): sealing now would write outside it.
            raise lost_error(conn)
        if isinstance(conn, NodeConnection) and conn.before_commit is not None:
            conn.sealed_head = conn.before_commit()
        conn.execute("COMMIT")
    except BaseException as e:
        _undo(conn, "ROLLBACK")
        if isinstance(conn, NodeConnection):
            conn.after_commit.clear()
            conn.log_dirty = False
        error = _disk_full(e)
        if error is e:
            raise
        raise error from e
    if isinstance(conn, NodeConnection):
        work, conn.after_commit = conn.after_commit, []
        for fn in work:
            fn()
