"""Installed convenants: fully signed documents this node acts under (docs/protocol.md §5.3)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from node.errors import Conflict
from node.protocol import jws
from node.protocol.convenant import Convenant, parse_convenant
from node.protocol.models import rfc3339
from node.protocol.withdrawal import Withdrawal, parse_withdrawal
from node.store import db


@dataclass(frozen=True)
class Installed:
    convenant: Convenant
    document: jws.SignedDocument
    installed_at: str


def install(conn: sqlite3.Connection, doc: jws.SignedDocument, now: datetime) -> bool:
    """Store a verified, fully signed convenant; False if this exact text is installed."""
    conv, _ = parse_convenant(doc.to_json())
    row = conn.execute(
        "SELECT document FROM convenants WHERE id = ? AND version = ?", (conv.id, conv.version)
    ).fetchone()
    if row:
        held, _ = parse_convenant(json.loads(row[0]))
        if held.wire() != conv.wire():
            raise Conflict(f"another text of convenant {conv.id} v{conv.version} is installed")
        # More signatures than before are fine; the text is the same.
        conn.execute(
            "UPDATE convenants SET document = ? WHERE id = ? AND version = ?",
            (json.dumps(doc.to_json()), conv.id, conv.version),
        )
        db.bump_trust_generation(conn)
        return False
    conn.execute(
        "INSERT INTO convenants (id, version, document, installed_at) VALUES (?,?,?,?)",
        (conv.id, conv.version, json.dumps(doc.to_json()), rfc3339(now)),
    )
    db.bump_trust_generation(conn)
    return True


def _load(row: tuple[str, str]) -> Installed:
    conv, doc = parse_convenant(json.loads(row[0]))
    return Installed(convenant=conv, document=doc, installed_at=row[1])


def get(conn: sqlite3.Connection, convenant_id: str, version: int) -> Installed | None:
    row = conn.execute(
        "SELECT document, installed_at FROM convenants WHERE id = ? AND version = ?",
        (convenant_id, version),
    ).fetchone()
    return _load(row) if row else None


def latest(conn: sqlite3.Connection, convenant_id: str) -> Installed | None:
    row = conn.execute(
        "SELECT document, installed_at FROM convenants WHERE id = ? ORDER BY version DESC LIMIT 1",
        (convenant_id,),
    ).fetchone()
    return _load(row) if row else None


def all_versions(conn: sqlite3.Connection, convenant_id: str) -> list[Installed]:
    """Every installed version, newest first."""
    rows = conn.execute(
        "SELECT document, installed_at FROM convenants WHERE id = ? ORDER BY version DESC",
        (convenant_id,),
    ).fetchall()
    return [_load(r) for r in rows]


def every_version(conn: sqlite3.Connection) -> list[Installed]:
    """Every installed version of every convenant, each id's newest first."""
    rows = conn.execute(
        "SELECT document, installed_at FROM convenants ORDER BY id, version DESC"
    ).fetchall()
    return [_load(r) for r in rows]


def latest_versions(conn: sqlite3.Connection) -> list[Installed]:
    rows = conn.execute(
        "SELECT c.document, c.installed_at FROM convenants c "
        "WHERE c.version = (SELECT MAX(version) FROM convenants d WHERE d.id = c.id) ORDER BY c.id"
    ).fetchall()
    return [_load(r) for r in rows]


# --- withdrawals (§5.7) -------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledWithdrawal:
    withdrawal: Withdrawal
    document: jws.SignedDocument
    installed_at: str


def add_withdrawal(conn: sqlite3.Connection, doc: jws.SignedDocument, now: datetime) -> bool:
    """Store a verified withdrawal; False if this exact text is stored already.

    One withdrawal per (convenant, party, version): a second, different text for the same
    key is a conflict rather than a silent replacement, so what a party said stays fixed.
    """
    w, _ = parse_withdrawal(doc.to_json())
    row = conn.execute(
        "SELECT document FROM convenant_withdrawals "
        "WHERE convenant_id = ? AND party = ? AND convenant_version = ?",
        (w.convenant_id, w.party, w.convenant_version),
    ).fetchone()
    if row:
        held, _ = parse_withdrawal(json.loads(row[0]))
        if held.wire() != w.wire():
            raise Conflict(
                f"another withdrawal of {w.party} from {w.convenant_id} v{w.convenant_version} "
                "is installed"
            )
        return False
    conn.execute(
        "INSERT INTO convenant_withdrawals "
        "(convenant_id, party, convenant_version, document, installed_at) VALUES (?,?,?,?,?)",
        (w.convenant_id, w.party, w.convenant_version, json.dumps(doc.to_json()), rfc3339(now)),
    )
    db.bump_trust_generation(conn)
    return True


def withdrawals(
    conn: sqlite3.Connection, convenant_id: str | None = None
) -> list[InstalledWithdrawal]:
    """Installed withdrawals (of one convenant id if given), oldest withdrawn_at first."""
    sql = "SELECT document, installed_at FROM convenant_withdrawals"
    args: tuple[str, ...] = ()
    if convenant_id is not None:
        sql += " WHERE convenant_id = ?"
        args = (convenant_id,)
    out = []
    for doc_text, installed_at in conn.execute(sql, args).fetchall():
        w, doc = parse_withdrawal(json.loads(doc_text))
        out.append(InstalledWithdrawal(w, doc, installed_at))
    return sorted(out, key=lambda i: (i.withdrawal.withdrawn_at, i.withdrawal.party))
