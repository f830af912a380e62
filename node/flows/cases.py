"""The rounds and detail requests of one case reference (docs/webapp.md "Zaak").

A round is kept nowhere but in the log: ``bekendheid.round`` (its intent: convenant,
purpose, user, the subjects' pseudonyms, the partners asked, the case reference) and one
``bekendheid.asked`` per partner (its status, reason and the status per subject, in the
round's subject order). This reads them back; it stores nothing. The subjects are
pseudonyms there, never identifiers, so a round of the past names its subjects by their
position in the round only ("betrokkene 2"): the node keeps no identifier to show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from node.flows.context import NodeContext
from node.flows.detail_asking import ask_json, round_hits
from node.store import received
from node.store.log_kinds import LogKind

MAX_ROUNDS = 100  # newest first; a case conference prepares a handful


@dataclass(frozen=True)
class PartnerOutcome:
    partner: str
    status: str | None  # None: the round's intent is logged but no answer (node stopped)
    reason: str | None = None
    subjects: tuple[str, ...] = ()


@dataclass
class CaseRound:
    trace_id: str
    time: str
    convenant_id: str | None
    convenant_version: int | None
    purpose: str | None
    user: str | None
    subject_count: int
    partners: list[PartnerOutcome] = field(default_factory=list)
    # (partner, subject index) of every hit still held: detail may still be asked.
    askable: set[tuple[str, int]] = field(default_factory=set)
    asks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Case:
    case_ref: str
    rounds: list[CaseRound]
    # Detail requests under this case reference after a round not listed (the API lets a
    # detail request name another case reference than its round's).
    other_asks: list[dict[str, Any]]
    more: bool  # more rounds than shown


def _bodies(ctx: NodeContext, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for (body,) in ctx.conn.execute(sql, args):
        try:
            doc = json.loads(body)
        except ValueError:  # only a damaged log has one; verify names it, this skips it
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def case(ctx: NodeContext, case_ref: str) -> Case:
    """The newest rounds of ``case_ref`` and their detail requests (a read: ctx.read).

    The round entries are found by kind (indexed) and the case reference inside the
    body; the answers by trace id (indexed).
    """
    rows = _bodies(
        ctx,
        "SELECT body FROM log_entries WHERE kind = ?"
        " AND json_extract(body, '$.data.case_ref') = ? ORDER BY seq DESC LIMIT ?",
        (str(LogKind.BEKENDHEID_ROUND), case_ref, MAX_ROUNDS + 1),
    )
    more = len(rows) > MAX_ROUNDS
    rounds: list[CaseRound] = []
    for body in rows[:MAX_ROUNDS]:
        conv = body.get("convenant") or {}
        data = body.get("data") or {}
        trace_id = str(body.get("trace_id"))
        r = CaseRound(
            trace_id=trace_id,
            time=str(body.get("time")),
            convenant_id=conv.get("id"),
            convenant_version=conv.get("version"),
            purpose=body.get("purpose"),
            user=body.get("actor"),
            subject_count=len(body.get("subjects") or ()),
        )
        answers = {
            str(a.get("counterparty")): a
            for a in _bodies(
                ctx,
                "SELECT body FROM log_entries WHERE trace_id = ? AND kind = ? ORDER BY seq",
                (trace_id, str(LogKind.BEKENDHEID_ASKED)),
            )
        }
        for partner in [str(p) for p in data.get("partners") or ()]:
            a = answers.get(partner)
            if a is None:
                r.partners.append(PartnerOutcome(partner, None))
                continue
            subjects = (a.get("data") or {}).get("subjects") or ()
            r.partners.append(
                PartnerOutcome(
                    partner, a.get("outcome"), a.get("reason"), tuple(str(s) for s in subjects)
                )
            )
        r.askable = round_hits(ctx, trace_id)
        rounds.append(r)
    by_round = {r.trace_id: r for r in rounds}
    other = []
    for ask in received.asks_of_case(ctx.conn, case_ref, list(by_round)):
        doc = ask_json(ctx, ask)
        if ask.round_trace_id in by_round:
            by_round[ask.round_trace_id].asks.append(doc)
        else:
            other.append(doc)
    return Case(case_ref, rounds, other, more)
