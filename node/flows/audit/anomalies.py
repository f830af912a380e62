"""What looks unusual in the log: the anomaly rules of the report and their thresholds.

Each rule turns the counts :func:`node.flows.audit.report.build` gathered in its one pass over the
entries into :class:`Anomaly` rows (docs/audit.md "Unusual patterns").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from node.errors import InputError
from node.protocol.models import rfc3339

DEFAULT_SUBJECTS_PER_DAY = 200
DEFAULT_REQUESTS_PER_MINUTE = 60
BURST_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Thresholds:
    subjects_per_day: int = DEFAULT_SUBJECTS_PER_DAY
    """``many_subjects`` fires above this many subjects asked by one requesting party
    under one convenant in one UTC day."""
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    """``burst`` fires above this many requests by one party under one convenant within
    any 60 seconds."""

    def as_json(self) -> dict[str, int]:
        return {
            "subjects_per_day": self.subjects_per_day,
            "requests_per_minute": self.requests_per_minute,
        }


def _positive(name: str, value: str | int | None, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InputError(f"{name}: {value[:32]!r} is not a whole number")
        value = int(value)
    if not 1 <= value <= 10**9:
        raise InputError(f"{name}: must be from 1 to 1000000000")
    return value


def parse_thresholds(
    subjects_per_day: str | int | None = None, requests_per_minute: str | int | None = None
) -> Thresholds:
    return Thresholds(
        subjects_per_day=_positive("subjects_per_day", subjects_per_day, DEFAULT_SUBJECTS_PER_DAY),
        requests_per_minute=_positive(
            "requests_per_minute", requests_per_minute, DEFAULT_REQUESTS_PER_MINUTE
        ),
    )


@dataclass(frozen=True)
class Anomaly:
    rule: str
    """``many_subjects``, ``burst``, ``rate_limited``, ``suspect_requester``,
    ``unauthenticated_requests``, ``detail_probe``, ``forked_peer_log``,
    ``oprf_key_conflict``, ``restored_log``."""
    party: str | None
    convenant: str | None
    window: str
    """A UTC day, or ``first/last`` timestamps of the requests concerned."""
    count: int
    threshold: int | None = None
    reason: str | None = None
    side: str | None = None
    """For refusals: ``given`` (this node refused) or ``received`` (a partner refused us)."""
    detail: str = ""
    claimed: str | None = None
    """``unauthenticated_requests`` only: the node id the requests named, unproven. Never
    ``party``: anyone can send a request in a partner's name."""

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "party": self.party,
            "claimed": self.claimed,
            "convenant": self.convenant,
            "window": self.window,
            "count": self.count,
            "threshold": self.threshold,
            "reason": self.reason,
            "side": self.side,
            "detail": self.detail,
        }


def epoch(time_text: str) -> int | None:
    """Seconds since 1970 of an entry's time; None if the text is not a timestamp."""
    try:
        return int(datetime.fromisoformat(time_text).timestamp())
    except ValueError:
        return None


@dataclass
class Window:
    """Occurrences of one (party, convenant): per second for bursts, first/last time."""

    per_second: Counter[int] = field(default_factory=Counter)
    first: str = ""
    last: str = ""
    count: int = 0

    def add(self, time_text: str, n: int = 1) -> None:
        if not self.first or time_text < self.first:
            self.first = time_text
        self.last = max(self.last, time_text)
        self.count += n


def _bursts(per_second: Mapping[int, int], limit: int) -> list[tuple[int, int, int]]:
    """Episodes in which more than ``limit`` requests fall within 60 seconds.

    A sliding window over the seconds with requests; overlapping windows that exceed the
    limit merge into one episode ``(first second, last second, peak count)``, so a long
    burst is one line, not one per second.
    """
    secs = sorted(per_second)
    episodes: list[tuple[int, int, int]] = []
    lo = 0
    total = 0
    for t in secs:
        total += per_second[t]
        while secs[lo] <= t - BURST_WINDOW_SECONDS:
            total -= per_second[secs[lo]]
            lo += 1
        if total <= limit:
            continue
        start = secs[lo]
        if episodes and start <= episodes[-1][1]:
            first, _, peak = episodes[-1]
            episodes[-1] = (first, t, max(peak, total))
        else:
            episodes.append((start, t, total))
    return episodes


def _utc_text(epoch: int) -> str:
    return rfc3339(datetime.fromtimestamp(epoch, UTC))


def many_subjects(
    node_id: str,
    th: Thresholds,
    elements_per_day: Mapping[tuple[str, str, str], int],
    pseudonyms_per_day: Mapping[tuple[str, str, str], set[str]],
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for (party, conv, day), n in sorted(elements_per_day.items()):
        if n > th.subjects_per_day:
            detail = "subjects in evaluate requests (blind: a repeated subject counts again)"
            out.append(
                Anomaly(
                    "many_subjects", party, conv or None, day, n, th.subjects_per_day, detail=detail
                )
            )
    for (party, conv, day), seen in sorted(pseudonyms_per_day.items()):
        if len(seen) > th.subjects_per_day:
            detail = f"distinct subjects in rounds asked by {node_id}"
            out.append(
                Anomaly(
                    "many_subjects",
                    party,
                    conv or None,
                    day,
                    len(seen),
                    th.subjects_per_day,
                    detail=detail,
                )
            )
    return out


def burst_anomalies(
    th: Thresholds, windows: Mapping[tuple[str, str], Window], what: str
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for (party, conv), window in sorted(windows.items()):
        for first, last, peak in _bursts(window.per_second, th.requests_per_minute):
            out.append(
                Anomaly(
                    "burst",
                    party,
                    conv or None,
                    f"{_utc_text(first)}/{_utc_text(last)}",
                    peak,
                    th.requests_per_minute,
                    detail=f"peak {what} within {BURST_WINDOW_SECONDS} s",
                )
            )
    return out


def refusal_anomalies(
    rate_limited: Mapping[tuple[str, str, str], Window],
    suspect: Mapping[tuple[str, str, str], Window],
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for (side, party, conv), w in sorted(rate_limited.items()):
        out.append(
            Anomaly(
                "rate_limited",
                party,
                conv or None,
                f"{w.first}/{w.last}",
                w.count,
                reason="rate_limited",
                side=side,
                detail="refused for exceeding the evaluation rate limit",
            )
        )
    for (party, conv, reason), w in sorted(suspect.items()):
        out.append(
            Anomaly(
                "suspect_requester",
                party,
                conv or None,
                f"{w.first}/{w.last}",
                w.count,
                reason=reason,
                side="given",
                detail="request from an unknown, revoked or impersonated party",
            )
        )
    return out


def probe_anomalies(probes: Mapping[tuple[str, str, str], Window]) -> list[Anomaly]:
    """Detail requests or hit notices refused for a forged proof or a foreign round."""
    return [
        Anomaly(
            "detail_probe",
            party,
            conv or None,
            f"{w.first}/{w.last}",
            w.count,
            reason=reason,
            side="given",
            detail="detail asked about someone this party never found in a round here",
        )
        for (party, conv, reason), w in sorted(probes.items())
    ]


_ALERTS = {
    "peer.log_forked": ("forked_peer_log", "the partner signed two different logs of one size"),
    "peer.oprf_key_conflict": (
        "oprf_key_conflict",
        "the partner showed two OPRF keys for one key epoch (docs/protocol.md §9.6)",
    ),
}


def forked_log_anomalies(alerts: Mapping[tuple[str, str], Window]) -> list[Anomaly]:
    """Alert entries per (kind, partner): a partner signed two different logs of one size
    (``forked_peer_log``), or showed two OPRF keys for one epoch (``oprf_key_conflict``)."""
    return [
        Anomaly(
            _ALERTS[kind][0],
            party,
            None,
            f"{w.first}/{w.last}",
            w.count,
            detail=f"{kind}: {_ALERTS[kind][1]}",
        )
        for (kind, party), w in sorted(alerts.items())
    ]


def restored_log_anomalies(restores: Mapping[tuple[str, str], Window]) -> list[Anomaly]:
    """Restores per (kind, node): a partner (``peer.log_restored``) or this node
    (``log.restored``) was restored from a backup and opened a new log epoch with a signed
    statement admitting lost entries (docs/protocol.md §9.7)."""
    return [
        Anomaly(
            "restored_log",
            party,
            None,
            f"{w.first}/{w.last}",
            w.count,
            detail=f"{kind}: restored from a backup; log entries after the backup are lost",
        )
        for (kind, party), w in sorted(restores.items())
    ]


def unauthenticated_anomalies(
    counts: Mapping[tuple[str, str], Window],
) -> list[Anomaly]:
    """Requests refused at §6.6 steps 3–6, per claimed requester ("" for a name no peer
    has) and reason: an unauthenticated source, never a party's anomaly. ``party`` is
    null and the claim is in ``claimed``: the party did not (provably) send them, so they
    count towards none of its figures."""
    out: list[Anomaly] = []
    for (claimed, reason), w in sorted(counts.items()):
        detail = (
            f"requests claiming to come from {claimed} that it did not provably send "
            "(unknown or revoked key, bad signature, not for this node, or not fresh)"
            if claimed
            else "requests in the name of a node this node does not know"
        )
        out.append(
            Anomaly(
                "unauthenticated_requests",
                None,
                None,
                f"{w.first}/{w.last}",
                w.count,
                reason=reason,
                side="given",
                detail=detail,
                claimed=claimed or None,
            )
        )
    return out
