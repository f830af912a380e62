"""The node's transparency log: append-only, hash-linked entries under signed Merkle heads.

docs/protocol.md §9. Every decision the node takes is appended here in the same SQLite
transaction as the state change it records, so the two commit together or not at all.
The log holds pseudonyms (``pseudonym``), never identifiers, so it can outlive the
personal data it describes and still answer an access request for a known identifier.

Shape (RFC 9162, the tree math in ``node.protocol.merkle``):

- entry ``seq`` (0-based) is stored as the RFC 8785 canonical JSON ``body``; the body
  carries ``prev``, the previous entry's leaf hash, so order and deletions also show
  without any tree head;
- leaf hash = SHA-256(0x00 || body bytes); interior node = SHA-256(0x01 || left || right);
  the root of a tree of n entries is the RFC 9162 Merkle Tree Hash of the n leaf hashes;
- entries are written in commit groups: ``append_entries`` any number of times in one
  transaction, then one ``seal``, which signs one tree head (JWS, typ
  ``vhnode-tree-head/v1``) for the new size before the group commits; ``append`` is a
  group of one call. Peers keep the heads they receive, which is what stops this node from
  quietly rebuilding its history: a local attacker who cuts the tail, deletes its heads
  and rebuilds the derived tables leaves a log ``verify`` cannot fault on its own, but
  no peer's copy of a later head will then match.

Derived tables, written by ``append_entries`` and ``seal`` in O(entries + log n) without
reading old entries: ``log_frontier`` (the compact-range right frontier: one subtree root
per set bit of the size, enough to append and to compute the root; written once per
group, by ``seal``) and ``log_nodes`` (every complete
subtree above the leaves, so the hash of any subtree a proof needs is a few primary-key
lookups). ``inclusion_proof``, ``consistency_proof`` and ``subtree_hash`` answer from
them in O(log n). ``verify`` (``node.store.log_verify``, re-exported here) streams the
whole log once and recomputes everything from the stored bodies; nothing it trusts comes
from the derived tables, and it checks them too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nacl.signing

from node.errors import InputError, LogCorrupted, NotFound, RestorePending, VhnodeError
from node.protocol import jcs, jws, merkle
from node.protocol.models import rfc3339
from node.protocol.restore import RESTORE_STATEMENT_TYP
from node.protocol.tree_head import (
    TREE_HEAD_TYP,
    TreeHead,
    check_head,
    head_payload,
    parse_time,
)

# The verifier lives in its own module; re-exported (``__all__``) so ``log.verify`` and
# friends keep working. log_verify imports this module only inside its functions.
from node.store.log_verify import MAX_PROBLEMS, LogProblem, ProblemKind, VerifyReport, verify

__all__ = [
    "EMPTY_ROOT",
    "GENESIS_PREV",
    "LEAF_PREFIX",
    "MAX_PROBLEMS",
    "NODE_PREFIX",
    "TREE_HEAD_TYP",
    "LogEntry",
    "LogProblem",
    "ProblemKind",
    "TreeHead",
    "VerifyReport",
    "append",
    "append_entries",
    "backfill_nodes",
    "check_head",
    "check_tip",
    "consistency_proof",
    "head_at",
    "inclusion_proof",
    "latest_head",
    "leaf_hash",
    "merkle_root",
    "pseudonym",
    "seal",
    "subtree_hash",
    "verify",
]


LEAF_PREFIX = merkle.LEAF_PREFIX
NODE_PREFIX = merkle.NODE_PREFIX
EMPTY_ROOT = merkle.EMPTY_ROOT
"""RFC 9162 MTH of the empty tree."""
GENESIS_PREV = "0" * 64
"""``prev`` of entry 0: there is no previous leaf."""

_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
_encode_text: Callable[[str], str] = json.encoder.encode_basestring
"""The C escaper behind json.dumps(ensure_ascii=False): a JSON string literal."""
_BACKFILL_BATCH = 10_000


# --- entries ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LogEntry:
    """One decision to log. Identifies people only by ``pseudonym``s."""

    kind: str
    trace_id: str | None = None
    convenant_id: str | None = None
    convenant_version: int | None = None
    purpose: str | None = None
    actor: str | None = None
    counterparty: str | None = None
    subjects: tuple[str, ...] = ()
    outcome: str | None = None
    reason: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A LogKind member is a str subclass; the body carries the plain string it stands
        # for, so an entry is byte-identical whichever way its kind was written.
        if type(self.kind) is not str:
            object.__setattr__(self, "kind", str(self.kind))


def pseudonym(pseudonym_key: bytes, subject_key: str) -> str:
    """Hex HMAC-SHA256 of a subject key under the node's secret pseudonym key.

    Keyed, so the node can recompute it for an identifier it is asked about (access
    requests) while whoever reads the log without the key cannot test guesses against
    the small BSN space.
    """
    if len(pseudonym_key) < 16:
        raise ValueError("pseudonym key must be at least 16 bytes")
    return hmac.new(pseudonym_key, subject_key.encode("utf-8"), hashlib.sha256).hexdigest()


def leaf_hash(body: bytes) -> bytes:
    """RFC 9162 leaf hash of one entry body."""
    return merkle.leaf_hash(body)


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash over leaf hashes, written as the RFC defines it.

    The reference the incremental frontier and the stored nodes are checked against;
    O(n log n), for tests and small trees, not for the live log (``merkle.root`` is the
    O(n) streaming equivalent).
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = merkle.split(n)
    return merkle.node_hash(merkle_root(leaf_hashes[:k]), merkle_root(leaf_hashes[k:]))


def _check_entry(entry: LogEntry) -> None:
    """Refuse entries that would put something other than a pseudonym in the log.

    These are node bugs, not bad requests, hence ValueError.
    """
    if not isinstance(entry.kind, str) or not entry.kind:
        raise ValueError("log entry needs a kind")
    for s in entry.subjects:
        if not isinstance(s, str) or not _PSEUDONYM.fullmatch(s):
            raise ValueError(f"{entry.kind}: log subjects must be pseudonyms (64 hex digits)")
    if entry.convenant_version is not None and entry.convenant_id is None:
        raise ValueError(f"{entry.kind}: convenant_version without convenant_id")


def _body(entry: LogEntry, seq: int, prev: bytes, time: str, node_id: str) -> dict[str, Any]:
    # Every key is always present (null when unset): one fixed shape for auditors' tools.
    return {
        "seq": seq,
        "prev": prev.hex(),
        "time": time,
        "node": node_id,
        "kind": entry.kind,
        "trace_id": entry.trace_id,
        "convenant": (
            None
            if entry.convenant_id is None
            else {"id": entry.convenant_id, "version": entry.convenant_version}
        ),
        "purpose": entry.purpose,
        "actor": entry.actor,
        "counterparty": entry.counterparty,
        "subjects": list(entry.subjects),
        "outcome": entry.outcome,
        "reason": entry.reason,
        "data": dict(entry.data),
    }


class _NotPlain(Exception):
    """A field outside the fast encoder's subset: encode the body the general way."""


def _text(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is str:
        return _encode_text(value)
    raise _NotPlain


def _canonical_body(entry: LogEntry, seq: int, prev: bytes, time: str, node_id: str) -> bytes:
    """``jcs.canonical(_body(…))``, written field by field in the body's fixed key order.

    Per entry this is the largest cost of an append. Every field of the fixed shape is
    text or null (``_text``: the stdlib's C string escaper, which escapes exactly what
    RFC 8785 §3.2.2.2 does), a small integer, or the pseudonyms ``_check_entry`` allowed
    (hex digits: nothing to escape); ``data`` goes through ``jcs.canonical``. Any other
    value (a text subclass such as an enum, a huge version) takes the general path, and
    so does a lone surrogate (it fails the UTF-8 encoding), so the bytes are always the
    RFC 8785 form of ``_body``. tests/test_jcs.py compares the two on generated entries.
    """
    try:
        version = entry.convenant_version
        if entry.convenant_id is None:
            convenant = "null"
        elif version is None or (type(version) is int and 0 <= version < 2**53):
            convenant = (
                f'{{"id":{_text(entry.convenant_id)},'
                f'"version":{"null" if version is None else version}}}'
            )
        else:
            raise _NotPlain
        if type(seq) is not int:
            raise _NotPlain
        data = entry.data
        subjects = ",".join(f'"{s}"' for s in entry.subjects)
        text = (
            f'{{"actor":{_text(entry.actor)},"convenant":{convenant},'
            f'"counterparty":{_text(entry.counterparty)},'
            f'"data":{jcs.canonical(data if type(data) is dict else dict(data)).decode()},'
            f'"kind":{_text(entry.kind)},"node":{_text(node_id)},'
            f'"outcome":{_text(entry.outcome)},"prev":"{prev.hex()}",'
            f'"purpose":{_text(entry.purpose)},"reason":{_text(entry.reason)},'
            f'"seq":{seq},"subjects":[{subjects}],"time":{_text(time)},'
            f'"trace_id":{_text(entry.trace_id)}}}'
        )
        return text.encode("utf-8")
    except (_NotPlain, ValueError, TypeError):
        # Includes data that cannot be encoded (and a lone surrogate's UnicodeEncodeError):
        # the general path then refuses the whole body, with the error it finds first.
        return jcs.canonical(_body(entry, seq, prev, time, node_id))


# --- tree heads ------------------------------------------------------------------------


def _sign_head(
    conn: sqlite3.Connection,
    signing_key: nacl.signing.SigningKey,
    *,
    node_id: str,
    tree_size: int,
    root: bytes,
    now: datetime,
    epoch: int = 0,
    statement: Any | None = None,
) -> TreeHead:
    signed_at = rfc3339(now)
    if statement is not None:
        # After a key rotation (§4.1.1) peers know only the new key: the epoch's statement
        # travels signed by the key that signs the head (same payload, same terms).
        doc = jws.parse(statement, RESTORE_STATEMENT_TYP)
        if doc.kids() != (jws.fingerprint(bytes(signing_key.verify_key)),):
            statement = jws.sign(RESTORE_STATEMENT_TYP, doc.payload, signing_key).to_json()
    payload = head_payload(node_id, tree_size, root, signed_at, epoch, statement)
    text = jws.canonical(jws.sign(TREE_HEAD_TYP, payload, signing_key).to_json()).decode("ascii")
    conn.execute(
        "INSERT INTO tree_heads (tree_size, root_hash, signed_at, jws) VALUES (?, ?, ?, ?)",
        (tree_size, root, signed_at, text),
    )
    # rfc3339's own value as a datetime (whole seconds, UTC), without parsing it back
    return TreeHead(tree_size, root, now.astimezone(UTC).replace(microsecond=0), text)


def _head_from_row(row: tuple[Any, ...]) -> TreeHead:
    # ``epoch`` stays 0 here: our own epoch is ``current_epoch`` (the newest head is always
    # of it), and the signed text carries it for whoever receives the head.
    tree_size, root, signed_at, text = row
    return TreeHead(int(tree_size), bytes(root), parse_time(signed_at), str(text))


def latest_head(conn: sqlite3.Connection) -> TreeHead | None:
    # Sizes grow across epochs too: a new epoch's first head covers its own log.restored
    # entry, one past the state restored.
    row = conn.execute(
        "SELECT tree_size, root_hash, signed_at, jws FROM tree_heads"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _head_from_row(row)


def head_at(conn: sqlite3.Connection, tree_size: int) -> TreeHead | None:
    """Our signed head for exactly ``tree_size`` entries, if one was signed."""
    row = conn.execute(
        "SELECT tree_size, root_hash, signed_at, jws FROM tree_heads WHERE tree_size = ?",
        (tree_size,),
    ).fetchone()
    return None if row is None else _head_from_row(row)


# --- epochs (§9.7) --------------------------------------------------------------------

RESTORE_CHECK_META = "restore_check"
"""Set in a backup copy (``node.store.backup``): whoever starts a node on it must first
learn the heads its peers hold (``node.flows.restore_check``); until then no head is
signed (``RestorePending``)."""


def current_epoch(conn: sqlite3.Connection) -> tuple[int, Any | None]:
    """Our log's epoch and the restore statement (parsed JWS object) that opened it;
    (0, None) before any restore."""
    try:
        row = conn.execute("SELECT epoch, statement FROM log_epochs ORDER BY epoch DESC LIMIT 1")
    except sqlite3.OperationalError:
        return 0, None  # a database before schema step 5 (migrations, their tests): epoch 0
    found = row.fetchone()
    return (0, None) if found is None else (int(found[0]), json.loads(found[1]))


def restore_pending(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM meta WHERE key = ?", (RESTORE_CHECK_META,)).fetchone()
    return row is not None


def mark_restore_pending(conn: sqlite3.Connection) -> None:
    """Flag this database as a restored copy (called on the backup copy)."""
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, 'pending')", (RESTORE_CHECK_META,)
    )


def end_restore_check(
    conn: sqlite3.Connection, statement: Any | None, restored_size: int, now: datetime
) -> None:
    """The restore check is done: with a statement, open its epoch (every head signed
    from here on carries it). Inside the caller's transaction, before the entry that
    records it is appended."""
    _in_transaction(conn, "end_restore_check", now)
    if statement is not None:
        epoch = jws.parse(statement, RESTORE_STATEMENT_TYP).payload["epoch"]
        conn.execute(
            "INSERT INTO log_epochs (epoch, statement, restored_size, started_at)"
            " VALUES (?, ?, ?, ?)",
            (epoch, jws.canonical(statement).decode("ascii"), restored_size, rfc3339(now)),
        )
    conn.execute("DELETE FROM meta WHERE key = ?", (RESTORE_CHECK_META,))
    _WRITERS.pop(id(conn), None)  # the epoch is read afresh by the next append


# --- append ----------------------------------------------------------------------------


def newest_of_kind(conn: sqlite3.Connection, kind: str, limit: int) -> Iterator[dict[str, Any]]:
    """The bodies of the newest ``limit`` entries of ``kind``, newest first (by the kind
    index, so without reading the rest of the log)."""
    rows = conn.execute(
        "SELECT body FROM log_entries WHERE kind = ? ORDER BY seq DESC LIMIT ?",
        (str(kind), limit),
    )
    for (body,) in rows:
        yield json.loads(body)


def size(conn: sqlite3.Connection) -> int:
    """Entries in the log, sealed or not (the next entry's ``seq``)."""
    return _log_size(conn)


def _log_size(conn: sqlite3.Connection) -> int:
    """Number of entries: one past the highest seq (contiguous in an intact log)."""
    row = conn.execute("SELECT seq FROM log_entries ORDER BY seq DESC LIMIT 1").fetchone()
    return 0 if row is None else int(row[0]) + 1


def check_tip(
    conn: sqlite3.Connection, node_id: str, verify_key: bytes | Mapping[str, bytes]
) -> str | None:
    """Readiness's look at the log (node/flows/readiness.py): None if the newest entry,
    the newest signed head and the stored frontier agree, else what is wrong. O(log n):
    a cheap stand-in for ``verify``, which reads the whole log — it catches a deleted
    tail, an unsigned tail, an edited newest entry or a lost frontier, not an edit deep
    inside (the privacy officer's verify and the peers' cross-checks do)."""
    last = conn.execute(
        "SELECT seq, leaf_hash, body FROM log_entries ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    head = latest_head(conn)
    if head is None:
        return "the log has no signed tree head"
    size = 0 if last is None else int(last[0]) + 1
    if head.tree_size != size:
        return f"the newest signed tree head covers {head.tree_size} entries, the log has {size}"
    if last is not None:
        body = last[2] if isinstance(last[2], bytes) else str(last[2]).encode("utf-8")
        if merkle.leaf_hash(body) != bytes(last[1]):
            return f"entry {size - 1} does not hash to its stored leaf hash"
    frontier = merkle.Frontier(
        {int(level): bytes(h) for level, h in conn.execute("SELECT level, hash FROM log_frontier")}
    )
    if frontier.size != size or frontier.root() != head.root_hash:
        return "the stored frontier does not give the newest head's root"
    try:
        signed = check_head(json.loads(head.jws), node_id, verify_key)
    except (ValueError, VhnodeError):
        return "the newest tree head's signature does not verify under this node's key"
    if signed.tree_size != head.tree_size or signed.root_hash != head.root_hash:
        return "the newest tree head's signed payload differs from its stored copy"
    return None


@dataclass(eq=False)
class _Writer:
    """What a connection that appends knows about the log's tip, so the appends of one
    commit group cost O(entries) without re-reading the frontier each time.

    Trusted only while the stored tip (size and last leaf hash, one primary-key lookup at
    every call) is the one this state wrote: the last leaf hash chains every entry before
    it, so an equal tip means an equal log and an equal frontier. Anything else (another
    connection appended, a SAVEPOINT was rolled back, the first append of a connection)
    reloads and re-checks everything from the tables (``_load``); so does the first
    append after every ``seal``, so each commit group starts from a checked tip.
    """

    conn: sqlite3.Connection
    size: int
    prev: bytes
    frontier: merkle.Frontier
    stored: dict[int, bytes]
    """The levels ``log_frontier`` holds: written by ``seal`` only, one diff per group."""
    head_size: int | None
    """Size of the newest stored head when last read or signed (None: none yet)."""
    checked: bool
    """False after ``seal``: the next append re-checks the tip against the tables."""
    unsigned: dict[tuple[int, bytes], int | None] = field(default_factory=dict)
    """Tips this connection wrote since a group last started from a fully signed log,
    each with the newest head size when it was written: after a SAVEPOINT rollback the
    stored tip may be one of them, ahead of the newest head and of ``log_frontier``, and
    that is this group's own work, not an unsigned tail."""
    epoch: int = 0
    statement: Any | None = None
    """The log's epoch and the statement that opened it: every head signed carries them."""
    pending: bool = False
    """A restored copy before its restore check: sign nothing (§9.7)."""


_WRITERS: OrderedDict[int, _Writer] = OrderedDict()
"""By ``id(conn)``, holding the connection so its id cannot be reused while listed.
Bounded: a node has one writer connection; tests and CLI commands open many."""
_MAX_WRITERS = 16


def _load(conn: sqlite3.Connection) -> _Writer:
    """The writer state of ``conn`` for the stored tip, refusing to build on a log whose
    tip does not agree with itself (a deleted tail, a lost frontier, an unsigned tail,
    missing or surplus stored subtrees): appending on top would bury the damage under
    fresh valid signatures. O(log n), plus the entries of this group's own unsealed tail
    when a SAVEPOINT rollback sent us here."""
    last = conn.execute(
        "SELECT seq, leaf_hash FROM log_entries ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    size, prev = (0, bytes(32)) if last is None else (int(last[0]) + 1, bytes(last[1]))
    known = _WRITERS.get(id(conn))
    if known is not None and known.conn is not conn:
        known = None
    if known is not None and known.checked and known.size == size and known.prev == prev:
        return known
    stored = {
        int(level): bytes(h) for level, h in conn.execute("SELECT level, hash FROM log_frontier")
    }
    frontier = merkle.Frontier(stored)
    row = conn.execute("SELECT max(tree_size) FROM tree_heads").fetchone()
    head_size: int | None = None if row[0] is None else int(row[0])
    unsigned: dict[tuple[int, bytes], int | None] = {}
    if (head_size or 0) != size:
        if known is None or known.unsigned.get((size, prev), -1) != head_size:
            raise LogCorrupted(
                f"latest signed tree head covers {head_size or 0} entries but the log has"
                f" {size}; run verify"
            )
        # Rolled back to a tip this group wrote and has not sealed: log_frontier is
        # still the sealed one, so bring it up to the tip from the group's leaf hashes.
        unsigned = known.unsigned
        if frontier.size == (head_size or 0):
            for seq, h in conn.execute(
                "SELECT seq, leaf_hash FROM log_entries WHERE seq >= ? ORDER BY seq",
                (frontier.size,),
            ):
                if seq != frontier.size or not isinstance(h, bytes) or len(h) != 32:
                    break
                frontier.push(h)
    if frontier.size != size:
        raise LogCorrupted(
            f"log frontier covers {frontier.size} entries but the log has {size}; run verify"
        )
    _ensure_nodes(conn, size, exact=True)
    epoch, statement = current_epoch(conn)
    state = _Writer(
        conn,
        size,
        prev,
        frontier,
        stored,
        head_size,
        True,
        unsigned,
        epoch,
        statement,
        restore_pending(conn),
    )
    _WRITERS[id(conn)] = state
    _WRITERS.move_to_end(id(conn))
    while len(_WRITERS) > _MAX_WRITERS:
        _WRITERS.popitem(last=False)
    return state


_last_time: tuple[datetime, str] | None = None


def _entry_time(now: datetime) -> str:
    """``rfc3339(now)``, remembered for the last instant: the jobs of a commit group
    mostly share one clock reading, and formatting costs as much as a row insert."""
    global _last_time  # noqa: PLW0603 - a one-slot cache of a pure function
    last = _last_time
    if last is not None and last[0] == now:
        return last[1]
    text = rfc3339(now)
    _last_time = (now, text)
    return text


def _in_transaction(conn: sqlite3.Connection, what: str, now: datetime) -> None:
    if not conn.in_transaction:
        # In autocommit every INSERT would commit alone: a crash could leave entries
        # without their head, or a decision without its entry.
        raise RuntimeError(f"log.{what} must run inside the caller's transaction")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{what} needs a timezone-aware time")


def append_entries(
    conn: sqlite3.Connection, node_id: str, entries: Sequence[LogEntry], now: datetime
) -> int:
    """Append ``entries`` (in order) without signing a tree head; returns the new size.

    One job's entries in a commit group: call it any number of times inside one
    transaction, then ``seal`` once before COMMIT (an unsealed tail is refused by the
    next append and reported by ``verify``). Runs inside the caller's open transaction and
    never commits, so a decision and its entries commit together; a SAVEPOINT rolled back
    after it is noticed by the next call (the stored tip is checked every time). Costs
    O(entries + log n): the entries, their subjects, the subtrees they complete and the
    frontier levels that changed. Raises ValueError before writing anything if an entry
    is refused (not a pseudonym, not JSON-serialisable).
    """
    _in_transaction(conn, "append_entries", now)
    for entry in entries:
        _check_entry(entry)
    state = _load(conn)
    if not entries:
        return state.size

    time = _entry_time(now)
    size, prev = state.size, state.prev
    # Work on a copy: if anything below raises, the cached frontier is still this tip's.
    frontier = merkle.Frontier(state.frontier.levels)
    rows: list[tuple[Any, ...]] = []
    subject_rows: list[tuple[int, str]] = []
    node_rows: list[tuple[int, int, bytes]] = []
    for seq, entry in enumerate(entries, start=size):
        try:
            body = _canonical_body(entry, seq, prev, time, node_id)
        except (ValueError, TypeError) as e:
            # Raised before any INSERT: nothing half-written even if the caller commits.
            raise ValueError(f"{entry.kind}: entry is not JSON-serialisable: {e}") from e
        prev = merkle.leaf_hash(body)
        node_rows.extend(frontier.push(prev))
        rows.append(
            (
                seq,
                body.decode("utf-8"),
                prev,
                entry.kind,
                time,
                entry.trace_id,
                entry.convenant_id,
                entry.counterparty,
            )
        )
        if entry.subjects:
            subject_rows.extend((seq, s) for s in dict.fromkeys(entry.subjects))

    conn.executemany(
        "INSERT INTO log_entries"
        " (seq, body, leaf_hash, kind, time, trace_id, convenant_id, counterparty)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    if subject_rows:
        conn.executemany("INSERT INTO log_subjects (seq, pseudonym) VALUES (?, ?)", subject_rows)
    if node_rows:
        conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", node_rows)
    # log_frontier is written by seal. If an INSERT above failed, the caller rolls back
    # (or back to a savepoint): the tip stays the one this state holds, or is one of
    # the earlier tips of the group, which _load recognises.
    state.size, state.prev, state.frontier = frontier.size, prev, frontier
    state.unsigned[(frontier.size, prev)] = state.head_size
    return frontier.size


def seal(
    conn: sqlite3.Connection, signing_key: nacl.signing.SigningKey, node_id: str, now: datetime
) -> TreeHead:
    """Sign and store one tree head for the log's current size, unless the newest stored
    head already covers it (then return that one): one signature per commit group.

    Call it last in the transaction, after every ``append_entries`` of the group, and
    before COMMIT, so that no entry commits without a head that covers it. On an empty
    log it signs the empty tree's head once.
    """
    _in_transaction(conn, "seal", now)
    try:
        head = _seal(conn, signing_key, node_id, now)
    except BaseException:
        # Some rows may be written and the caller rolls back: forget what we believed
        # about log_frontier, the next call reloads it.
        _WRITERS.pop(id(conn), None)
        raise
    return head


def _seal(
    conn: sqlite3.Connection, signing_key: nacl.signing.SigningKey, node_id: str, now: datetime
) -> TreeHead:
    state = _load(conn)
    newest = latest_head(conn)
    newest_size = None if newest is None else newest.tree_size
    if newest_size is not None and (
        newest_size > state.size or (state.head_size is not None and newest_size < state.head_size)
    ):
        raise LogCorrupted(
            f"latest signed tree head covers {newest_size} entries but the log has"
            f" {state.size}; run verify"
        )
    levels = state.frontier.levels
    gone = [(level,) for level in state.stored if level not in levels]
    if gone:
        conn.executemany("DELETE FROM log_frontier WHERE level = ?", gone)
    changed = [(level, h) for level, h in levels.items() if state.stored.get(level) != h]
    if changed:
        conn.executemany("INSERT OR REPLACE INTO log_frontier (level, hash) VALUES (?, ?)", changed)
    state.stored = dict(levels)
    if newest is not None and newest.tree_size == state.size:
        head = newest
    else:
        if state.pending:
            raise RestorePending(
                "this database is a restored copy: the node must first learn which of its"
                " heads the peers hold (vhnode serve asks them) before it signs a new one"
            )
        head = _sign_head(
            conn,
            signing_key,
            node_id=node_id,
            tree_size=state.size,
            root=state.frontier.root(),
            now=now,
            epoch=state.epoch,
            statement=state.statement,
        )
    state.head_size = state.size
    state.checked = False  # the next commit group starts from a re-checked tip
    return head


def append(
    conn: sqlite3.Connection,
    signing_key: nacl.signing.SigningKey,
    node_id: str,
    entries: Sequence[LogEntry],
    now: datetime,
) -> TreeHead:
    """Append ``entries`` (in order) and sign one tree head for the new size:
    ``append_entries`` then ``seal``, a commit group of one.

    Runs inside the caller's open transaction and never commits: the decision and its
    log entries commit together. Prefer ``BEGIN IMMEDIATE`` so two writers serialise on
    the lock instead of one failing on a stale snapshot. With no entries, returns the
    current head (signing the empty tree's head on first use).
    """
    append_entries(conn, node_id, entries, now)
    return seal(conn, signing_key, node_id, now)


# --- stored subtrees -------------------------------------------------------------------


def _ensure_nodes(conn: sqlite3.Connection, size: int, *, exact: bool) -> None:
    """Check that ``log_nodes`` covers a log of ``size`` entries, backfilling a log written
    before the table existed.

    The cheap check is the number of level-1 nodes (one per two entries, found through
    the primary key); ``verify`` checks every row. With ``exact`` (append, under the write
    lock) surplus rows are damage too: new nodes would collide with them. Without it
    (readers) more level-1 nodes than expected are a concurrent append and fine.
    """
    want = size // 2
    row = conn.execute("SELECT max(idx) FROM log_nodes WHERE level = 1").fetchone()
    have = 0 if row[0] is None else int(row[0]) + 1
    if have == want or (have > want and not exact):
        return
    if have == 0 and backfill_nodes(conn):
        return
    raise LogCorrupted(
        f"log_nodes holds {have} subtrees of 2 entries but the log of {size} entries needs"
        f" {want}; run verify"
    )


def backfill_nodes(conn: sqlite3.Connection) -> int:
    """Compute ``log_nodes`` from ``log_entries.leaf_hash`` when the table is empty but
    entries exist (a log written before the table existed). Returns the rows written;
    0 when the table already has rows (its correctness is ``verify``'s business) or the
    log has fewer than 2 entries.

    One O(n) pass in a savepoint: inside the caller's transaction if there is one,
    otherwise its own (committed on success). Refuses (LogCorrupted) a log whose seqs are
    not contiguous: the nodes would cover the wrong entries.
    """
    if conn.execute("SELECT 1 FROM log_nodes LIMIT 1").fetchone() is not None:
        return 0
    conn.execute("SAVEPOINT log_nodes_backfill")
    try:
        written = 0
        frontier = merkle.Frontier()
        batch: list[tuple[int, int, bytes]] = []
        for seq, h in conn.execute("SELECT seq, leaf_hash FROM log_entries ORDER BY seq"):
            if seq != frontier.size or not isinstance(h, bytes) or len(h) != merkle.HASH_SIZE:
                raise LogCorrupted(
                    f"cannot backfill log_nodes: entry {frontier.size} is missing or its"
                    " leaf_hash is not 32 bytes; run verify"
                )
            batch.extend(frontier.push(h))
            if len(batch) >= _BACKFILL_BATCH:
                conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", batch)
                written += len(batch)
                batch.clear()
        conn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", batch)
        written += len(batch)
    except BaseException:
        conn.execute("ROLLBACK TO log_nodes_backfill")
        conn.execute("RELEASE log_nodes_backfill")
        raise
    conn.execute("RELEASE log_nodes_backfill")
    return written


class _StoredTree:
    """Subtree hashes of the first ``size`` entries, read from SQLite.

    ``mth(start, end)`` follows the RFC 9162 §2.1.1 split of the list of entries
    [start, end). A perfect, aligned subtree is one primary-key lookup; the ranges proofs
    ask for (an aligned start, an end at a power of two or at the tree size) take at most
    one lookup per level. Any other range is still answered exactly, just with more
    lookups. With ``from_leaves`` (``log_nodes`` not built and not writable, e.g. a
    read-only connection to an old log) every subtree is hashed from the leaf hashes.
    """

    def __init__(self, conn: sqlite3.Connection, from_leaves: bool = False) -> None:
        self.conn = conn
        self.from_leaves = from_leaves

    def leaf(self, seq: int) -> bytes:
        row = self.conn.execute(
            "SELECT leaf_hash FROM log_entries WHERE seq = ?", (seq,)
        ).fetchone()
        return self._hash(row, f"leaf hash of entry {seq}")

    def node(self, level: int, idx: int) -> bytes:
        row = self.conn.execute(
            "SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, idx)
        ).fetchone()
        lo = idx << level
        return self._hash(row, f"log_nodes row for entries {lo}..{lo + (1 << level) - 1}")

    def mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaf(start)
        if self.from_leaves:
            return merkle.root(
                self._hash((h,), "leaf hash")
                for (h,) in self.conn.execute(
                    "SELECT leaf_hash FROM log_entries WHERE seq >= ? AND seq < ? ORDER BY seq",
                    (start, end),
                )
            )
        if n & (n - 1) == 0 and start % n == 0:
            return self.node(n.bit_length() - 1, start // n)
        k = merkle.split(n)
        return merkle.node_hash(self.mth(start, start + k), self.mth(start + k, end))

    @staticmethod
    def _hash(row: tuple[Any, ...] | None, what: str) -> bytes:
        if row is None:
            raise LogCorrupted(f"the {what} is missing; run verify")
        h = row[0]
        if not isinstance(h, bytes) or len(h) != merkle.HASH_SIZE:
            raise LogCorrupted(f"the {what} is not a 32-byte hash; run verify")
        return h


def _check_sizes(*values: int) -> None:
    for v in values:
        if type(v) is not int or v < 0:
            raise InputError(f"tree sizes and entry numbers must be non-negative integers: {v!r}")


def _tree(conn: sqlite3.Connection, tree_size: int) -> _StoredTree:
    """The stored tree, after checking the log has at least ``tree_size`` entries."""
    size = _log_size(conn)
    if tree_size > size:
        raise NotFound(f"the log has {size} entries, not {tree_size}")
    try:
        _ensure_nodes(conn, size, exact=False)
    except sqlite3.OperationalError:
        # The backfill could not write (read-only connection, lock): answer from leaves.
        return _StoredTree(conn, from_leaves=True)
    return _StoredTree(conn)


def subtree_hash(conn: sqlite3.Connection, start: int, end: int) -> bytes:
    """RFC 9162 MTH of entries [start, end) (the empty tree's root when start == end).

    O(log n) lookups for an aligned start (what proofs use), e.g. ``subtree_hash(conn, 0,
    n)`` is the root of the tree of size n. Raises InputError for a negative or reversed
    range and NotFound beyond the end of the log.
    """
    _check_sizes(start, end)
    if start > end:
        raise InputError(f"reversed range: start {start} is after end {end}")
    return _tree(conn, end).mth(start, end)


def inclusion_proof(conn: sqlite3.Connection, seq: int, tree_size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof of entry ``seq`` in the tree of ``tree_size``
    entries, nearest sibling first; verify with ``merkle.verify_inclusion`` against the
    head of that size and the entry's leaf hash.

    O(log n) lookups. When we signed a head of that size the proof is checked against its
    root before it leaves (LogCorrupted if the stored tree no longer matches: never send a
    proof that cannot verify). Raises InputError unless 0 <= seq < tree_size, NotFound
    when the log is shorter than ``tree_size``.
    """
    _check_sizes(seq, tree_size)
    if seq >= tree_size:
        raise InputError(f"entry {seq} is not in a tree of {tree_size} entries")
    tree = _tree(conn, tree_size)
    proof = merkle.inclusion_proof(seq, tree_size, tree.mth)
    head = head_at(conn, tree_size)
    if head is not None and not merkle.verify_inclusion(
        tree.leaf(seq), seq, tree_size, proof, head.root_hash
    ):
        raise LogCorrupted(
            f"the inclusion proof of entry {seq} does not verify against our signed head"
            f" {tree_size}; run verify"
        )
    return proof


def consistency_proof(conn: sqlite3.Connection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 proof that the tree of ``old_size`` entries is a prefix of the
    tree of ``new_size``; verify with ``merkle.verify_consistency`` against the two heads.
    Empty when old_size is 0 or equals new_size.

    O(log n) lookups, checked against our signed heads of both sizes when we have them
    (LogCorrupted if not). Raises InputError unless 0 <= old_size <= new_size, NotFound
    when the log is shorter than ``new_size``.
    """
    _check_sizes(old_size, new_size)
    if old_size > new_size:
        raise InputError(f"no consistency proof from {old_size} entries back to {new_size}")
    tree = _tree(conn, new_size)
    proof = merkle.consistency_proof(old_size, new_size, tree.mth)
    old, new = head_at(conn, old_size), head_at(conn, new_size)
    if (
        old is not None
        and new is not None
        and not merkle.verify_consistency(old_size, new_size, old.root_hash, new.root_hash, proof)
    ):
        raise LogCorrupted(
            f"the consistency proof from {old_size} to {new_size} entries does not verify"
            " against our signed heads; run verify"
        )
    return proof
