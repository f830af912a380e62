"""Stage 2 of the demo: detail from a partner after a hit, checked against what it registered.

The coordinator asks the detail partner (politie) for three categories of one person it
had a hit on: one the convenant shares at once, one that waits for the politie liaison,
and one it does not share for the purpose asked. The liaison lists the inbox and approves;
the partner's decision notice makes the Veiligheidshuis node poll by itself, and the
approved text arrives. Every text is compared with the one the demo registered at the
partner for that person (docs/demo.md "Stage 2").
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from node.demo.federation import DemoNode, Tokens, http_json, log_entries
from node.demo.partners import ANTECEDENTS, CONVENANT_ID, COORDINATOR_NODE, LIAISON_USER
from node.demo.scenario import DetailCase
from node.flows.detail_asking import NOTICE_ACTOR  # the actor of a poll a notice started
from node.store.log_kinds import LogKind

NOTICE_DEADLINE_SECONDS = 10.0
WAIT_SECONDS = 0.05


class _Stage:
    """The report of the stage as it fills (docs/demo.md ``DETAILS``)."""

    def __init__(self, case: DetailCase) -> None:
        self.case = case
        self.report: dict[str, Any] = {
            "partner": case.partner,
            "subject": case.subject.label,
            "query": case.query,
            "round_trace_id": None,
            "subject_index": case.subject_index,
            "purpose": case.purpose,
            "case_ref": None,
            "ref": case.ref,
            "categories": list(case.categories),
            "expected": {
                c: {"first": case.first[c], "status": status, "entries": entries}
                for c, (status, entries) in case.expected.items()
            },
            "trace_id": None,
            "asked": None,
            "first_view": None,
            "inbox_request": None,
            "hit_notice": None,
            "approval": None,
            "final_view": None,
            "received_via": None,
            "wait_s": None,
            "polled_by": [],
            "checks": [],
            "agrees": False,
        }

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.report["checks"].append({"name": name, "ok": ok, "detail": detail})
        return ok


def _by_category(view: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(view, dict):
        return {}
    return {c["category"]: c for c in view.get("categories") or ()}


def category_agrees(
    answer: Mapping[str, Any] | None, status: str, entries: list[str] | None, reason: str | None
) -> bool:
    """A category of a detail view: that status, exactly those texts (None: none visible),
    and for a denial that reason."""
    if answer is None or answer.get("status") != status:
        return False
    if status == "denied" and answer.get("reason") != reason:
        return False
    if entries is None:
        return answer.get("entries") is None and answer.get("visible") is False
    return answer.get("visible") is True and answer.get("entries") == entries


def run_detail_stage(
    nodes: Mapping[str, DemoNode],
    case: DetailCase,
    queries: list[dict[str, Any]],
    tokens: Tokens,
    notice_deadline_s: float = NOTICE_DEADLINE_SECONDS,
) -> dict[str, Any]:
    """Run stage 2 against the running federation; the ``DETAILS`` report (never raises
    on a wrong answer: a failed check is a ✗ in ``checks`` and ``agrees`` false)."""
    stage = _Stage(case)
    rep = stage.report
    vh = nodes[COORDINATOR_NODE].url
    partner = nodes[case.partner].url
    coordinator, liaison = tokens.coordinator, tokens.liaison

    round_trace_id, case_ref = _round(case, queries, vh, coordinator)
    rep["round_trace_id"], rep["case_ref"] = round_trace_id, case_ref
    if not stage.check(
        "round",
        round_trace_id is not None,
        f"a bekendheid round in which {case.partner} had a hit on the subject",
    ):
        return rep

    status, asked = http_json(
        "POST",
        vh + "/api/v1/details",
        coordinator,
        {
            "round_trace_id": round_trace_id,
            "partner": case.partner,
            "subject": case.subject_index,
            "categories": list(case.categories),
            "purpose": case.purpose,
            "case_ref": case_ref,
        },
    )
    rep["asked"] = asked
    answered = status == 200 and isinstance(asked, dict) and asked.get("outcome") == "answered"
    if not stage.check("asked", answered, _asked_detail(status, asked)):
        return rep
    trace_id = str(asked["trace_id"])
    rep["trace_id"] = trace_id

    status, first = http_json("GET", f"{vh}/api/v1/details/{trace_id}", coordinator)
    rep["first_view"] = first
    got = _by_category(first)
    for c in case.categories:
        want_status = case.first[c]
        entries = case.expected[c][1]
        shown = entries if want_status == "delivered" else None
        stage.check(
            f"first:{c}",
            status == 200 and category_agrees(got.get(c), want_status, shown, case.denied_reason),
            f"{want_status} at once"
            + (", the text registered at the partner" if shown else ", no text"),
        )

    status, inbox = http_json("GET", partner + "/api/v1/liaison/inbox", liaison)
    requests = inbox.get("requests", []) if isinstance(inbox, dict) else []
    mine = next((r for r in requests if r.get("trace_id") == trace_id), None)
    rep["inbox_request"] = mine
    pending = [
        c["category"] for c in (mine or {}).get("categories", []) if c["status"] == "pending"
    ]
    stage.check(
        "inbox",
        status == 200
        and mine is not None
        and pending == [ANTECEDENTS]
        and mine["refs"] == [case.ref],
        f"the liaison's inbox holds the request, {ANTECEDENTS} pending, for {case.ref}",
    )
    notices = inbox.get("hit_notices", []) if isinstance(inbox, dict) else []
    notice = next((n for n in notices if n.get("round_trace_id") == round_trace_id), None)
    rep["hit_notice"] = notice
    stage.check(
        "hit_notice",
        notice is not None and case.ref in notice.get("refs", []),
        f"the round's hit notice (notify_hit) reached the liaison, naming {case.ref}",
    )

    status, approval = http_json(
        "POST",
        f"{partner}/api/v1/liaison/requests/{COORDINATOR_NODE}/{trace_id}/approve",
        liaison,
        {"categories": [ANTECEDENTS]},
    )
    rep["approval"] = approval
    approved = _by_category(approval).get(ANTECEDENTS)
    stage.check(
        "approved",
        status == 200 and approved is not None and approved.get("status") == "delivered",
        f"{LIAISON_USER} approved {ANTECEDENTS}",
    )

    t = time.perf_counter()
    final, via = _await_release(vh, trace_id, coordinator, notice_deadline_s)
    rep["wait_s"] = round(time.perf_counter() - t, 3)
    rep["received_via"] = via
    rep["final_view"] = final
    got = _by_category(final)
    for c in case.categories:
        want_status, entries = case.expected[c]
        stage.check(
            f"final:{c}",
            category_agrees(got.get(c), want_status, entries, case.denied_reason),
            f"{want_status}" + (", the text registered at the partner" if entries else ", no text"),
        )
    rep["agrees"] = all(ch["ok"] for ch in rep["checks"])
    return rep


def _asked_detail(status: int, asked: Any) -> str:
    """What the check of the ask says: answered, or why not (refusal or problem+json)."""
    text = f"POST /api/v1/details: HTTP {status}"
    if status == 200 and isinstance(asked, dict):
        outcome = asked.get("outcome")
        if outcome == "answered":
            return text + ", answered by the partner"
        return text + f", {outcome}: {asked.get('reason')} {asked.get('detail') or ''}".rstrip()
    if isinstance(asked, dict):
        return text + f": {asked.get('title')}: {asked.get('detail')}"
    return text + f": {asked}"


def _round(
    case: DetailCase, queries: list[dict[str, Any]], vh: str, token: str
) -> tuple[str | None, str | None]:
    """The round the request follows: the named query's, or one asked now."""
    if case.query is not None:
        q = next((q for q in queries if q["name"] == case.query), None)
        result = q["result"] if q else None
        if not isinstance(result, dict):
            return None, None
        hit = any(
            p["partner"] == case.partner and p["subjects"][case.subject_index] == "hit"
            for p in result.get("partners", [])
        )
        return (str(result["trace_id"]), str(result["case_ref"])) if hit else (None, None)
    body = {
        "convenant_id": CONVENANT_ID,
        "purpose": case.purpose,
        "case_ref": "ZVH-BRD-2026-DETAIL",
        "subjects": [case.subject.wire],
    }
    status, result = http_json("POST", vh + "/api/v1/bekendheid", token, body)
    if status != 200 or not isinstance(result, dict):
        return None, None
    hit = any(p["partner"] == case.partner and p["subjects"] == ["hit"] for p in result["partners"])
    return (str(result["trace_id"]), str(result["case_ref"])) if hit else (None, None)


def _await_release(vh: str, trace_id: str, token: str, deadline_s: float) -> tuple[Any, str]:
    """Wait until the approved category is no longer pending at the Veiligheidshuis node.

    The partner's decision notice makes the node poll by itself ("notice"); if nothing
    changed by the deadline the demo polls once itself ("poll").
    """
    deadline = time.monotonic() + deadline_s
    url = f"{vh}/api/v1/details/{trace_id}"
    via = "poll"
    while time.monotonic() <= deadline:
        # The list carries no texts, so waiting logs no detail.viewed per look.
        status, listing = http_json("GET", vh + "/api/v1/details", token)
        asks = listing.get("details", []) if isinstance(listing, dict) else []
        ask = next((a for a in asks if a.get("trace_id") == trace_id), None)
        if status == 200 and _by_category(ask).get(ANTECEDENTS, {}).get("status") != "pending":
            via = "notice"
            break
        time.sleep(WAIT_SECONDS)
    if via == "poll":
        http_json("POST", url + "/poll", token)
    return http_json("GET", url, token)[1], via


# Stage 2 as the logs must show it (docs/protocol.md §14.11), per side, under the detail
# request's trace id: kind → the least number of entries.
PARTNER_KINDS = {
    LogKind.DETAIL_REQUESTED: 1,
    LogKind.DETAIL_DISCLOSED: 2,
    LogKind.DETAIL_PENDING: 1,
    LogKind.DETAIL_DENIED: 1,
    LogKind.DETAIL_APPROVED: 1,
    LogKind.DETAIL_NOTICE_SENT: 1,
}
REQUESTER_KINDS = {
    LogKind.DETAIL_ASKED: 1,
    LogKind.DETAIL_POLLED: 1,
    LogKind.DETAIL_RECEIVED: 2,
    LogKind.DETAIL_VIEWED: 1,
}


def check_logs(nodes: Mapping[str, DemoNode], report: dict[str, Any]) -> None:
    """After the stop: both sides logged the exchange, and no detail text is in any node's
    log or server output (the texts may travel sealed and rest encrypted, nothing else)."""
    trace_id = report["trace_id"]
    if trace_id is None:
        return
    checks = report["checks"]
    for node_id, want in ((report["partner"], PARTNER_KINDS), (COORDINATOR_NODE, REQUESTER_KINDS)):
        counts: dict[str, int] = {}
        for kind, body in log_entries(nodes[node_id].home):
            entry = json.loads(body)
            if entry.get("trace_id") == trace_id:
                counts[kind] = counts.get(kind, 0) + 1
                if kind == LogKind.DETAIL_POLLED:
                    report["polled_by"].append(entry.get("actor"))
        missing = [k for k, n in want.items() if counts.get(k, 0) < n]
        checks.append(
            {
                "name": f"logged:{node_id}",
                "ok": not missing,
                "detail": f"{node_id} logged the exchange ("
                + ", ".join(f"{k} ×{counts.get(k, 0)}" for k in want)
                + ")"
                + (f"; missing {', '.join(missing)}" if missing else ""),
            }
        )
    if report["received_via"] == "notice":
        checks.append(
            {
                "name": "notice_poll",
                "ok": NOTICE_ACTOR in report["polled_by"],
                "detail": f"{COORDINATOR_NODE} polled by itself after the decision notice "
                f"(detail.polled by {NOTICE_ACTOR})",
            }
        )
    texts = [t for e in report["expected"].values() for t in e["entries"] or ()]
    leaks = []
    for node in nodes.values():
        bodies = [body for _, body in log_entries(node.home)]
        server = node.stderr_path.read_text(errors="replace") if node.stderr_path.exists() else ""
        if any(t in body for t in texts for body in bodies):
            leaks.append(f"{node.node_id} log")
        if any(t in server for t in texts):
            leaks.append(f"{node.node_id} server output")
    checks.append(
        {
            "name": "no_text_in_logs",
            "ok": not leaks and bool(texts),
            "detail": "no detail text in any node's log or server output"
            + (f"; found in {', '.join(leaks)}" if leaks else ""),
        }
    )
    report["agrees"] = all(c["ok"] for c in checks)
