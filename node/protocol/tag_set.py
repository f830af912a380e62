"""Tag sets: a partner's in-scope subjects as OPRF-derived tags (docs/protocol.md §6.4).

Pure functions. A tag is the first 16 bytes of the RFC 9497 Finalize output for a subject
key under the partner's convenant key; 128 bits keep both accidental collisions and false
hits negligible at 10^7 subjects while halving what requesters store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from itertools import pairwise

from node.errors import InvalidTagSet

TAG_BYTES = 16


def tag_from_output(output: bytes) -> bytes:
    return output[:TAG_BYTES]


BUCKETS = 256
EMPTY_BUCKET_DIGEST = hashlib.sha256(b"").digest()


def bucket_digest(bucket_tags: Iterable[bytes]) -> bytes:
    """SHA-256 over the concatenation of one bucket's tags in ascending byte order."""
    h = hashlib.sha256()
    for t in sorted(bucket_tags):
        h.update(t)
    return h.digest()


def combine(bucket_digests: Sequence[bytes]) -> bytes:
    """The set digest from the 256 bucket digests, bucket 0 first."""
    if len(bucket_digests) != BUCKETS:
        raise ValueError("combine needs exactly 256 bucket digests")
    return hashlib.sha256(b"".join(bucket_digests)).digest()


def digest(tags: Iterable[bytes]) -> bytes:
    """Two-level set digest (§6.4): bucket b holds the tags whose first byte is b;
    ``SHA256(bucket_digest(0) || … || bucket_digest(255))``."""
    buckets: list[list[bytes]] = [[] for _ in range(BUCKETS)]
    for t in tags:
        buckets[t[0]].append(t)
    return combine([bucket_digest(b) for b in buckets])


def pack(tags: Iterable[bytes]) -> bytes:
    return b"".join(sorted(tags))


def unpack(blob: bytes) -> list[bytes]:
    """Split a packed blob; rejects a ragged length, unsorted order or duplicates."""
    if len(blob) % TAG_BYTES:
        raise InvalidTagSet("tag blob length is not a multiple of 16")
    tags = [blob[i : i + TAG_BYTES] for i in range(0, len(blob), TAG_BYTES)]
    for a, b in pairwise(tags):
        if a >= b:
            raise InvalidTagSet("tags must be strictly ascending")
    return tags


def apply_delta(
    current: set[bytes], added: Iterable[bytes], removed: Iterable[bytes]
) -> set[bytes]:
    """The next set, refusing a delta that adds a present tag or removes an absent one."""
    out = set(current)
    for t in removed:
        if t not in out:
            raise InvalidTagSet("delta removes a tag that is not in the set")
        out.remove(t)
    for t in added:
        if t in out:
            raise InvalidTagSet("delta adds a tag that is already in the set")
        out.add(t)
    return out
