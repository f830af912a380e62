"""The node's transparency log: append-only, hash-linked entries under signed Merkle heads.

docs/protocol.md §9. Every decision the node takes is appended here in the same SQLite
transaction as the state change it records, so the two commit together or not at all.
The log holds pseudonyms (``pseudonym``), never identifiers, so it can outlive the
personal data it describes and still answer an access request for a known identifier.

Shape (RFC 9162 style, so inclusion and consistency proofs can be added without a
migration):

- entry ``seq`` (0-based) is stored as the RFC 8785 canonical JSON ``body``; the body
  carries ``prev``, the previous entry's leaf hash, so order and deletions also show
  without any tree head;
- leaf hash = SHA-256(0x00 || body bytes); interior node = SHA-256(0x01 || left || right);
  the root of a tree of n entries is the RFC 9162 Merkle Tree Hash of the n leaf hashes;
- every ``append`` call signs one tree head (JWS, typ ``vhnode-tree-head/v1``) for the
  new size. Peers keep the heads they receive, which is what stops this node from
  quietly rebuilding its history: a local attacker who cuts the tail, deletes its heads
  and rebuilds ``log_frontier`` leaves a log ``verify`` cannot fault on its own, but no
  peer's copy of a later head will then match.

``append`` keeps the compact-range right frontier (one subtree root per set bit of the
tree size) in ``log_frontier``, so an append costs O(entries + log n) and never reads
old entries. ``verify`` streams the whole log once and recomputes everything from the
stored bodies; nothing it trusts comes from the derived columns.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import nacl.signing

from node.errors import BadSignature, LogCorrupted, MalformedMessage
from node.protocol import jws
from node.protocol.jws import SignedDocument
from node.protocol.models import rfc3339

TREE_HEAD_TYP = "vhnode-tree-head/v1"

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 9162 MTH of the empty tree."""
GENESIS_PREV = "0" * 64
"""``prev`` of entry 0: there is no previous leaf."""

MAX_PROBLEMS = 20
"""``verify`` reports at most this many problems, the earliest ones in log order."""

_PSEUDONYM = re.compile(r"[0-9a-f]{64}")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

SCHEMA = """
CREATE TABLE IF NOT EXISTS log_entries (
    seq INTEGER PRIMARY KEY,          -- leaf index: 0-based, contiguous
    body TEXT NOT NULL,               -- RFC 8785 canonical JSON, exactly the bytes hashed
    leaf_hash BLOB NOT NULL,          -- SHA-256(0x00 || body)
    kind TEXT NOT NULL,               -- kind .. counterparty: copies of body fields for
    time TEXT NOT NULL,               -- querying only, verify checks they equal the body
    trace_id TEXT,
    convenant_id TEXT,
    counterparty TEXT
);
CREATE INDEX IF NOT EXISTS log_entries_by_kind ON log_entries (kind);
CREATE INDEX IF NOT EXISTS log_entries_by_trace ON log_entries (trace_id);
CREATE INDEX IF NOT EXISTS log_entries_by_time ON log_entries (time);

-- One row per distinct pseudonym in an entry's subjects: answers access requests
-- without scanning bodies. Keyed by (seq, pseudonym) so verify can merge it in seq order.
CREATE TABLE IF NOT EXISTS log_subjects (
    seq INTEGER NOT NULL,
    pseudonym TEXT NOT NULL,
    PRIMARY KEY (seq, pseudonym)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS log_subjects_by_pseudonym ON log_subjects (pseudonym);

CREATE TABLE IF NOT EXISTS tree_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,          -- copies of the signed payload, for queries
    signed_at TEXT NOT NULL,
    jws TEXT NOT NULL                 -- the signed head as JSON text: the authoritative copy
);

-- Right frontier of the Merkle tree: the root of the perfect subtree of 2^level leaves
-- for every set bit of the tree size. Enough to append and to compute the root.
CREATE TABLE IF NOT EXISTS log_frontier (
    level INTEGER PRIMARY KEY,
    hash BLOB NOT NULL
);
"""


# --- entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
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
    return hashlib.sha256(LEAF_PREFIX + body).digest()


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1 Merkle Tree Hash over leaf hashes, written as the RFC defines it.

    The reference the incremental frontier is checked against; O(n log n), for tests and
    small trees, not for the live log.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)  # largest power of two smaller than n
    return _node_hash(merkle_root(leaf_hashes[:k]), merkle_root(leaf_hashes[k:]))


class _Frontier:
    """The right frontier of an RFC 9162 tree: ``levels[h]`` is the root of a perfect
    subtree of 2^h leaves, present exactly for the set bits of ``size``.

    Appending is a binary increment (merge equal-height subtrees); the root folds the
    subtrees from the smallest up, which is the MTH's split at the largest power of two.
    """

    __slots__ = ("levels", "size")

    def __init__(self, levels: Mapping[int, bytes] | None = None) -> None:
        self.levels: dict[int, bytes] = dict(levels or {})
        self.size = sum(1 << level for level in self.levels)

    def push(self, leaf: bytes) -> None:
        node, level = leaf, 0
        while level in self.levels:
            node = _node_hash(self.levels.pop(level), node)
            level += 1
        self.levels[level] = node
        self.size += 1

    def root(self) -> bytes:
        acc: bytes | None = None
        for level in sorted(self.levels):
            acc = self.levels[level] if acc is None else _node_hash(self.levels[level], acc)
        return EMPTY_ROOT if acc is None else acc


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


# --- tree heads ------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    signed_at: datetime
    jws: str
    """The signed head as JSON text (JWS General JSON Serialization)."""

    def document(self) -> SignedDocument:
        """The parsed JWS, e.g. to send to a peer. Not verified here."""
        return jws.parse(json.loads(self.jws), TREE_HEAD_TYP)


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _sign_head(
    conn: sqlite3.Connection,
    signing_key: nacl.signing.SigningKey,
    *,
    node_id: str,
    tree_size: int,
    root: bytes,
    now: datetime,
) -> TreeHead:
    signed_at = rfc3339(now)
    payload = {
        "node": node_id,
        "tree_size": tree_size,
        "root_hash": jws.b64u_encode(root),
        "signed_at": signed_at,
    }
    text = jws.canonical(jws.sign(TREE_HEAD_TYP, payload, signing_key).to_json()).decode("ascii")
    conn.execute(
        "INSERT INTO tree_heads (tree_size, root_hash, signed_at, jws) VALUES (?, ?, ?, ?)",
        (tree_size, root, signed_at, text),
    )
    return TreeHead(tree_size, root, _parse_time(signed_at), text)


def check_head(obj: Any, node_id: str, verify_key: bytes) -> TreeHead:
    """Parse and verify a signed tree head of ``node_id`` (ours in ``verify``, a peer's
    when heads are gossiped). Raises BadSignature or MalformedMessage."""
    doc = jws.parse(obj, TREE_HEAD_TYP)
    doc.verify(jws.fingerprint(verify_key), verify_key)
    p = doc.payload
    if set(p) != {"node", "tree_size", "root_hash", "signed_at"}:
        raise MalformedMessage(
            "tree head payload must be exactly node, tree_size, root_hash, signed_at"
        )
    if p["node"] != node_id:
        raise MalformedMessage(f"tree head is for node {p['node']!r}, expected {node_id!r}")
    if type(p["tree_size"]) is not int or p["tree_size"] < 0:
        raise MalformedMessage("tree head tree_size must be a non-negative integer")
    root = jws.b64u_decode(p["root_hash"])
    if len(root) != 32:
        raise MalformedMessage("tree head root_hash must be 32 bytes")
    try:
        signed_at = _parse_time(p["signed_at"])
    except (TypeError, ValueError) as e:
        raise MalformedMessage("tree head signed_at must be RFC 3339 UTC (…Z)") from e
    return TreeHead(p["tree_size"], root, signed_at, jws.canonical(doc.to_json()).decode("ascii"))


def _head_from_row(row: tuple[Any, ...]) -> TreeHead:
    tree_size, root, signed_at, text = row
    return TreeHead(int(tree_size), bytes(root), _parse_time(signed_at), str(text))


def latest_head(conn: sqlite3.Connection) -> TreeHead | None:
    row = conn.execute(
        "SELECT tree_size, root_hash, signed_at, jws FROM tree_heads"
        " ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _head_from_row(row)


# --- append ----------------------------------------------------------------------------


def _tip(conn: sqlite3.Connection) -> tuple[int, bytes, _Frontier, TreeHead | None]:
    """Size, last leaf hash, frontier and latest head, refusing to build on a log whose
    tip does not agree with itself (a deleted tail, a lost frontier, an unsigned tail):
    appending on top would bury the damage under fresh valid signatures."""
    last = conn.execute(
        "SELECT seq, leaf_hash FROM log_entries ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    size, prev = (0, bytes(32)) if last is None else (int(last[0]) + 1, bytes(last[1]))
    frontier = _Frontier(
        {int(level): bytes(h) for level, h in conn.execute("SELECT level, hash FROM log_frontier")}
    )
    head = latest_head(conn)
    if frontier.size != size:
        raise LogCorrupted(
            f"log frontier covers {frontier.size} entries but the log has {size}; run verify"
        )
    head_size = 0 if head is None else head.tree_size
    if head_size != size:
        raise LogCorrupted(
            f"latest signed tree head covers {head_size} entries but the log has {size}; run verify"
        )
    return size, prev, frontier, head


def append(
    conn: sqlite3.Connection,
    signing_key: nacl.signing.SigningKey,
    node_id: str,
    entries: Sequence[LogEntry],
    now: datetime,
) -> TreeHead:
    """Append ``entries`` (in order) and sign one tree head for the new size.

    Runs inside the caller's open transaction and never commits: the decision and its
    log entries commit together. Prefer ``BEGIN IMMEDIATE`` so two writers serialise on
    the lock instead of one failing on a stale snapshot. With no entries, returns the
    current head (signing the empty tree's head on first use).
    """
    if not conn.in_transaction:
        # In autocommit every INSERT would commit alone: a crash could leave entries
        # without their head, or a decision without its entry.
        raise RuntimeError("log.append must run inside the caller's transaction")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("append needs a timezone-aware time")
    for entry in entries:
        _check_entry(entry)
    size, prev, frontier, head = _tip(conn)
    if not entries:
        if head is not None:
            return head
        return _sign_head(conn, signing_key, node_id=node_id, tree_size=0, root=EMPTY_ROOT, now=now)

    time = rfc3339(now)
    rows: list[tuple[Any, ...]] = []
    subject_rows: list[tuple[int, str]] = []
    for seq, entry in enumerate(entries, start=size):
        try:
            body = jws.canonical(_body(entry, seq, prev, time, node_id))
        except MalformedMessage as e:
            # Raised before any INSERT: nothing half-written even if the caller commits.
            raise ValueError(f"{entry.kind}: entry is not JSON-serialisable: {e.detail}") from e
        prev = leaf_hash(body)
        frontier.push(prev)
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
        subject_rows.extend((seq, s) for s in dict.fromkeys(entry.subjects))

    conn.executemany(
        "INSERT INTO log_entries"
        " (seq, body, leaf_hash, kind, time, trace_id, convenant_id, counterparty)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany("INSERT INTO log_subjects (seq, pseudonym) VALUES (?, ?)", subject_rows)
    conn.execute("DELETE FROM log_frontier")
    conn.executemany(
        "INSERT INTO log_frontier (level, hash) VALUES (?, ?)", sorted(frontier.levels.items())
    )
    return _sign_head(
        conn, signing_key, node_id=node_id, tree_size=frontier.size, root=frontier.root(), now=now
    )


# --- verify ----------------------------------------------------------------------------

ProblemKind = Literal[
    "edited",
    "missing",
    "reordered",
    "truncated",
    "bad_signature",
    "bad_head",
    "inconsistent_columns",
]


@dataclass(frozen=True)
class LogProblem:
    """One finding of ``verify``.

    ``seq`` is the entry where the problem is located; for a tree head it is the last
    entry the head covers (``tree_size - 1``, None for the empty tree) and ``tree_size``
    names the head.
    """

    seq: int | None
    kind: ProblemKind
    detail: str
    tree_size: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    heads: int
    problems: tuple[LogProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_bad(self) -> None:
        """Fail closed on a damaged log (e.g. at start-up)."""
        if self.problems:
            first = self.problems[0]
            where = "" if first.seq is None else f" at entry {first.seq}"
            raise LogCorrupted(f"{first.kind}{where}: {first.detail}")


_HEAD_KINDS = frozenset({"bad_signature", "bad_head"})


def _problem_order(p: LogProblem) -> tuple[int, int]:
    # Earliest location first; at one location the cause (an entry problem) before its
    # consequences (columns, then heads that no longer match).
    rank = 2 if p.kind in _HEAD_KINDS else 1 if p.kind == "inconsistent_columns" else 0
    return (-1 if p.seq is None else p.seq, rank)


class _Problems:
    """The earliest MAX_PROBLEMS findings, in bounded memory however damaged the log."""

    def __init__(self) -> None:
        self.items: list[LogProblem] = []

    def add(
        self, seq: int | None, kind: ProblemKind, detail: str, tree_size: int | None = None
    ) -> None:
        # One problem per location and kind, the first cause found kept. Findings come in
        # log order, so a duplicate can only be among the last few.
        if any((p.seq, p.kind) == (seq, kind) for p in self.items[-4:]):
            return
        self.items.append(LogProblem(seq, kind, detail, tree_size))
        if len(self.items) >= 10 * MAX_PROBLEMS:
            self._trim()

    def _trim(self) -> None:
        self.items.sort(key=_problem_order)
        del self.items[MAX_PROBLEMS:]

    def result(self) -> tuple[LogProblem, ...]:
        self._trim()
        return tuple(self.items)


class _Peek:
    """A cursor with one row of look-ahead, for merging ordered streams."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next: Any = next(rows, None)

    def peek(self) -> Any:
        return self._next

    def pop(self) -> Any:
        row, self._next = self._next, next(self._rows, None)
        return row


class _SeenSeqs:
    """Body seqs seen so far, as sorted disjoint closed intervals.

    An intact log is one interval; each tampering adds a few, so memory follows the
    damage, not the log size.
    """

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, x: int) -> bool:
        """Add ``x``; False if it was already there."""
        if self.ends and x == self.ends[-1] + 1:  # the common case: next in order
            self.ends[-1] = x
            return True
        i = bisect.bisect_right(self.starts, x) - 1
        if i >= 0 and x <= self.ends[i]:
            return False
        joins_left = i >= 0 and self.ends[i] == x - 1
        joins_right = i + 1 < len(self.starts) and self.starts[i + 1] == x + 1
        if joins_left and joins_right:
            self.ends[i] = self.ends[i + 1]
            del self.starts[i + 1], self.ends[i + 1]
        elif joins_left:
            self.ends[i] = x
        elif joins_right:
            self.starts[i + 1] = x
        else:
            self.starts.insert(i + 1, x)
            self.ends.insert(i + 1, x)
        return True

    def count(self, lo: int, hi: int) -> int:
        """How many of lo..hi were seen."""
        total = 0
        i = bisect.bisect_left(self.ends, lo)
        while i < len(self.starts) and self.starts[i] <= hi:
            total += min(self.ends[i], hi) - max(self.starts[i], lo) + 1
            i += 1
        return total


@dataclass
class _Jump:
    """Row ``row`` holds entry ``entry`` where entries lo..hi were expected."""

    row: int
    entry: int
    lo: int
    hi: int
    unseen: int  # how many of lo..hi had not been seen when the jump was found


_MAX_JUMPS = 1000

_BODY_KEYS = frozenset(
    {
        "seq",
        "prev",
        "time",
        "node",
        "kind",
        "trace_id",
        "convenant",
        "purpose",
        "actor",
        "counterparty",
        "subjects",
        "outcome",
        "reason",
        "data",
    }
)


def _parse_body(raw: bytes) -> dict[str, Any] | str:
    """The entry body, or why it is not one this module wrote."""
    try:
        body = json.loads(raw)
    except ValueError:
        return "body is not JSON"
    if not isinstance(body, dict) or set(body) != _BODY_KEYS:
        return "body does not have the log entry fields"
    if type(body["seq"]) is not int or body["seq"] < 0:
        return "body seq is not a non-negative integer"
    if not isinstance(body["prev"], str) or not _HEX_HASH.fullmatch(body["prev"]):
        return "body prev is not a hex SHA-256"
    for key in ("time", "node", "kind"):
        if not isinstance(body[key], str):
            return f"body {key} is not text"
    for key in ("trace_id", "purpose", "actor", "counterparty", "outcome", "reason"):
        if body[key] is not None and not isinstance(body[key], str):
            return f"body {key} is not text or null"
    conv = body["convenant"]
    if conv is not None and (
        not isinstance(conv, dict)
        or set(conv) != {"id", "version"}
        or not isinstance(conv["id"], str)
        or (conv["version"] is not None and type(conv["version"]) is not int)
    ):
        return "body convenant is not {id, version} or null"
    if not isinstance(body["subjects"], list) or not all(
        isinstance(s, str) for s in body["subjects"]
    ):
        return "body subjects is not a list of text"
    if not isinstance(body["data"], dict):
        return "body data is not an object"
    return body


def _span(lo: int, hi: int) -> str:
    return f"entry {lo}" if lo == hi else f"entries {lo}..{hi}"


def _span_is(lo: int, hi: int, verb: str) -> str:
    """``entry 5 appears`` / ``entries 5..7 appear``."""
    return f"{_span(lo, hi)} {verb + 's' if lo == hi else verb}"


class _Verifier:
    def __init__(self, conn: sqlite3.Connection, node_id: str, verify_key: bytes) -> None:
        self.conn = conn
        self.node_id = node_id
        self.verify_key = verify_key
        self.problems = _Problems()
        self.frontier = _Frontier()
        self.entries = 0
        self.heads = 0
        self.latest_head_size: int | None = None
        self.root_diverged = False
        # Order tracking. Offset = body seq - row seq; it is 0 in an intact log and a
        # change of offset between rows is where entries were moved, removed or renumbered.
        self.prev_row = -1
        self.offset = 0
        self.prev_hashes: tuple[bytes, ...] = (bytes(32),)
        self.seen = _SeenSeqs()
        self.jumps: list[_Jump] = []
        self.last_orphan: int | None = None

    def run(self) -> VerifyReport:
        heads = _Peek(
            iter(
                self.conn.execute(
                    "SELECT tree_size, root_hash, signed_at, jws FROM tree_heads ORDER BY tree_size"
                )
            )
        )
        subjects = _Peek(
            iter(
                self.conn.execute("SELECT seq, pseudonym FROM log_subjects ORDER BY seq, pseudonym")
            )
        )
        rows = self.conn.execute(
            "SELECT seq, body, leaf_hash, kind, time, trace_id, convenant_id, counterparty"
            " FROM log_entries ORDER BY seq"
        )
        self._heads_upto(heads)  # the empty tree's head, if any
        for row in rows:  # the cursor streams: one body in memory at a time
            self._entry(row, subjects)
            self._heads_upto(heads)
        while heads.peek() is not None:  # heads beyond the end of the log: signatures only
            self._head(heads.pop(), with_root=False)
        for seq, _ in iter(subjects.pop, None):
            self._orphan_subject(seq)
        self._resolve_jumps()
        self._check_tail()
        self._check_frontier()
        return VerifyReport(self.entries, self.heads, self.problems.result())

    # -- entries --

    def _entry(self, row: tuple[Any, ...], subjects: _Peek) -> None:
        s, body_text, stored, kind, time, trace_id, convenant_id, counterparty = row
        self.entries += 1
        if s < 0:
            self.problems.add(s, "edited", f"row with impossible seq {s}")
            return
        if s > self.prev_row + 1:
            lo = self.prev_row + 1
            self.problems.add(lo, "missing", f"{_span(lo, s - 1)} deleted (no row with that seq)")
        # A BLOB written over the text stays a BLOB in SQLite: hash what is there.
        raw = body_text if isinstance(body_text, bytes) else str(body_text).encode("utf-8")
        h = leaf_hash(raw)
        stored_hash = bytes(stored) if isinstance(stored, bytes) else None
        hashes: tuple[bytes, ...] = (h,)
        if stored_hash != h:
            self.problems.add(
                s, "edited", "body does not hash to its stored leaf_hash (body or hash changed)"
            )
            # The stored hash is likely the original: let the next entry's link match it
            # so one edit is reported once.
            hashes = (h, stored_hash) if stored_hash is not None else (h,)
        body = _parse_body(raw)
        if isinstance(body, str):
            if stored_hash == h:
                self.problems.add(s, "edited", body)
            offset = self.offset  # unknown position: assume in place, skip order checks
        else:
            offset = self._order(s, body)
            self._columns(s, body, (kind, time, trace_id, convenant_id, counterparty))
        self._subjects(s, body, subjects)
        self.frontier.push(h)
        self.prev_row, self.offset, self.prev_hashes = s, offset, hashes

    def _order(self, s: int, body: dict[str, Any]) -> int:
        b: int = body["seq"]
        offset = b - s
        contiguous = s == self.prev_row + 1
        if not self.seen.add(b):
            # A copy stands in for whatever entry was here: an edit in place, so keep the
            # offset and let the next row's broken link fold into this problem.
            self.problems.add(s, "edited", f"row {s} holds a second copy of entry {b}")
            return self.offset
        if offset == self.offset:
            # Entries continue in order (also inside a renumbered stretch): check the link.
            if contiguous and bytes.fromhex(body["prev"]) not in self.prev_hashes:
                self.problems.add(
                    s - 1,
                    "edited",
                    f"entry {b} does not link to the entry before it (its prev is not that"
                    f" entry's leaf hash): row {s - 1} was rewritten with its leaf_hash"
                    " recomputed, or entries between them were removed and renumbered",
                )
            return offset
        expected = s + self.offset  # the entry that would follow the previous row's
        if b > expected:
            lo, hi = expected, b - 1
            unseen = (hi - lo + 1) - self.seen.count(lo, hi)
            if unseen == 0:
                if offset != 0:
                    self.problems.add(s, "reordered", f"row {s} holds entry {b}")
            elif len(self.jumps) < _MAX_JUMPS:
                # Missing or moved further down? Only the rest of the log can tell.
                self.jumps.append(_Jump(s, b, lo, hi, unseen))
            else:
                self.problems.add(
                    lo, "missing", f"row {s} holds entry {b}: {_span(lo, hi)} missing or moved"
                )
        elif offset != 0:
            # Backwards: this entry stands after entries that come after it.
            self.problems.add(
                s,
                "reordered",
                f"row {s} holds entry {b}, which belongs before row {s - 1}'s entry",
            )
        return offset

    def _columns(self, s: int, body: dict[str, Any], columns: tuple[Any, ...]) -> None:
        conv = body["convenant"]
        want = (
            body["kind"],
            body["time"],
            body["trace_id"],
            None if conv is None else conv["id"],
            body["counterparty"],
        )
        names = ("kind", "time", "trace_id", "convenant_id", "counterparty")
        wrong = [n for n, got, exp in zip(names, columns, want, strict=True) if got != exp]
        if wrong:
            self.problems.add(
                s, "inconsistent_columns", f"column {', '.join(wrong)} differs from the body"
            )

    def _subjects(self, s: int, body: dict[str, Any] | str, subjects: _Peek) -> None:
        while (r := subjects.peek()) is not None and r[0] < s:
            self._orphan_subject(subjects.pop()[0])
        got: set[Any] = set()
        while (r := subjects.peek()) is not None and r[0] == s:
            got.add(subjects.pop()[1])
        if isinstance(body, dict) and got != set(body["subjects"]):
            self.problems.add(s, "inconsistent_columns", "log_subjects rows differ from the body")

    def _orphan_subject(self, seq: int) -> None:
        # Rows of one seq are consecutive: report the first only.
        if self.last_orphan != seq:
            self.last_orphan = seq
            self.problems.add(
                seq,
                "inconsistent_columns",
                f"log_subjects has rows for entry {seq}, which is not in the log",
            )

    def _resolve_jumps(self) -> None:
        for j in self.jumps:
            unseen_now = (j.hi - j.lo + 1) - self.seen.count(j.lo, j.hi)
            if unseen_now == 0:
                self.problems.add(
                    j.row,
                    "reordered",
                    f"row {j.row} holds entry {j.entry}; {_span_is(j.lo, j.hi, 'appear')} later",
                )
            elif unseen_now == j.unseen:
                self.problems.add(
                    j.lo,
                    "missing",
                    f"{_span(j.lo, j.hi)} not in the log; row {j.row} holds entry {j.entry}"
                    " (the rows after it were renumbered)",
                )
            else:
                self.problems.add(
                    j.lo,
                    "missing",
                    f"of {_span(j.lo, j.hi)}, {unseen_now} not in the log and the rest moved;"
                    f" row {j.row} holds entry {j.entry}",
                )

    # -- heads --

    def _heads_upto(self, heads: _Peek) -> None:
        while (r := heads.peek()) is not None and r[0] <= self.frontier.size:
            self._head(heads.pop(), with_root=True)

    def _head(self, row: tuple[Any, ...], with_root: bool) -> None:
        tree_size, root_col, signed_at_col, text = row
        self.heads += 1
        self.latest_head_size = tree_size
        seq = tree_size - 1 if tree_size > 0 else None
        try:
            head = check_head(json.loads(text), self.node_id, self.verify_key)
        except BadSignature as e:
            self.problems.add(seq, "bad_signature", f"tree head {tree_size}: {e.detail}", tree_size)
            return
        except (MalformedMessage, TypeError, ValueError) as e:
            detail = e.detail if isinstance(e, MalformedMessage) else "not a JWS"
            self.problems.add(seq, "bad_head", f"tree head {tree_size}: {detail}", tree_size)
            return
        if (head.tree_size, head.root_hash, rfc3339(head.signed_at)) != (
            tree_size,
            root_col,
            signed_at_col,
        ):
            self.problems.add(
                seq,
                "inconsistent_columns",
                f"tree head {tree_size}: columns differ from the signed head",
                tree_size,
            )
        if with_root and head.tree_size == self.frontier.size:
            if head.root_hash == self.frontier.root():
                self.root_diverged = False
            elif not self.root_diverged:
                # Every later root covers the same changed leaves: report the first only.
                self.root_diverged = True
                self.problems.add(
                    seq,
                    "bad_head",
                    f"signed tree head {tree_size} does not match the entries now in the log",
                    tree_size,
                )

    def _check_tail(self) -> None:
        size = self.prev_row + 1
        latest = self.latest_head_size
        if latest is None:
            if size:
                self.problems.add(0, "bad_head", f"no signed tree head covers {_span(0, size - 1)}")
        elif latest > size:
            self.problems.add(
                size,
                "truncated",
                f"the latest signed tree head covers {latest} entries, the log ends at"
                f" {size}: {_span(size, latest - 1)} removed",
                latest,
            )
        elif latest < size:
            self.problems.add(
                latest,
                "bad_head",
                f"{_span(latest, size - 1)} not covered by any signed tree head",
                latest,
            )

    def _check_frontier(self) -> None:
        # Derived state, but append trusts it: a wrong frontier would make the next head
        # sign a root over leaves that are not there. When entries are already damaged it
        # differs as a mere consequence, so only an otherwise intact log reports it.
        if self.problems.items:
            return
        stored = {
            int(level): bytes(h)
            for level, h in self.conn.execute("SELECT level, hash FROM log_frontier")
        }
        if stored != self.frontier.levels:
            size = self.frontier.size
            self.problems.add(
                size - 1 if size else None,
                "inconsistent_columns",
                "log_frontier differs from the tree recomputed from the entries"
                " (the next append would fail or sign a wrong root)",
            )


def verify(conn: sqlite3.Connection, node_id: str, verify_key: bytes) -> VerifyReport:
    """Recompute the whole log from the stored bodies and check it against its heads.

    Streams entries, subjects and heads in one ordered pass (memory independent of the
    log size) inside one read transaction, so a concurrent append cannot make a
    consistent log look broken.
    """
    own_tx = not conn.in_transaction
    if own_tx:
        conn.execute("BEGIN")
    try:
        return _Verifier(conn, node_id, verify_key).run()
    finally:
        if own_tx:
            conn.execute("ROLLBACK")
