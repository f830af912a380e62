"""What this node trusts right now: its peers' cards and its installed convenants.

Parsing and verifying every peer card and convenant on each request cost more than the
cryptography of the request itself (bench/README.md). They change only through admin
operations, which bump a generation counter in the same transaction
(``db.bump_trust_generation``), so a snapshot is kept per node and reloaded when the
counter moves — also when another process (the CLI) made the change. Time windows and
revocation are still checked per request by the callers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from node.protocol.withdrawal import Withdrawal
from node.store import convenants, db, peers
from node.store.convenants import Installed
from node.store.peers import Peer


@dataclass(frozen=True)
class Trust:
    generation: int
    peers_by_fingerprint: dict[str, Peer]
    peers_by_id: dict[str, Peer]
    # Signing-key fingerprint → public key of every known peer and of this node itself.
    party_keys: dict[str, bytes]
    # Convenant id → every installed version, newest first.
    convenants: dict[str, list[Installed]]
    # Convenant id → the installed withdrawals of parties from it (§5.7), verified when
    # installed. Whether one is in effect depends on ``now``: callers decide per request.
    withdrawals: dict[str, tuple[Withdrawal, ...]]

    def withdrawals_of(self, convenant_id: str) -> tuple[Withdrawal, ...]:
        return self.withdrawals.get(convenant_id, ())

    def versions(self, convenant_id: str) -> list[Installed]:
        return self.convenants.get(convenant_id, [])

    def version(self, convenant_id: str, version: int) -> Installed | None:
        for inst in self.versions(convenant_id):
            if inst.convenant.version == version:
                return inst
        return None


def load(conn: sqlite3.Connection, own_fingerprint: str, own_public_key: bytes) -> Trust:
    generation = db.trust_generation(conn)
    known = peers.all_peers(conn)
    keys = {p.card.signing_fingerprint: p.card.signing_key_bytes for p in known}
    keys[own_fingerprint] = own_public_key
    by_id: dict[str, list[Installed]] = {}
    for inst in convenants.every_version(conn):
        by_id.setdefault(inst.convenant.id, []).append(inst)
    gone: dict[str, list[Withdrawal]] = {}
    for wd in convenants.withdrawals(conn):
        gone.setdefault(wd.withdrawal.convenant_id, []).append(wd.withdrawal)
    return Trust(
        generation=generation,
        peers_by_fingerprint={p.card.signing_fingerprint: p for p in known},
        peers_by_id={p.node_id: p for p in known},
        party_keys=keys,
        convenants=by_id,
        withdrawals={k: tuple(v) for k, v in gone.items()},
    )
