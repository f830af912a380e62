"""A limit on bad peer requests per source address (docs/protocol.md §12.1).

Peer endpoints take requests from anyone who can reach the port; a request is only
authenticated by its signature, after it has been read and parsed. A source address that
sends bad requests — refused as unauthenticated (§6.6 steps 3–6), or answered with a 4xx
problem (malformed, too large) — takes one token per bad request from its bucket. An
empty bucket makes every ``/peer/`` request from that address a 429 problem, answered
before its body is read, until the bucket refills. Good requests take no token, so a
partner that only sends what it signed is never limited by this.

Bounded memory: at most ``peer_addresses_tracked`` buckets; the least recently seen
address is forgotten first (it then starts again with a full bucket).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from node.policy.rate_limit import TokenBucket


@dataclass
class PeerGuard:
    per_minute: float
    burst: int
    max_addresses: int
    _buckets: OrderedDict[str, TokenBucket] = field(default_factory=OrderedDict)

    def _bucket(self, address: str) -> TokenBucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = TokenBucket(self.per_minute / 60.0, float(self.burst))
            self._buckets[address] = bucket
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
        return bucket

    def blocked(self, address: str, now: float) -> bool:
        """No token left for this address (none is taken by asking)."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return False
        # take(0) refills by the time passed without spending anything.
        bucket.take(0, now)
        return bucket.tokens < 1

    def bad(self, address: str, now: float) -> None:
        """Count one bad request of this address."""
        self._bucket(address).take(1, now)

    def __len__(self) -> int:
        return len(self._buckets)
