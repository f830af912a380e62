"""What one running node is: its home, config, keys, database and clock.

``ctx.conn`` is the SQLite connection of the thread that asks: the writer's on the
writer thread, a reader's on a reader thread (node/store/database.py), the node's own
direct connection elsewhere (the CLI, tests, the demo's set-up). Code that runs for a
request on the event loop never touches it: ``ctx.conn`` refuses there (``LoopBlocked``)
and the flows hand their SQLite work to ``ctx.write`` and ``ctx.read``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sqlite3
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from node.clock import SYSTEM_CLOCK, Clock
from node.config import (
    CARD_FILE,
    CONFIG_FILE,
    DB_FILE,
    KEYS_DIR,
    NodeConfig,
    check_home_private,
    load_config,
)
from node.errors import ConfigError, LogCorrupted
from node.flows import trust
from node.flows.metrics import NodeMetrics
from node.flows.trust import Trust
from node.keys import NodeKeys
from node.policy.rate_limit import RateLimiter
from node.policy.unauthenticated import UnauthenticatedTally
from node.protocol import jws
from node.protocol.peer_card import PeerCard, verify_card
from node.store import db, log, oprf_epochs
from node.store.database import AfterCommit, Database, thread_connection
from node.tls import TlsFiles, client_context, load_files, server_context, trust_certificate

T = TypeVar("T")
R = TypeVar("R")


# Set while the event loop serves a request or runs a background task of the node: SQLite
# must not be used in that context (the middleware and the tasks set it; node/http/app.py).
ON_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("vhnode_on_loop", default=False)


class LoopBlocked(RuntimeError):
    """SQLite was asked for on the event loop while it serves: a node bug, not bad input."""


@dataclass
class NodeContext:
    home: Path
    cfg: NodeConfig
    keys: NodeKeys
    direct_conn: db.NodeConnection
    clock: Clock = SYSTEM_CLOCK
    database: Database | None = field(default=None, init=False)
    limiter: RateLimiter = field(init=False)
    detail_limiter: RateLimiter = field(init=False)
    # Requests refused at §6.6 steps 3–6, counted until flow.unauthenticated.flush logs them.
    unauthenticated: UnauthenticatedTally = field(init=False)
    _oprf_keys: dict[tuple[str, int], tuple[bytes, bytes]] = field(default_factory=dict, init=False)
    # Requester side: one tag-set sync at a time per (partner, convenant).
    sync_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, init=False)
    # Work a request started that outlives it (a tag-set transfer, hit notices): held
    # here so it is not collected mid-way.
    background: set[asyncio.Future[Any]] = field(default_factory=set, init=False)
    # This node's Prometheus figures: a registry of its own (node/flows/metrics.py).
    metrics: NodeMetrics = field(default_factory=NodeMetrics, init=False)
    _trust: Trust | None = field(default=None, init=False)
    _own_card: tuple[PeerCard, jws.SignedDocument] | None = field(default=None, init=False)
    # [tls] (node/tls.py): the files, checked at open; the peer listener's context and
    # the certificates its trust store holds; one client context per partner certificate.
    tls_files: TlsFiles | None = None
    _tls_server: ssl.SSLContext | None = field(default=None, init=False)
    _tls_trusted: set[bytes] = field(default_factory=set, init=False)
    _tls_clients: dict[tuple[str, str], ssl.SSLContext] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(
            self.cfg.limits.evaluations_per_minute, self.cfg.limits.evaluation_burst
        )
        self.detail_limiter = RateLimiter(
            self.cfg.limits.detail_messages_per_minute, self.cfg.limits.detail_burst
        )
        self.unauthenticated = UnauthenticatedTally(self.cfg.limits.unauthenticated_window_seconds)

    @property
    def conn(self) -> sqlite3.Connection:
        own = thread_connection()
        if own is not None:
            return own
        if self.database is not None and ON_LOOP.get():
            raise LoopBlocked("SQLite on the event loop: run it through ctx.write or ctx.read")
        return self.direct_conn

    def spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` past the request that started it (a tag-set transfer, hit notices,
        a poll after a notice): held in ``background`` so it is not collected mid-way, and
        cancelled when the server stops. Its failure is the work's own to report."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        task.add_done_callback(_retrieve)
        return task

    async def write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` as one write job: on the writer thread when the node serves, here
        (in its own transaction) otherwise."""
        if self.database is not None:
            return await self.database.write(fn)
        conn = self.direct_conn
        with db.tx(conn):
            conn.in_group = True
            try:
                value = fn()
            finally:
                conn.in_group = False
        if isinstance(value, AfterCommit):
            finished: T = value.finish(getattr(self.direct_conn, "sealed_head", None))
            return finished
        return value

    async def read(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a reader thread when the node serves, here otherwise."""
        if self.database is not None:
            return await self.database.read(fn)
        return fn()

    async def verify_log(self) -> log.VerifyReport:
        """``log.verify`` of this node's log, the longest read there is."""
        return await self.long_read(log.verify, self.node_id, self.keys.signing_history)

    async def long_read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)``, a long read that is all CPU: in a worker process when the
        node serves (``Database.in_worker``: ``fn`` must be module-level, ``args``
        picklable), on this thread's connection otherwise."""
        if self.database is not None:
            return await self.database.in_worker(fn, *args)
        return fn(self.conn, *args)

    def start_database(self) -> None:
        """Start the writer and reader threads (the server does, before it listens)."""
        if self.database is None:
            self._trust = None
            self.trust()  # a snapshot the loop can read without SQLite
            self.own_card()  # and the card, read once here rather than on a request
            self.database = Database(self.home / DB_FILE, self._prepare)
            self.database.start()

    async def stop_database(self) -> None:
        if self.database is not None:
            database, self.database = self.database, None
            await database.close()

    def _prepare(self, conn: db.NodeConnection) -> None:
        conn.before_commit = lambda: self._seal(conn)
        if self.cfg.database.max_size_mib is not None:
            db.set_max_size(conn, self.cfg.database.max_size_mib * 1024 * 1024)

    def _seal(self, conn: db.NodeConnection) -> log.TreeHead | None:
        """Before the outermost COMMIT: one signed tree head over every entry the
        transaction (a commit group, on the writer) appended (docs/protocol.md §9.1)."""
        if not conn.log_dirty:
            return log.latest_head(conn)
        conn.log_dirty = False
        return log.seal(conn, self.keys.signing, self.node_id, self.clock.now())

    def after_commit(self, finish: Callable[[log.TreeHead], R]) -> R | AfterCommit[R]:
        """``finish(head)`` with the signed tree head that covers what this job logged.

        In a write job (``ctx.write``) the head is the one its commit group is sealed under,
        and ``finish`` runs once the group is committed: the answer that carries it leaves
        after its entries are durable. Called in a plain transaction, the head is signed
        now, inside it.
        """
        conn = self.conn
        if isinstance(conn, db.NodeConnection) and conn.in_group:
            return AfterCommit(lambda head: finish(_present(head)))
        return finish(_present(self._seal(conn) if isinstance(conn, db.NodeConnection) else None))

    @property
    def node_id(self) -> str:
        return self.cfg.node_id

    def oprf_key(self, convenant_id: str, epoch: int | None = None) -> tuple[bytes, bytes]:
        """This node's OPRF key for a convenant in one key epoch (§6.1.1); without one, the
        epoch it publishes and answers under now (a read of the database)."""
        if epoch is None:
            epoch = oprf_epochs.current(self.conn, convenant_id).epoch
        # Derivation is cheap but sits on the hot path of every evaluation.
        if (convenant_id, epoch) not in self._oprf_keys:
            self._oprf_keys[convenant_id, epoch] = self.keys.oprf_key(convenant_id, epoch)
        return self._oprf_keys[convenant_id, epoch]

    def record(self, entries: Sequence[log.LogEntry], now: datetime | None = None) -> None:
        """Append log entries inside the caller's open transaction (docs/protocol.md §9),
        so a state change and its record commit together."""
        conn = self.conn
        if isinstance(conn, db.NodeConnection):
            # Sealed under one head at the outermost COMMIT (``_seal``), with the rest of
            # the transaction's entries: one signature per commit group.
            log.append_entries(conn, self.node_id, entries, now or self.clock.now())
            conn.log_dirty = True
        else:
            log.append(conn, self.keys.signing, self.node_id, entries, now or self.clock.now())

    def forget_trust(self) -> None:
        """This node's own key changed (``admin.rotate_signing_key``): the trust snapshot
        names it, so build it again when next needed."""
        self._trust = None

    def forget_own_card(self) -> None:
        """The card file was replaced (``admin.renew_card``): read it again when needed."""
        self._own_card = None

    def use_own_card(self, card: tuple[PeerCard, jws.SignedDocument]) -> None:
        """Serve ``card`` from now on (a reload read and verified it: ``admin.reload``)."""
        self._own_card = card

    def own_card(self) -> tuple[PeerCard, jws.SignedDocument]:
        """This node's peer card, read and verified once (it changes only with init and
        ``admin.renew_card``, which drops the copy read)."""
        if self._own_card is None:
            self._own_card = verify_card(json.loads((self.home / CARD_FILE).read_text()))
        return self._own_card

    def trust(self) -> Trust:
        """Peers and convenants as of the last admin change (node/flows/trust.py).

        On the event loop while serving, the snapshot as of the last database job (every
        request runs one); elsewhere checked against the database first."""
        cached = self._trust
        if cached is not None and thread_connection() is None and ON_LOOP.get():
            return cached
        if cached is None or cached.generation != db.trust_generation(self.conn):
            cached = self._trust = trust.load(
                self.conn, self.keys.signing_fingerprint, self.keys.signing_public
            )
        return cached

    def tls_server_context(self) -> ssl.SSLContext | None:
        """The peer listener's context (None without [tls]), its trust store the held
        cards' certificates as of now; built when the server starts (reads the files)."""
        if self.tls_files is None:
            return None
        if self._tls_server is None:
            self._tls_server = server_context(self.tls_files, [])
            self.trust_peer_certificates(self.trust())
        return self._tls_server

    def trust_peer_certificates(self, trusted: Trust) -> int:
        """Add the certificates of cards held since the last call to the peer listener's
        trust store, so that those peers' handshakes complete without a restart (§12.3).
        Only adds: a certificate that stays trusted lets a handshake through, nothing
        more — the request is refused unless its signer's card names that key (§6.6 step
        3a). Returns how many were added."""
        if self._tls_server is None or self.tls_files is None or self.tls_files.ca_file:
            return 0
        wanted = [self.tls_files.certificate_der]
        wanted += [der for p in trusted.peers_by_id.values() if (der := p.card.tls_certificate_der)]
        added = 0
        for der in wanted:
            if der not in self._tls_trusted:
                trust_certificate(self._tls_server, der)
                self._tls_trusted.add(der)
                added += 1
        return added

    async def peer_ssl(self, card: PeerCard) -> ssl.SSLContext | None:
        """The TLS context to ask the node of ``card`` with: pinned to the key on its card
        (node/tls.py), built off the event loop the first time (it reads our key file).
        None when the card names no TLS key: the caller decides whether plain HTTP is
        allowed (``[tls] allow_plain_http``)."""
        if card.tls_certificate is None:
            return None
        key = (card.node_id, card.tls_certificate)
        context = self._tls_clients.get(key)
        if context is None:
            context = await asyncio.to_thread(client_context, self.tls_files, card)
            self._tls_clients[key] = context
        return context

    @property
    def allow_plain_http(self) -> bool:
        """A node without [tls] speaks plain HTTP; with it, only where the admin allows."""
        return self.cfg.tls is None or self.cfg.tls.allow_plain_http

    def close(self) -> None:
        self.direct_conn.close()


def open_node(home: Path, clock: Clock = SYSTEM_CLOCK) -> NodeContext:
    home = home.expanduser().resolve()
    if not (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} is not a node home (no {CONFIG_FILE}); run 'vhnode init'")
    cfg = load_config(home)
    check_home_private(home, cfg)
    keys = NodeKeys.load(home / KEYS_DIR)
    tls_files = None if cfg.tls is None else load_files(home, cfg.tls)
    conn = db.connect(home / DB_FILE, keys)
    ctx = NodeContext(
        home=home, cfg=cfg, keys=keys, direct_conn=conn, clock=clock, tls_files=tls_files
    )
    ctx._prepare(conn)
    return ctx


def _retrieve(task: asyncio.Future[Any]) -> None:
    # Whoever waited may be gone; the work reported its outcome itself or not at all.
    if not task.cancelled():
        task.exception()


def _present(head: log.TreeHead | None) -> log.TreeHead:
    if head is None:  # every node's log has a head from init on; only a corrupt store lacks one
        raise LogCorrupted("no signed tree head")
    return head
