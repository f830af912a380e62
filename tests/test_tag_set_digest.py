"""The two-level tag-set digest (docs/protocol.md §6.4) and its incremental upkeep.

The pure function is checked against a straightforward reference; the provider's stored
buckets and the requester's copy are checked against the pure function after random
sequences of changes on real nodes; a damaged bucket row at the requester is recomputed
(never trusted over the tags held), while a copy whose tags do not match stays `invalid`.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from typing import Any

import pytest

from node.protocol import tag_set
from node.store import tag_sets
from tests.federation import CONVENANT_ID, Federation, partner_result

PARTNER = "politie-test"
REQUESTER = "vh-test"


def reference_digest(tags: list[bytes]) -> bytes:
    """§6.4 spelled out: bucket b = tags with first byte b, each hashed in ascending order;
    the digest hashes the 256 bucket digests in bucket order."""
    out = b""
    for b in range(256):
        members = sorted(t for t in tags if t[0] == b)
        out += hashlib.sha256(b"".join(members)).digest()
    return hashlib.sha256(out).digest()


def _random_tags(rng: random.Random, n: int, first: int | None = None) -> list[bytes]:
    out: set[bytes] = set()
    while len(out) < n:
        t = rng.randbytes(16)
        out.add(t if first is None else bytes([first]) + t[1:])
    return list(out)


# --- the pure function ----------------------------------------------------------------


def test_empty_set_digest_is_sha256_of_256_empty_bucket_digests() -> None:
    expected = hashlib.sha256(hashlib.sha256(b"").digest() * 256).digest()
    assert tag_set.digest([]) == expected == tag_sets.EMPTY_DIGEST


def test_bucket_digest_and_combine() -> None:
    a, b = bytes([7]) + bytes(15), bytes([7]) + b"\x01" * 15
    assert tag_set.bucket_digest([b, a]) == hashlib.sha256(a + b).digest()
    assert tag_set.bucket_digest([]) == hashlib.sha256(b"").digest()
    with pytest.raises(ValueError, match="256"):
        tag_set.combine([bytes(32)] * 255)


@pytest.mark.parametrize("seed", range(8))
def test_pure_digest_equals_reference(seed: int) -> None:
    rng = random.Random(seed)
    cases: list[list[bytes]] = [
        [],
        _random_tags(rng, 1),
        _random_tags(rng, 50, first=rng.randrange(256)),  # all in one bucket
        _random_tags(rng, 50, first=255),  # the last bucket (open upper bound)
        _random_tags(rng, 50, first=0),
        [bytes([b]) + rng.randbytes(15) for b in range(256)],  # every bucket once
        _random_tags(rng, rng.randrange(1, 3000)),  # spans most buckets, several per bucket
    ]
    for tags in cases:
        expected = reference_digest(tags)
        assert tag_set.digest(tags) == expected
        shuffled = list(tags)
        rng.shuffle(shuffled)
        assert tag_set.digest(shuffled) == expected  # order of input does not matter
    # One changed tag changes the digest.
    tags = cases[-1]
    assert tag_set.digest(tags[1:]) != tag_set.digest(tags)


# --- provider and requester on real nodes ---------------------------------------------


def _address(n: int) -> dict[str, Any]:
    return {"kind": "address", "postcode": "4811 AB", "house_number": n}


def _reg(ref: str, *identifiers: dict[str, Any]) -> dict[str, Any]:
    return {"ref": ref, "themes": ["veelplegers"], "identifiers": list(identifiers)}


def _many(prefix: str, houses: range) -> list[dict[str, Any]]:
    """Registrations of at most 16 addresses each (the registry's limit) covering houses."""
    hs = list(houses)
    return [
        _reg(f"{prefix}-{i}", *(_address(h) for h in hs[i : i + 16])) for i in range(0, len(hs), 16)
    ]


def _provider_buckets(conn: sqlite3.Connection) -> dict[int, bytes]:
    return dict(
        conn.execute(
            "SELECT bucket, digest FROM tag_set_buckets WHERE convenant_id = ?", (CONVENANT_ID,)
        )
    )


def _peer_tags(conn: sqlite3.Connection) -> list[bytes]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT tag FROM peer_tags WHERE partner = ? AND convenant_id = ? ORDER BY tag",
            (PARTNER, CONVENANT_ID),
        )
    ]


def _peer_buckets(conn: sqlite3.Connection) -> dict[int, bytes]:
    return dict(
        conn.execute(
            "SELECT bucket, digest FROM peer_tag_buckets WHERE partner = ? AND convenant_id = ?",
            (PARTNER, CONVENANT_ID),
        )
    )


def _check_provider(conn: sqlite3.Connection) -> tag_sets.Head:
    members = tag_sets.members(conn, CONVENANT_ID)
    head = tag_sets.head(conn, CONVENANT_ID)
    assert head.count == len(members)
    assert head.digest == tag_set.digest(members) == reference_digest(members)
    buckets = _provider_buckets(conn)
    assert buckets == {
        b: tag_set.bucket_digest(t for t in members if t[0] == b) for b in range(256)
    }
    return head


def _check_requester(fed: Federation, head: tag_sets.Head) -> None:
    conn = fed.nodes[REQUESTER].ctx.conn
    held = tag_sets.peer_head(conn, PARTNER, CONVENANT_ID)
    assert held is not None
    assert (held.version, held.count, held.digest) == (head.version, head.count, head.digest)
    tags = _peer_tags(conn)
    assert len(tags) == head.count
    assert tag_set.digest(tags) == head.digest
    assert _peer_buckets(conn) == {
        b: tag_set.bucket_digest(t for t in tags if t[0] == b) for b in range(256)
    }


async def _delete(fed: Federation, ref: str) -> None:
    status, body = await fed.api(PARTNER, "DELETE", f"/api/v1/registrations/{ref}", role="source")
    assert status == 200, body


async def test_incremental_digests_follow_random_changes(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The requester's O(n) fallback must never be needed when nothing is damaged.
    fallbacks: list[str] = []
    real_peer_digest = tag_sets.peer_digest

    def counting(conn: sqlite3.Connection, partner: str, convenant_id: str) -> tuple[int, bytes]:
        fallbacks.append(partner)
        return real_peer_digest(conn, partner, convenant_id)

    monkeypatch.setattr(tag_sets, "peer_digest", counting)
    rng = random.Random(20261123)
    conn = federation.nodes[PARTNER].ctx.conn
    live: dict[str, list[int]] = {}
    next_house = 1
    for step in range(40):
        op = rng.random()
        if op < 0.55 or not live:
            # New registrations of 1–40 addresses in one batch (one version, many tags).
            houses = range(next_house, next_house + rng.randrange(1, 41))
            next_house += len(houses)
            regs = _many(f"BPS-{step}", houses)
            federation.register(PARTNER, *regs)
            for r in regs:
                live[r["ref"]] = [i["house_number"] for i in r["identifiers"]]
        elif op < 0.7:
            # A second registration sharing an address: reference counted, same set.
            ref = f"BPS-{step}"
            shared = rng.choice(list(live.values()))[0]
            federation.register(PARTNER, _reg(ref, _address(shared)))
            live[ref] = [shared]
        elif op < 0.85:
            # A changed registration: some tags leave, some enter, in one version.
            ref = rng.choice(list(live))
            keep = live[ref][: max(1, len(live[ref]) // 2)]
            keep = keep[:12]
            extra = list(range(next_house, next_house + rng.randrange(0, 5)))
            next_house += len(extra)
            federation.register(PARTNER, _reg(ref, *(_address(h) for h in keep + extra)))
            live[ref] = keep + extra
        else:
            ref = rng.choice(list(live))
            await _delete(federation, ref)
            del live[ref]
        head = _check_provider(conn)
        if step % 5 == 4:
            # The requester syncs (a delta after the first time) and holds the same set.
            result = await federation.query(REQUESTER, [_address(1)])
            politie = partner_result(result, PARTNER)
            assert politie["status"] in ("hit", "no_hit"), politie
            _check_requester(federation, head)
    assert tag_sets.head(conn, CONVENANT_ID).version > 20
    assert fallbacks == []


async def test_provider_backfills_missing_buckets(federation: Federation) -> None:
    conn = federation.nodes[PARTNER].ctx.conn
    federation.register(PARTNER, *_many("BPS-1", range(1, 40)))
    _check_provider(conn)
    # A database from before the buckets: no rows. The next publish computes all 256.
    conn.execute("DELETE FROM tag_set_buckets")
    federation.register(PARTNER, _reg("BPS-2", _address(500)))
    _check_provider(conn)
    assert tag_sets.provider_digest(conn, CONVENANT_ID) == tag_sets.head(conn, CONVENANT_ID).digest


async def _sync(fed: Federation) -> dict[str, Any]:
    return partner_result(await fed.query(REQUESTER, [_address(1)]), PARTNER)


def _new_bucket(before: list[bytes], after: list[bytes]) -> int:
    (added,) = set(after) - set(before)
    return added[0]


async def test_tampered_bucket_row_at_requester_is_recomputed(federation: Federation) -> None:
    pconn = federation.nodes[PARTNER].ctx.conn
    rconn = federation.nodes[REQUESTER].ctx.conn
    federation.register(PARTNER, *_many("BPS-1", range(1, 60)))
    assert (await _sync(federation))["status"] == "hit"
    before = tag_sets.members(pconn, CONVENANT_ID)
    federation.register(PARTNER, _reg("BPS-2", _address(1000)))
    touched = _new_bucket(before, tag_sets.members(pconn, CONVENANT_ID))
    # Damage a bucket row the coming delta does not touch: the incremental digest then
    # disagrees with the head, so the requester recomputes from the tags it holds (which
    # are right) and accepts, repairing the row.
    victim = (touched + 1) % 256
    rconn.execute(
        "UPDATE peer_tag_buckets SET digest = ? WHERE partner = ? AND convenant_id = ? "
        "AND bucket = ?",
        (bytes(32), PARTNER, CONVENANT_ID, victim),
    )
    politie = await _sync(federation)
    assert politie["status"] == "hit"
    _check_requester(federation, _check_provider(pconn))


async def test_damaged_copy_at_requester_is_invalid(federation: Federation) -> None:
    pconn = federation.nodes[PARTNER].ctx.conn
    rconn = federation.nodes[REQUESTER].ctx.conn
    federation.register(PARTNER, *_many("BPS-1", range(1, 60)))
    assert (await _sync(federation))["status"] == "hit"
    held_before = tag_sets.peer_head(rconn, PARTNER, CONVENANT_ID)
    before = tag_sets.members(pconn, CONVENANT_ID)
    federation.register(PARTNER, _reg("BPS-2", _address(1000)))
    touched = _new_bucket(before, tag_sets.members(pconn, CONVENANT_ID))
    # A tag we hold that the partner never had, in the bucket the delta touches: neither
    # the incremental nor the recomputed digest matches the signed head.
    rconn.execute(
        "INSERT INTO peer_tags (partner, convenant_id, tag) VALUES (?,?,?)",
        (PARTNER, CONVENANT_ID, bytes([touched]) + b"\x5a" * 15),
    )
    politie = await _sync(federation)
    assert politie["status"] == "invalid", politie
    # Nothing of the failed sync was stored: the copy's head is the old one.
    assert tag_sets.peer_head(rconn, PARTNER, CONVENANT_ID) == held_before
