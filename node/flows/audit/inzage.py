"""A data subject's access request (inzage, AVG art. 15) answered from this node's log.

Given a person's identifiers, the node computes the pseudonyms its own key gives them
(docs/protocol.md §9.2), finds every log entry that names one of them through the
``log_subjects`` index, and lists the registrations it currently holds for them (its own
data, so it may show them). docs/audit.md "Access request".

Other persons stay out of the report: an entry about a family names several pseudonyms,
and the report says only that this person was among N subjects — never another subject's
pseudonym, and never the entry's overall outcome when that is a summary over all its
subjects (a family round is a hit when any member is); instead, this person's own status.

What cannot be found here, by design: a provider never learns whom a requester asked
about (the evaluation is blind), so the evaluations this node *answered* carry no subject
and never appear in an access request. The requester's own node holds that record. Once
a requester follows a hit with a detail request or a hit notice (docs/protocol.md §14),
the provider knows whom it concerns, and those entries do name the person's pseudonym.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from node.errors import InputError
from node.flows import log_entries
from node.flows.audit import Entry, entries_by_seq
from node.flows.context import NodeContext
from node.protocol.identifiers import (
    AddressIdentifier,
    BsnIdentifier,
    PersonIdentifier,
    parse_identifier,
    subject_key,
)
from node.protocol.models import rfc3339
from node.store import log, migrations
from node.store.db import tx
from node.store.log_kinds import LogKind

Identifier = BsnIdentifier | PersonIdentifier | AddressIdentifier

MAX_IDENTIFIERS = 64
"""A person has a BSN, a few spellings of a name and some addresses; more is not one
person's access request."""
MAX_REQUEST_REF_CHARS = 128

INZAGE_KIND = LogKind.AUDIT_INZAGE

NOTES = (
    "Only processing recorded at this node is listed. A node that answered a partner's "
    "question never learns whom it was asked about (the protocol is blind), so the "
    "questions this node answered cannot be listed per person; the asking partner's own "
    "node records them, under the same trace id.",
    "Where one processing concerned several persons (a family, a group, a batch of "
    "registry changes), only the number of identifiers it named is shown, never who the "
    "others were.",
    "A name is matched on surname without tussenvoegsels, first initial and date of "
    "birth, so an entry found by name may concern another person with the same key.",
)


@dataclass(frozen=True)
class Subject:
    """One identifier of the person, as the node matches it."""

    label: str
    """The subject key (docs/protocol.md §11): the normalised form the node matched on."""
    kind: str
    pseudonym: str
    legacy_pseudonym: str | None = None
    """Under release 0.1.0's pseudonym key, at a node upgraded from it (docs/protocol.md
    §9.2): its entries from before the upgrade, and later ones about exchanges begun
    before it (a detail request on an older round), name the person this way."""


def subjects_for(
    identifiers: Iterable[Identifier], pseudonym_key: bytes, legacy_key: bytes | None = None
) -> list[Subject]:
    """The person's subject keys and their log pseudonyms, duplicates merged in order."""
    out: dict[str, Subject] = {}
    for ident in identifiers:
        key = subject_key(ident)
        if key not in out:
            legacy = None if legacy_key is None else log.pseudonym(legacy_key, key)
            out[key] = Subject(key, ident.kind, log.pseudonym(pseudonym_key, key), legacy)
    return list(out.values())


@dataclass(frozen=True)
class Match:
    identifier: str
    status: str | None
    """This person's own status in the entry, where the entry records one per subject
    (``bekendheid.asked``: hit, no_hit, refused, …); else None."""


@dataclass(frozen=True)
class FoundEntry:
    seq: int
    time: str
    kind: str
    trace_id: str | None
    convenant_id: str | None
    convenant_version: int | None
    purpose: str | None
    actor: str | None
    counterparty: str | None
    outcome: str | None
    reason: str | None
    case_ref: str | None
    subjects_in_entry: int
    """Distinct identifiers (pseudonyms) the entry names, this person's included."""
    matched: tuple[Match, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "kind": self.kind,
            "trace_id": self.trace_id,
            "convenant": None
            if self.convenant_id is None
            else {"id": self.convenant_id, "version": self.convenant_version},
            "purpose": self.purpose,
            "actor": self.actor,
            "counterparty": self.counterparty,
            "outcome": self.outcome,
            "reason": self.reason,
            "case_ref": self.case_ref,
            "subjects_in_entry": self.subjects_in_entry,
            "matched": [{"identifier": m.identifier, "status": m.status} for m in self.matched],
        }


@dataclass(frozen=True)
class FoundRegistration:
    ref: str
    themes: tuple[str, ...]
    updated_at: str
    matched: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "themes": list(self.themes),
            "updated_at": self.updated_at,
            "matched": list(self.matched),
        }


@dataclass
class InzageReport:
    node_id: str
    organisation: str
    generated_at: str
    request_ref: str | None
    subjects: list[Subject]
    entries: list[FoundEntry] = field(default_factory=list)
    registrations: list[FoundRegistration] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "organisation": self.organisation,
            "generated_at": self.generated_at,
            "request_ref": self.request_ref,
            "identifiers": [{"kind": s.kind, "subject_key": s.label} for s in self.subjects],
            "entries": [e.as_json() for e in self.entries],
            "registrations": [r.as_json() for r in self.registrations],
            "notes": list(NOTES),
        }


# --- pure: what one entry says about this person ----------------------------------------


def view(entry: Entry, mine: Mapping[str, str]) -> FoundEntry | None:
    """The entry as this person may see it, or None if it does not name them.

    ``mine`` maps the person's pseudonyms to identifier labels. Other subjects' pseudonyms
    are counted, never copied; ``data`` contributes only ``case_ref`` (the other members
    are kind-specific and may summarise other persons, e.g. per-subject statuses).
    """
    positions = [i for i, p in enumerate(entry.subjects) if p in mine]
    if not positions:
        return None
    statuses = entry.data.get("subjects")
    aligned = isinstance(statuses, list) and len(statuses) == len(entry.subjects)
    matches: dict[str, Match] = {}
    for i in positions:
        label = mine[entry.subjects[i]]
        status = str(statuses[i]) if aligned and isinstance(statuses, list) else None
        if label not in matches or matches[label].status is None:
            matches[label] = Match(label, status)
    outcome = entry.outcome
    if aligned:
        # The entry's own outcome summarises every subject in it: show this person's.
        own = {m.status for m in matches.values()}
        outcome = own.pop() if len(own) == 1 else "mixed"
    case_ref = entry.data.get("case_ref")
    return FoundEntry(
        seq=entry.seq,
        time=entry.time,
        kind=entry.kind,
        trace_id=entry.trace_id,
        convenant_id=entry.convenant_id,
        convenant_version=entry.convenant_version,
        purpose=entry.purpose,
        actor=entry.actor,
        counterparty=entry.counterparty,
        outcome=outcome,
        reason=entry.reason,
        case_ref=case_ref if isinstance(case_ref, str) else None,
        subjects_in_entry=len(set(entry.subjects)),
        matched=tuple(matches.values()),
    )


def _groups(entries: Sequence[FoundEntry]) -> list[list[FoundEntry]]:
    """Consecutive entries of one round (same kind and trace id): one per partner asked."""
    out: list[list[FoundEntry]] = []
    for e in entries:
        prev = out[-1][-1] if out else None
        if (
            prev is not None
            and e.trace_id is not None
            and (prev.kind, prev.trace_id)
            == (
                e.kind,
                e.trace_id,
            )
        ):
            out[-1].append(e)
        else:
            out.append([e])
    return out


def render_text(rep: InzageReport) -> str:
    """A readable report the privacy officer can hand over: one block per processing (a
    round asked of several partners is one block with a line per partner)."""
    lines = [
        f"Access request (inzage) at {rep.organisation} (node {rep.node_id})",
        f"generated {rep.generated_at}"
        + (f", request {rep.request_ref}" if rep.request_ref else ""),
        "",
        "Identifiers searched for (as normalised by the node):",
        *(f"  - {s.label}" for s in rep.subjects),
        "",
        f"Log entries about this person: {len(rep.entries)}",
    ]
    for group in _groups(rep.entries):
        e = group[0]
        conv = "" if e.convenant_id is None else f"{e.convenant_id} v{e.convenant_version}"
        found_by = ", ".join(dict.fromkeys(m.identifier for g in group for m in g.matched))
        lines.append(f"  {e.time}  {e.kind}")
        for label, value in (
            ("convenant", conv),
            ("purpose", e.purpose),
            ("by", e.actor),
            ("case", e.case_ref),
            ("trace", e.trace_id),
            ("found by", found_by),
        ):
            if value:
                lines.append(f"      {label + ':':<11}{value}")
        if e.subjects_in_entry > 1:
            lines.append(
                f"      {'':<11}one of {e.subjects_in_entry} identifiers in this processing"
                " (the others are not shown)"
            )
        for g in group:
            outcome = " ".join(x for x in (g.outcome, g.reason and f"({g.reason})") if x)
            who = f"{g.counterparty}: " if g.counterparty else ""
            lines.append(f"      {'outcome:':<11}{who}{outcome or '-'}")
    lines += ["", f"Registrations currently held about this person: {len(rep.registrations)}"]
    for r in rep.registrations:
        lines.append(
            f"  {r.ref}  themes {', '.join(r.themes)}  updated {r.updated_at}"
            f"  (found by {', '.join(r.matched)})"
        )
    lines += ["", "Notes:", *(f"  - {n}" for n in NOTES)]
    return "\n".join(lines) + "\n"


# --- the edge: SQL ----------------------------------------------------------------------


def _entries_naming(conn: sqlite3.Connection, pseudonyms: Sequence[str]) -> list[int]:
    seqs: set[int] = set()
    for i in range(0, len(pseudonyms), 500):
        chunk = list(pseudonyms[i : i + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT seq FROM log_subjects WHERE pseudonym IN ({marks})",  # noqa: S608
            chunk,
        )
        seqs.update(int(r[0]) for r in rows)
    return sorted(seqs)


def _registrations(
    conn: sqlite3.Connection, subjects: Sequence[Subject]
) -> list[FoundRegistration]:
    """Registrations naming any of the subject keys.

    The registry has no index by subject key (it is keyed by the source system's ref), so
    this scans it once: the JSON text of the key narrows the scan in SQLite, the parsed
    list confirms. Seconds for a registry of millions; access requests are rare.
    """
    labels = {s.label for s in subjects}
    needles = [json.dumps(s.label) for s in subjects]
    where = " OR ".join("instr(subject_keys, ?) > 0" for _ in needles)
    rows = conn.execute(
        f"SELECT ref, themes, subject_keys, updated_at FROM registrations WHERE {where}"  # noqa: S608
        " ORDER BY ref",
        needles,
    )
    out: list[FoundRegistration] = []
    for ref, themes, keys, updated_at in rows:
        matched = tuple(k for k in json.loads(keys) if k in labels)
        if matched:
            out.append(FoundRegistration(ref, tuple(json.loads(themes)), updated_at, matched))
    return out


def find(
    conn: sqlite3.Connection,
    node_id: str,
    organisation: str,
    subjects: Sequence[Subject],
    now: datetime,
    request_ref: str | None = None,
) -> InzageReport:
    """Everything this node recorded about the person, in one read transaction."""
    rep = InzageReport(node_id, organisation, rfc3339(now), request_ref, list(subjects))
    if not subjects:
        return rep
    mine = {s.pseudonym: s.label for s in subjects}
    # Matched over the whole log, not only below the upgrade's seq: rows kept from before
    # it (round hits, detail requests) carry legacy pseudonyms into later entries. Two
    # HMAC-SHA-256 outputs under independent keys do not collide in practice.
    mine |= {s.legacy_pseudonym: s.label for s in subjects if s.legacy_pseudonym}
    own_tx = not conn.in_transaction
    if own_tx:
        conn.execute("BEGIN")
    try:
        for entry in entries_by_seq(conn, _entries_naming(conn, list(mine))):
            found = view(entry, mine)
            if found is not None:  # log_subjects is derived: trust only the body
                rep.entries.append(found)
        rep.registrations = _registrations(conn, subjects)
    finally:
        if own_tx:
            conn.execute("ROLLBACK")
    return rep


def log_entry(rep: InzageReport, actor: str | None) -> log.LogEntry:
    """The record that this access request was answered: looking a person up is itself a
    processing of their data, and an unlogged lookup would let a privacy-officer token
    test who is in the registry without trace. Carries the person's pseudonyms, so the
    next access request shows it."""
    return log_entries.audit_inzage(
        actor=actor,
        subjects=tuple(s.pseudonym for s in rep.subjects),
        data={
            "request_ref": rep.request_ref,
            "identifiers": len(rep.subjects),
            "entries": len(rep.entries),
            "registrations": len(rep.registrations),
        },
    )


# --- answering a request: validate, find, log -----------------------------------------


def check_request_ref(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_REQUEST_REF_CHARS or not value.isprintable():
        raise InputError(f"request_ref: at most {MAX_REQUEST_REF_CHARS} printable characters")
    return value


def parse_request(data: Any, *, today: date | None = None) -> tuple[list[Identifier], str | None]:
    """The body of POST /api/v1/audit/inzage: ``{"subjects": [identifier, ...],
    "request_ref": optional text}``. Identifier errors keep their own problem type
    (``invalid_bsn``, ``invalid_identifier``) and say which one: ``subjects.2: …``."""
    if not isinstance(data, dict):
        raise InputError("body must be a JSON object")
    unknown = sorted(set(data) - {"subjects", "request_ref"})
    if unknown:
        raise InputError(f"{unknown[0]}: unknown field")
    raw = data.get("subjects")
    if not isinstance(raw, list) or not raw:
        raise InputError("subjects: a non-empty list of identifiers is required")
    if len(raw) > MAX_IDENTIFIERS:
        raise InputError(f"subjects: at most {MAX_IDENTIFIERS} identifiers")
    identifiers: list[Identifier] = []
    for i, item in enumerate(raw):
        try:
            identifiers.append(parse_identifier(item, today=today))
        except InputError as e:
            raise type(e)(f"subjects.{i}: {e.detail}") from e
    return identifiers, check_request_ref(data.get("request_ref"))


def _check(identifiers: Sequence[Identifier], request_ref: str | None) -> str | None:
    if not identifiers:
        raise InputError("give at least one identifier (BSN, person or address)")
    if len(identifiers) > MAX_IDENTIFIERS:
        raise InputError(f"at most {MAX_IDENTIFIERS} identifiers")
    return check_request_ref(request_ref)


def _subjects(ctx: NodeContext, identifiers: Sequence[Identifier]) -> list[Subject]:
    """With legacy pseudonyms at a node upgraded from 0.1.0 (reads ``meta``: off the loop)."""
    legacy = migrations.legacy_pseudonyms_before(ctx.conn) > 0
    return subjects_for(
        identifiers, ctx.keys.pseudonym_key(), ctx.keys.legacy_pseudonym_key() if legacy else None
    )


def _find(
    ctx: NodeContext,
    identifiers: Sequence[Identifier],
    request_ref: str | None,
    now: datetime,
) -> InzageReport:
    return find(
        ctx.conn, ctx.node_id, ctx.cfg.organisation, _subjects(ctx, identifiers), now, request_ref
    )


async def answer(
    ctx: NodeContext,
    identifiers: Sequence[Identifier],
    actor: str | None,
    request_ref: str | None = None,
) -> InzageReport:
    """Find everything about the person and log that the access request was answered."""
    request_ref = _check(identifiers, request_ref)
    now = ctx.clock.now()
    # The search reads the whole log's index: a reader's job; the record is a write.
    rep = await ctx.read(lambda: _find(ctx, identifiers, request_ref, now))
    await ctx.write(lambda: ctx.record([log_entry(rep, actor)], now))
    return rep


def answer_here(
    ctx: NodeContext,
    identifiers: Sequence[Identifier],
    actor: str | None,
    request_ref: str | None = None,
) -> InzageReport:
    """``answer`` on this thread's own connection (the CLI, which may run inside a test's
    event loop and so cannot start one of its own)."""
    request_ref = _check(identifiers, request_ref)
    now = ctx.clock.now()
    rep = _find(ctx, identifiers, request_ref, now)
    with tx(ctx.conn):
        ctx.record([log_entry(rep, actor)], now)
    return rep
