"""The node's one source of time: the wall clock, a monotonic clock, and waiting.

Every flow reads time through the ``Clock`` its context carries, so a test holds the
clock (``ManualClock``) and sets or advances it instead of sleeping: expiry, retention,
freshness windows and rate-limit refills then happen exactly when the test says, however
loaded the machine is. The pure layers (node/protocol, node/policy) never read a clock;
their callers pass ``now`` in.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back, for intervals (rate-limit buckets)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` have passed on this clock (the retention task's pause)."""
        ...


class SystemClock:
    """The machine's clocks: what a running node uses."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def _aware_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("a clock holds timezone-aware times")
    return when.astimezone(UTC)


class ManualClock:
    """A clock that stands still until told: ``set`` steps the wall clock (as an operator
    or NTP would; the monotonic clock does not move), ``advance`` lets time pass on both
    and wakes whoever sleeps past the new time. Tests hold one per node."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware_utc(start)
        self._monotonic = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed: asyncio.Event | None = None

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def set(self, when: datetime) -> None:
        self._now = _aware_utc(when)

    def advance(self, by: timedelta | float) -> None:
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ValueError("time passes forwards; use set() to step the wall clock back")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds
        due = [s for s in self._sleepers if s[0] <= self._monotonic]
        self._sleepers = [s for s in self._sleepers if s[0] > self._monotonic]
        for _, woken in due:
            if not woken.done():
                woken.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._monotonic + seconds, woken))
        self._signal()
        try:
            await woken
        finally:
            self._sleepers = [s for s in self._sleepers if s[1] is not woken]

    @property
    def sleepers(self) -> int:
        return len(self._sleepers)

    async def until_sleeping(self) -> None:
        """Return once some task sleeps on this clock: a background loop that finished its
        pass and waits for its next one. No wall time decides when."""
        while not self._sleepers:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def _signal(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
