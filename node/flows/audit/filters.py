"""Which log entries a report counts: the privacy officer's filters, parsed and matched."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from node.errors import InputError
from node.flows.audit import Entry
from node.flows.audit.kinds import ASK_KINDS, PROVIDER_KINDS, UNAUTHENTICATED_KIND

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_FILTER_CHARS = 128


@dataclass(frozen=True)
class Filters:
    """An entry counts when it matches every filter given. A filter on a field the entry
    does not have (a purpose on a peer.added entry, say) leaves the entry out."""

    start: date | None = None
    """First day, inclusive, UTC."""
    end: date | None = None
    """Last day, inclusive, UTC."""
    convenant: str | None = None
    purpose: str | None = None
    party: str | None = None
    """The requesting party: the counterparty of a request this node answered, or this
    node itself for the rounds it asked."""
    user: str | None = None
    """The entry's ``actor``: a local user, or at a partner the remote requesting user."""

    def time_from(self) -> str | None:
        return None if self.start is None else f"{self.start.isoformat()}T00:00:00Z"

    def time_before(self) -> str | None:
        # Exclusive bound: the day after ``end``, so every second of ``end`` is in.
        return (
            None if self.end is None else f"{(self.end + timedelta(days=1)).isoformat()}T00:00:00Z"
        )

    def as_json(self) -> dict[str, str | None]:
        return {
            "from": None if self.start is None else self.start.isoformat(),
            "to": None if self.end is None else self.end.isoformat(),
            "convenant": self.convenant,
            "purpose": self.purpose,
            "party": self.party,
            "user": self.user,
        }


def parse_date(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    if not _DATE.fullmatch(value.strip()):
        raise InputError(f"{name}: {value[:32]!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value.strip())
    except ValueError as e:
        raise InputError(f"{name}: {value[:32]!r} is not a date (YYYY-MM-DD)") from e


def _filter_text(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > _MAX_FILTER_CHARS or not value.isprintable():
        raise InputError(f"{name}: at most {_MAX_FILTER_CHARS} printable characters")
    return value


def parse_filters(
    *,
    start: str | None = None,
    end: str | None = None,
    convenant: str | None = None,
    purpose: str | None = None,
    party: str | None = None,
    user: str | None = None,
) -> Filters:
    """Filters from text (CLI options, query parameters); InputError names the bad one."""
    f = Filters(
        start=parse_date("from", start),
        end=parse_date("to", end),
        convenant=_filter_text("convenant", convenant),
        purpose=_filter_text("purpose", purpose),
        party=_filter_text("party", party),
        user=_filter_text("user", user),
    )
    if f.start is not None and f.end is not None and f.start > f.end:
        raise InputError(f"from ({f.start}) is after to ({f.end})")
    return f


def requesting_party(entry: Entry, node_id: str) -> str | None:
    """Who asked: the counterparty of a request we answered, us for our own rounds, and
    nobody for entries that record no request (admin, registry, publications)."""
    if entry.kind in PROVIDER_KINDS:
        return entry.counterparty
    if entry.kind in ASK_KINDS:
        return node_id
    if entry.kind == UNAUTHENTICATED_KIND:
        # Only claimed: filtering on a party also shows what was sent in its name.
        claimed = entry.data.get("claimed")
        return claimed if isinstance(claimed, str) else None
    return None


def matches(entry: Entry, f: Filters, node_id: str) -> bool:
    t_from, t_before = f.time_from(), f.time_before()
    # Bodies hold "YYYY-MM-DDTHH:MM:SSZ" (§2.2): text order is time order.
    if t_from is not None and entry.time < t_from:
        return False
    if t_before is not None and entry.time >= t_before:
        return False
    if f.convenant is not None and entry.convenant_id != f.convenant:
        return False
    if f.purpose is not None and entry.purpose != f.purpose:
        return False
    if f.party is not None and requesting_party(entry, node_id) != f.party:
        return False
    return f.user is None or entry.actor == f.user
