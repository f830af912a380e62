"""Unauthenticated peer requests, counted per time window instead of logged one by one
(docs/protocol.md §6.6, docs/audit.md "Unauthenticated requests").

A request that fails §6.6 steps 3–6 (no known, valid key of the claimed requester signed
it, it is not addressed to this node, or it is not fresh) was not made by that requester
now: whoever can reach the port can send it. It must not grow the log one entry per
request, and its text (user, case reference) must not reach the log at all. So it is
only counted here, per window and per claimed requester, and written as one entry per
window and claim by the caller's flush.

Bounded: a claim that names no known peer counts under one ``None`` bucket, reasons and
message names come from this node's own fixed sets, so memory grows with the number of
known peers and open windows, never with what a sender chooses. Pure: the caller passes
the time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WindowCount:
    """One closed window of one claimed requester (``None``: a node id no peer has)."""

    start: float
    end: float
    claimed: str | None
    reasons: dict[str, int]
    messages: dict[str, int]

    @property
    def requests(self) -> int:
        return sum(self.reasons.values())


@dataclass
class UnauthenticatedTally:
    window_seconds: float
    _open: dict[tuple[int, str | None], tuple[Counter[str], Counter[str]]] = field(
        default_factory=dict
    )

    def add(self, claimed: str | None, message: str, reason: str, now: float) -> None:
        """Count one request; ``claimed`` must already be a known peer's id or None."""
        key = (int(now // self.window_seconds), claimed)
        reasons, messages = self._open.setdefault(key, (Counter(), Counter()))
        reasons[reason] += 1
        messages[message] += 1

    def take_closed(self, now: float, *, everything: bool = False) -> list[WindowCount]:
        """Remove and return the windows that ended by ``now`` (all of them at shutdown)."""
        current = int(now // self.window_seconds)
        out: list[WindowCount] = []
        for key in sorted(self._open, key=lambda k: (k[0], k[1] or "")):
            index, claimed = key
            if index >= current and not everything:
                continue
            reasons, messages = self._open.pop(key)
            out.append(
                WindowCount(
                    start=index * self.window_seconds,
                    end=(index + 1) * self.window_seconds,
                    claimed=claimed,
                    reasons=dict(sorted(reasons.items())),
                    messages=dict(sorted(messages.items())),
                )
            )
        return out

    def pending(self) -> int:
        """Requests counted and not yet taken."""
        return sum(sum(r.values()) for r, _ in self._open.values())
