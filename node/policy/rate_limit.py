"""Evaluation rate limit per requester and convenant: a token bucket (docs/protocol.md §7.3).

Counted in evaluated elements, not requests, so batching subjects does not widen the
window for enumerating a partner's list. Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate_per_second: float
    burst: float
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, n: int, now: float) -> bool:
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_second)
        self.updated = now
        if n > self.tokens:
            return False
        self.tokens -= n
        return True

    def retry_after(self, n: int) -> float:
        return max(0.0, (n - self.tokens) / self.rate_per_second)


@dataclass
class RateLimiter:
    per_minute: float
    burst: int
    buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict)

    def allow(self, requester: str, convenant_id: str, n: int, now: float) -> bool:
        key = (requester, convenant_id)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(self.per_minute / 60.0, float(self.burst))
        return bucket.take(n, now)
