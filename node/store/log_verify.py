"""Verification of the node's transparency log (docs/protocol.md §9.1, "Verification").

``verify`` recomputes the whole log from the stored entry bodies in one streaming pass
and checks it against everything stored beside it: the ``prev`` links, the leaf hashes,
every signed tree head (signature and root), the column copies, the subject rows, the
frontier and every stored subtree (``log_nodes``). It reports the earliest problems,
located at an entry, and classified (``ProblemKind``). ``node.store.log`` writes the log
and re-exports ``verify``, ``VerifyReport`` and ``LogProblem``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from node.errors import BadSignature, LogCorrupted, MalformedMessage
from node.protocol import merkle
from node.protocol.models import rfc3339
from node.protocol.tree_head import check_head

MAX_PROBLEMS = 20
"""``verify`` reports at most this many problems, the earliest ones in log order."""

_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_sha256 = hashlib.sha256
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""The C scanner under ``json.loads``, without its whitespace handling: a stored body is
canonical (no whitespace around it), and anything else goes to the slow path."""
_LEAF_PREFIX = merkle.LEAF_PREFIX

ProblemKind = Literal[
    "edited",
    "missing",
    "reordered",
    "truncated",
    "bad_signature",
    "bad_head",
    "inconsistent_columns",
    "bad_node",
]
"""``bad_node``: a stored subtree (``log_nodes``) that differs from the tree recomputed from
the entries, is missing, or has no place in the log. Proofs are served from these rows, so
a bad one makes this node's proofs fail at its peers."""


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
_DERIVED_KINDS = frozenset({"inconsistent_columns", "bad_node"})
_ENTRY_KINDS = frozenset({"edited", "missing", "reordered", "truncated"})
"""Damage to the entries themselves; every stored subtree over it differs as a consequence."""


def _problem_order(p: LogProblem) -> tuple[int, int]:
    # Earliest location first; at one location the cause (an entry problem) before its
    # consequences (derived tables, then heads that no longer match).
    rank = 2 if p.kind in _HEAD_KINDS else 1 if p.kind in _DERIVED_KINDS else 0
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

    __slots__ = ("_next", "_rows")

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
    return _check_body(body)


_OPTIONAL_TEXT = ("trace_id", "purpose", "actor", "counterparty", "outcome", "reason")


def _check_body(body: Any) -> dict[str, Any] | str:
    """``body`` (as ``json.loads`` returns it) if it has the shape of an entry body, else
    why not. ``json`` builds exact dicts, lists, strs and ints, so ``type(…) is`` is the
    same test as ``isinstance`` here, and cheaper on a million entries."""
    if type(body) is not dict or body.keys() != _BODY_KEYS:
        return "body does not have the log entry fields"
    seq = body["seq"]
    if type(seq) is not int or seq < 0:
        return "body seq is not a non-negative integer"
    prev = body["prev"]
    if type(prev) is not str or not _HEX_HASH.fullmatch(prev):
        return "body prev is not a hex SHA-256"
    for key in ("time", "node", "kind"):
        if type(body[key]) is not str:
            return f"body {key} is not text"
    for key in _OPTIONAL_TEXT:
        value = body[key]
        if value is not None and type(value) is not str:
            return f"body {key} is not text or null"
    conv = body["convenant"]
    if conv is not None and (
        type(conv) is not dict
        or conv.keys() != {"id", "version"}
        or type(conv["id"]) is not str
        or (conv["version"] is not None and type(conv["version"]) is not int)
    ):
        return "body convenant is not {id, version} or null"
    subjects = body["subjects"]
    if type(subjects) is not list or not all(type(s) is str for s in subjects):
        return "body subjects is not a list of text"
    if type(body["data"]) is not dict:
        return "body data is not an object"
    return body


def _span(lo: int, hi: int) -> str:
    return f"entry {lo}" if lo == hi else f"entries {lo}..{hi}"


def _span_is(lo: int, hi: int, verb: str) -> str:
    """``entry 5 appears`` / ``entries 5..7 appear``."""
    return f"{_span(lo, hi)} {verb + 's' if lo == hi else verb}"


class _Verifier:
    def __init__(
        self, conn: sqlite3.Connection, node_id: str, verify_key: bytes | Mapping[str, bytes]
    ) -> None:
        self.conn = conn
        self.node_id = node_id
        self.verify_key = verify_key
        self.problems = _Problems()
        self.frontier = merkle.Frontier()
        self.nodes = _StoredNodes(conn)
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
            if not self._intact_entry(row, subjects):
                self._entry(row, subjects)
            if (r := heads.peek()) is not None and r[0] <= self.frontier.size:
                self._heads_upto(heads)
        while heads.peek() is not None:  # heads beyond the end of the log: signatures only
            self._head(heads.pop(), with_root=False)
        for seq, _ in iter(subjects.pop, None):
            self._orphan_subject(seq)
        self._resolve_jumps()
        self._check_tail()
        self._check_frontier()
        self._check_nodes()
        return VerifyReport(self.entries, self.heads, self.problems.result())

    # -- entries --

    def _intact_entry(self, row: tuple[Any, ...], subjects: _Peek) -> bool:
        """``_entry`` for the common case, in fewer steps: an entry in its place, whose
        body hashes to its leaf hash, has the entry shape, links to the entry before it
        and agrees with its column copies. Then it makes exactly the state changes
        ``_entry`` would, and finds nothing, as ``_entry`` would not; the subtrees and
        the subject rows are checked by the same code. Anything else returns False
        before changing any state, and ``_entry`` takes the row from the start."""
        s, text, stored, kind, time, trace_id, convenant_id, counterparty = row
        ends = self.seen.ends
        if (
            type(text) is not str
            or s != self.prev_row + 1
            or self.offset != 0
            or not ends
            or ends[-1] != s - 1
        ):
            return False
        h = _sha256(_LEAF_PREFIX + text.encode("utf-8")).digest()
        if h != stored:
            return False
        try:
            parsed, end = _scan_json(text, 0)
        except (StopIteration, ValueError):
            return False
        if end != len(text):
            return False
        body = _check_body(parsed)
        if isinstance(body, str) or body["seq"] != s:
            return False
        if bytes.fromhex(body["prev"]) not in self.prev_hashes:
            return False
        conv = body["convenant"]
        if (kind, time, trace_id, convenant_id, counterparty) != (
            body["kind"],
            body["time"],
            body["trace_id"],
            None if conv is None else conv["id"],
            body["counterparty"],
        ):
            return False
        self.entries += 1
        ends[-1] = s  # _SeenSeqs.add of the next seq in order
        if body["subjects"] or ((r := subjects.peek()) is not None and r[0] <= s):
            self._subjects(s, body, subjects)
        for level, idx, node in self.frontier.push(h):
            self.nodes.check(level, idx, node)
        self.prev_row, self.prev_hashes = s, (h,)
        return True

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
        h = merkle.leaf_hash(raw)
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
        for level, idx, node in self.frontier.push(h):
            self.nodes.check(level, idx, node)
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

    def _check_nodes(self) -> None:
        # Derived state like the frontier, but proofs are served from it. A subtree over
        # damaged entries differs as a mere consequence: only subtrees that end before the
        # first entry problem are reported.
        first_damage = min(
            (p.seq for p in self.problems.items if p.kind in _ENTRY_KINDS and p.seq is not None),
            default=None,
        )
        size = self.frontier.size
        for level, idx, what in self.nodes.finish():
            span = _node_span(level, idx)
            if span is None:
                self.problems.add(
                    size - 1 if size else None,
                    "bad_node",
                    f"log_nodes row (level {level!r}, index {idx!r}) has no place in the tree",
                )
                continue
            lo, last = span
            if first_damage is not None and last >= first_damage:
                continue
            where = f"log_nodes row (level {level}, index {idx}) for {_span(lo, last)}"
            if what == "surplus":
                self.problems.add(
                    size - 1 if size else None,
                    "bad_node",
                    f"{where} covers entries that are not in the log",
                )
            else:
                self.problems.add(last, "bad_node", f"{where} {what}")


_MAX_LEVEL = 62
"""SQLite integers stop at 2^63: no log has a subtree above this level."""


def _node_span(level: object, idx: object) -> tuple[int, int] | None:
    """First and last entry of the subtree (level, idx), or None if it cannot exist."""
    if type(level) is not int or type(idx) is not int:
        return None
    if not 1 <= level <= _MAX_LEVEL or not 0 <= idx < 1 << (_MAX_LEVEL - level + 1):
        return None
    return idx << level, ((idx + 1) << level) - 1


class _StoredNodes:
    """Compares the stored subtrees with the ones the verifier completes, streaming.

    The verifier completes the subtree (level L, index i) right after entry
    (i + 1) * 2^L - 1, so each level's subtrees come in index order: one ordered cursor
    per level (about log2 n of them) merges them with the stored rows in bounded memory.
    An empty (or absent) table is a log written before ``log_nodes`` existed, not yet
    backfilled: nothing to compare.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        try:
            self.empty = conn.execute("SELECT 1 FROM log_nodes LIMIT 1").fetchone() is None
        except sqlite3.OperationalError:  # a read-only copy of a database from before it
            self.empty = True
        self.cursors: dict[int, _Peek] = {}
        self.findings: list[tuple[object, object, str]] = []  # (level, idx, what), log order

    def _note(self, level: object, idx: object, what: str) -> None:
        if len(self.findings) < MAX_PROBLEMS:
            self.findings.append((level, idx, what))

    def check(self, level: int, idx: int, h: bytes) -> None:
        if self.empty:
            return
        rows = self.cursors.get(level)
        if rows is None:
            rows = self.cursors[level] = _Peek(
                iter(
                    self.conn.execute(
                        "SELECT idx, hash FROM log_nodes WHERE level = ? ORDER BY idx", (level,)
                    )
                )
            )
        r = rows.peek()
        if r is not None and r[0] == idx and type(r[0]) is int and r[1] == h:
            rows.pop()  # the common case: the stored subtree is the recomputed one
            return
        # Rows before the expected one: negative indices, or (sorted after every integer)
        # indices that are not integers at all. Nothing to compare them with.
        while (r := rows.peek()) is not None and (type(r[0]) is not int or r[0] < idx):
            rows.pop()
            self._note(level, r[0], "surplus")
        r = rows.peek()
        if r is None or r[0] != idx:
            self._note(level, idx, "is missing")
            return
        rows.pop()
        if r[1] != h:
            self._note(level, idx, "differs from the subtree recomputed from the entries")

    def finish(self) -> list[tuple[object, object, str]]:
        """The findings, plus rows no entry of the log accounts for."""
        if self.empty:
            return self.findings
        for level, rows in self.cursors.items():
            if (r := rows.peek()) is not None:
                self._note(level, r[0], "surplus")
        # Levels the log never reached, or that cannot exist (level < 1, not an integer).
        levels = sorted(self.cursors)
        marks = ",".join("?" * len(levels))
        row = self.conn.execute(
            f"SELECT level, idx FROM log_nodes WHERE level NOT IN ({marks})"  # noqa: S608
            " ORDER BY level, idx LIMIT 1",
            levels,
        ).fetchone()
        if row is not None:
            self._note(row[0], row[1], "surplus")
        return self.findings


def verify(
    conn: sqlite3.Connection, node_id: str, verify_key: bytes | Mapping[str, bytes]
) -> VerifyReport:
    """Recompute the whole log from the stored bodies and check it against its heads,
    signed by ``verify_key`` or, given every key the node has had, by any of them.

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
