"""The node's SQLite for a running server: one writer thread, reader threads, no SQLite
on the event loop (docs/architecture.md "The event loop never waits").

Every write runs on the one writer thread, which owns the write connection. Jobs that
arrive together form a *commit group*: one ``BEGIN IMMEDIATE``, each job in its own
savepoint (a failing job rolls back alone), the group's log entries sealed under one
signed tree head, one ``COMMIT``. Only then are the jobs' results handed back, so an
answer that depends on a log entry leaves the node after that entry is durable, and
carries a head that covers it (``AfterCommit``).

Reads run on reader threads with connections of their own; WAL lets them read while the
writer writes. Reads that are long and all CPU — verifying the whole log, the privacy
officer's report — run in a worker process (``in_worker``), so they do not hold the
interpreter lock that the event loop and the writer need.

While another process holds the write lock (a CLI import, a convenant install) the
writer thread waits for it; the event loop does not, and keeps answering whatever needs
no write.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from node.errors import DatabaseBusy, DiskFull
from node.store import db

T = TypeVar("T")
R = TypeVar("R")

logger = structlog.get_logger("vhnode.database")

# The thread's own connection: the writer's on the writer thread, a reader's on a reader
# thread, none elsewhere (node/flows/context.py falls back to the direct connection).
_local = threading.local()

MAX_GROUP = 64
"""Jobs in one commit group at most: bounds how long one COMMIT keeps answers waiting."""


def thread_connection() -> sqlite3.Connection | None:
    """The connection this thread owns, if it is the writer or a reader thread."""
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    return conn


@dataclass(frozen=True)
class AfterCommit(Generic[R]):
    """A job's result that is finished after its commit group is sealed and committed:
    ``finish`` receives the group's newest signed tree head (``None`` without a log)."""

    finish: Callable[[Any], R]


@dataclass
class _Job:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    value: Any = None
    error: BaseException | None = None


class Database:
    """Writer and reader threads over one SQLite file. Start with ``start``, stop with
    ``close``; ``write`` and ``read`` are awaited on the event loop."""

    def __init__(
        self,
        path: Path,
        prepare: Callable[[db.NodeConnection], None],
        readers: int = 2,
        busy_timeout: float = 30.0,
    ) -> None:
        """``prepare`` is called with the writer's connection on the writer thread (the
        node installs its log sealing there: node/flows/context.py)."""
        self.path = path
        self._prepare = prepare
        self._busy_timeout = busy_timeout
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(
            max_workers=readers, thread_name_prefix="vhnode-reader", initializer=self._open_reader
        )
        self._reader_conns: list[sqlite3.Connection] = []
        self._processes: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._started = threading.Event()
        self.write_failure: str | None = None
        """Why the newest commit group could not store its work (a full disk, a read-only
        file, a lock held too long), or None: /healthz reports it (docs/operations.md)."""

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._writer = threading.Thread(target=self._run, name="vhnode-writer", daemon=True)
        self._writer.start()
        self._started.wait()

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)
        if self._processes is not None:
            self._processes.shutdown(wait=True, cancel_futures=True)
            self._processes = None
        with self._lock:
            for conn in self._reader_conns:
                # Opened on another thread: closing needs no further use of it there.
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._reader_conns.clear()

    # --- the API ----------------------------------------------------------------------

    async def write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the writer thread in the next commit group; its result once the
        group is committed. An exception in ``fn`` rolls back ``fn``'s work only. Once
        queued, the job runs and commits even if the caller stops waiting (a round cut off
        by its deadline still records what it did)."""
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop, loop.create_future())
        self._queue.put(job)
        result: T = await job.future
        return result

    async def read(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a reader thread (its own connection; sees committed data)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, _call, fn)

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` in a worker process, on a read-only connection of its own:
        for reads that are long and all CPU (verifying the whole log, the privacy
        officer's report), which on a thread would hold the interpreter lock the event
        loop and the writer need. ``fn`` and ``args`` must pickle (module-level function,
        plain values). The pool is started on first use (``spawn``: never a fork of this
        threaded process) and kept."""
        if self._processes is None:
            self._processes = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn")
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._processes, _read_only, self.path, fn, args)

    # --- threads ----------------------------------------------------------------------

    def _open_reader(self) -> None:
        conn = db.connect(self.path, check_same_thread=True, migrate=False)
        conn.execute("PRAGMA query_only=ON")
        _local.conn = conn
        with self._lock:
            self._reader_conns.append(conn)

    def _run(self) -> None:
        conn = db.connect(
            self.path, check_same_thread=True, migrate=False, timeout=self._busy_timeout
        )
        self._prepare(conn)
        _local.conn = conn
        self._started.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)  # stop after this group
                        break
                    group.append(nxt)
                self._commit_group(conn, group)
        finally:
            conn.close()
            _local.conn = None

    def _commit_group(self, conn: db.NodeConnection, group: list[_Job]) -> None:
        try:
            # The outermost transaction seals the group's log entries under one signed
            # head before its COMMIT (db.tx, the connection's before_commit).
            with db.tx(conn):
                conn.in_group = True
                try:
                    for job in group:
                        if not conn.in_transaction:  # SQLite rolled the group back itself
                            job.error = db.lost_error(conn)
                            continue
                        try:
                            with db.tx(conn):  # a savepoint: a failing job rolls back alone
                                job.value = job.fn()
                        except BaseException as e:  # handed to the awaiting coroutine
                            job.error = e
                finally:
                    conn.in_group = False
        except BaseException as e:  # BEGIN, seal or COMMIT failed: nothing of the group holds
            logger.warning("commit_group_failed", error=type(e).__name__, jobs=len(group))
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                # Another process kept the write lock past busy_timeout (a CLI command
                # stuck mid-transaction): say so, and that nothing was written.
                e = DatabaseBusy("the database stayed locked by another process; try again")
            for job in group:
                if job.error is None:
                    job.error = e
        self.write_failure = next(
            (why for job in group if (why := storage_failure(job.error)) is not None), None
        )
        for job in group:
            if job.error is None and isinstance(job.value, AfterCommit):
                try:
                    job.value = job.value.finish(conn.sealed_head)
                except BaseException as e:
                    job.error = e
            job.loop.call_soon_threadsafe(_settle, job)


# SQLite's primary result codes that say the file cannot take writes, not that a job's
# own statement was wrong.
_STORAGE_CODES = {
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_READONLY: "read_only",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_CANTOPEN: "cannot_open",
    sqlite3.SQLITE_BUSY: "busy",
}


def storage_failure(e: BaseException | None) -> str | None:
    """The name of the storage fault ``e`` is (``disk_full``, ``read_only``, …), or None
    for a job's own error or none at all."""
    if isinstance(e, DiskFull):
        return "disk_full"
    if isinstance(e, DatabaseBusy):
        return "busy"
    code = getattr(e, "sqlite_errorcode", None) if isinstance(e, sqlite3.Error) else None
    return None if code is None else _STORAGE_CODES.get(int(code) & 0xFF)


def _read_only(path: Path, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return fn(conn, *args)
    finally:
        conn.close()


def _call(fn: Callable[[], T]) -> T:
    return fn()


def _settle(job: _Job) -> None:
    if job.future.cancelled():
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.value)
