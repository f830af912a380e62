"""What one running node is: its home, config, keys, database and clock."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from node.config import CONFIG_FILE, DB_FILE, KEYS_DIR, NodeConfig, load_config
from node.errors import ConfigError
from node.flows import trust
from node.flows.trust import Trust
from node.keys import NodeKeys
from node.policy.rate_limit import RateLimiter
from node.store import db, log

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class NodeContext:
    home: Path
    cfg: NodeConfig
    keys: NodeKeys
    conn: sqlite3.Connection
    clock: Clock = system_clock
    limiter: RateLimiter = field(init=False)
    detail_limiter: RateLimiter = field(init=False)
    _oprf_keys: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, init=False)
    # Requester side: one tag-set sync at a time per (partner, convenant).
    sync_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict, init=False)
    _trust: Trust | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(
            self.cfg.limits.evaluations_per_minute, self.cfg.limits.evaluation_burst
        )
        self.detail_limiter = RateLimiter(
            self.cfg.limits.detail_messages_per_minute, self.cfg.limits.detail_burst
        )

    @property
    def node_id(self) -> str:
        return self.cfg.node_id

    def oprf_key(self, convenant_id: str) -> tuple[bytes, bytes]:
        # Derivation is cheap but sits on the hot path of every evaluation.
        if convenant_id not in self._oprf_keys:
            self._oprf_keys[convenant_id] = self.keys.oprf_key(convenant_id)
        return self._oprf_keys[convenant_id]

    def record(self, entries: Sequence[log.LogEntry], now: datetime | None = None) -> None:
        """Append log entries inside the caller's open transaction (docs/protocol.md §9),
        so a state change and its record commit together."""
        log.append(self.conn, self.keys.signing, self.node_id, entries, now or self.clock())

    def trust(self) -> Trust:
        """Peers and convenants as of the last admin change (node/flows/trust.py)."""
        cached = self._trust
        if cached is None or cached.generation != db.trust_generation(self.conn):
            cached = self._trust = trust.load(
                self.conn, self.keys.signing_fingerprint, self.keys.signing_public
            )
        return cached

    def close(self) -> None:
        self.conn.close()


def open_node(home: Path, clock: Clock = system_clock) -> NodeContext:
    home = home.expanduser().resolve()
    if not (home / CONFIG_FILE).exists():
        raise ConfigError(f"{home} is not a node home (no {CONFIG_FILE}); run 'vhnode init'")
    cfg = load_config(home)
    keys = NodeKeys.load(home / KEYS_DIR)
    conn = db.connect(home / DB_FILE)
    return NodeContext(home=home, cfg=cfg, keys=keys, conn=conn, clock=clock)
