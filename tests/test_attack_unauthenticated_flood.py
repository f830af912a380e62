"""Anyone who can reach the port sends bad requests: the log must not grow with them.

10,000 evaluate requests reach a real node over a real loopback socket: signed by keys no
peer card names, or carrying a random signature under a real partner's key, many claiming
to come from that real partner with a case reference holding a BSN and a name. None is
logged on its own and none of their text is stored; one ``peer.unauthenticated`` entry
per window and claimed requester counts them. Meanwhile the node answers a real round of
its federation correctly, and the privacy officer's report shows the counts without
blaming the partner whose name was used.

The per-address limit (``peer_guard``) is lifted for the flood, so every request goes
through authentication (the part under test); a second test shows the limit itself.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import secrets
import time
from typing import Any

import aiohttp
import nacl.signing
import structlog

from node.flows import unauthenticated
from node.http.app import GUARD
from node.http.peer_guard import PeerGuard
from node.protocol import jws, oprf
from node.protocol.bekendheid import EVALUATE_REQUEST_TYP, EvaluateRequest
from tests.federation import (
    BSN_KEY,
    CONVENANT_ID,
    EVALUATE_PATH,
    JOSE,
    PURPOSE,
    Federation,
    log_entries,
    statuses,
)

TARGET = "politie-test"
REAL_REQUESTER = "vh-test"
FLOOD = 10_000
CASE_REF = "BSN 123456782 Jan Pieter van der Berg"
JAN_BSN = {"kind": "bsn", "bsn": "123456782"}


def _payload(requester: str, n: int, now: Any) -> dict[str, Any]:
    _, elements = oprf.blind([BSN_KEY])
    return EvaluateRequest(
        requester=requester,
        partner=TARGET,
        convenant_id=CONVENANT_ID,
        convenant_version=1,
        purpose=PURPOSE,
        case_ref=CASE_REF,
        requesting_user=f"indringer-{n}",
        trace_id=secrets.token_hex(16),
        nonce=jws.b64u_encode(secrets.token_bytes(16)),
        issued_at=now,
        blinded_elements=(jws.b64u_encode(elements[0]),),
    ).wire()


def _bad_bodies(fed: Federation) -> tuple[list[bytes], int]:
    """The flood: a third under unknown keys claiming the real requester, a third with a
    random signature under the real requester's key id, a third in invented names.
    Returns the bodies and how many claim the real requester."""
    now = fed.nodes[REAL_REQUESTER].clock.now()
    real_kid = fed.nodes[REAL_REQUESTER].ctx.keys.signing_fingerprint
    stranger = nacl.signing.SigningKey.generate()
    bodies: list[bytes] = []
    claiming_real = 0
    for n in range(FLOOD):
        kind = n % 3
        requester = REAL_REQUESTER if kind < 2 else f"indringer-{n}"
        doc = jws.sign(EVALUATE_REQUEST_TYP, _payload(requester, n, now), stranger)
        obj = doc.to_json()
        if kind == 1:  # the real partner's key id, a signature nobody made
            obj["signatures"][0]["protected"] = _protected_with_kid(
                obj["signatures"][0]["protected"], real_kid
            )
            obj["signatures"][0]["signature"] = jws.b64u_encode(secrets.token_bytes(64))
        claiming_real += kind < 2
        bodies.append(jsonlib.dumps(obj).encode())
    return bodies, claiming_real


def _protected_with_kid(protected: str, kid: str) -> str:
    header = jsonlib.loads(jws.b64u_decode(protected))
    header["kid"] = kid
    return jws.b64u_encode(jws.canonical(header))


async def _flood(url: str, bodies: list[bytes]) -> dict[int, int]:
    """POST every body over a few reused connections; HTTP statuses counted."""
    seen: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    connector = aiohttp.TCPConnector(limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url, data=body, headers={"Content-Type": JOSE}) as resp:
                    await resp.read()
                    seen[resp.status] = seen.get(resp.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(8)))
    return seen


async def test_ten_thousand_bad_requests_leave_a_handful_of_entries(
    federation: Federation,
) -> None:
    fed = federation
    fed.register(TARGET, {"ref": "BPS-1", "themes": ["veelplegers"], "identifiers": [JAN_BSN]})
    target = fed.nodes[TARGET]
    assert target.runner is not None
    guard = target.runner.app[GUARD]
    guard.burst = guard.per_minute = 10**9  # every bad request reaches authentication
    bodies, claiming_real = _bad_bodies(fed)
    before = len(log_entries(target))
    nonces_before = target.ctx.conn.execute("SELECT count(*) FROM seen_nonces").fetchone()[0]

    started = time.monotonic()
    flood = asyncio.create_task(_flood(target.url + EVALUATE_PATH, bodies))
    await asyncio.sleep(0.5)
    during = await fed.query(REAL_REQUESTER, [JAN_BSN])  # a real round, mid-flood
    seen = await flood
    elapsed = time.monotonic() - started
    after = await fed.query(REAL_REQUESTER, [JAN_BSN])
    print(f"\n{FLOOD} bad requests in {elapsed:.1f} s ({FLOOD / elapsed:.0f}/s)")

    assert seen == {403: FLOOD}  # each a signed refusal, none a server error
    for result in (during, after):
        assert statuses(result)[TARGET] == "hit"
        assert set(statuses(result).values()) <= {"hit", "no_hit"}

    unauthenticated.flush(target.ctx, everything=True)
    new = log_entries(target)[before:]
    counted = [e for e in new if e["kind"] == "peer.unauthenticated"]
    real = [e for e in new if e["kind"] != "peer.unauthenticated"]
    # The two real rounds: one evaluation each (and tag-set syncs); the flood: at most
    # two windows for each of two claims (the real partner and "unknown").
    assert all(e["counterparty"] == REAL_REQUESTER for e in real), real
    assert len(real) <= 4
    assert 2 <= len(counted) <= 4
    assert sum(e["data"]["requests"] for e in counted) == FLOOD
    by_claim: dict[str | None, int] = {}
    for e in counted:
        assert e["counterparty"] is None
        assert e["actor"] is None
        by_claim[e["data"]["claimed"]] = (
            by_claim.get(e["data"]["claimed"], 0) + e["data"]["requests"]
        )
    assert by_claim == {REAL_REQUESTER: claiming_real, None: FLOOD - claiming_real}
    reasons: dict[str, int] = {}
    for e in counted:
        for r, n in e["data"]["reasons"].items():
            reasons[r] = reasons.get(r, 0) + n
    assert reasons == {
        "unknown_requester": FLOOD - FLOOD // 3,
        "bad_signature": FLOOD // 3,
    }

    # Nothing the flood sent is stored: not in the log, not as a nonce.
    stored = jsonlib.dumps(log_entries(target))
    for text in ("123456782", "Jan Pieter", "indringer"):
        assert text not in stored
    nonces_after = target.ctx.conn.execute("SELECT count(*) FROM seen_nonces").fetchone()[0]
    assert nonces_after - nonces_before <= 4  # the real rounds' requests only

    status, report = await fed.api(TARGET, "GET", "/api/v1/audit/report", role="privacy_officer")
    assert status == 200
    assert {(r["claimed"], r["reason"]): r["count"] for r in report["unauthenticated"]} == {
        (REAL_REQUESTER, "unknown_requester"): claiming_real - FLOOD // 3,
        (REAL_REQUESTER, "bad_signature"): FLOOD // 3,
        (None, "unknown_requester"): FLOOD - claiming_real,
    }
    # An unauthenticated source, never an anomaly of the party whose name was used.
    assert not [a for a in report["anomalies"] if a["party"] == REAL_REQUESTER]
    claimed = [a for a in report["anomalies"] if a["claimed"] == REAL_REQUESTER]
    assert {(a["rule"], a["party"]) for a in claimed} == {("unauthenticated_requests", None)}
    answered = {r["requester"]: r for r in report["answered"]}
    assert answered[REAL_REQUESTER]["evaluations"] == 2  # only the real rounds


async def test_an_address_that_sends_bad_requests_is_limited(federation: Federation) -> None:
    fed = federation
    target = fed.nodes[TARGET]
    assert target.runner is not None
    guard = target.runner.app[GUARD]
    guard.per_minute, guard.burst = 0.001, 20
    assert fed.session is not None
    url = target.url + EVALUATE_PATH

    async def post(body: bytes) -> tuple[int, Any]:
        assert fed.session is not None
        async with fed.session.post(url, data=body, headers={"Content-Type": JOSE}) as resp:
            return resp.status, await resp.read()

    bodies, _ = _bad_bodies_small(fed, 21)
    answers = [await post(b) for b in bodies]
    assert [s for s, _ in answers[:20]] == [403] * 20
    status, body = answers[20]
    assert status == 429
    problem = jsonlib.loads(body)
    assert problem["type"] == "https://vhnode.nl/problems/too_many_bad_requests"
    # Malformed bodies count as bad too, and are now refused before they are read.
    assert (await post(b"{not json"))[0] == 429
    # Only the flood's address is limited: the buckets are per address.
    assert len(guard) == 1


def _bad_bodies_small(fed: Federation, n: int) -> tuple[list[bytes], int]:
    now = fed.nodes[REAL_REQUESTER].clock.now()
    stranger = nacl.signing.SigningKey.generate()
    docs = [
        jws.sign(EVALUATE_REQUEST_TYP, _payload(REAL_REQUESTER, i, now), stranger) for i in range(n)
    ]
    return [jsonlib.dumps(d.to_json()).encode() for d in docs], n


def test_good_requests_take_no_token_and_addresses_are_bounded() -> None:
    guard = PeerGuard(per_minute=60.0, burst=2, max_addresses=16)
    assert not guard.blocked("10.0.0.1", 0.0)
    guard.bad("10.0.0.1", 0.0)
    guard.bad("10.0.0.1", 0.0)
    assert guard.blocked("10.0.0.1", 0.5)
    assert not guard.blocked("10.0.0.1", 2.5)  # one token back after a second
    for i in range(100):
        guard.bad(f"10.1.0.{i}", 3.0)
    assert len(guard) == 16  # the least recently seen addresses were forgotten


async def test_a_thousand_forged_requests_leave_no_text_and_blame_nobody(
    federation: Federation,
) -> None:
    """Issue 9's attacker: 1,000 evaluate requests with a random signature under the real
    requester's key id, a BSN and a name in the case reference. Not a byte of that text
    in the database files, one bounded aggregate in the log, no process log line with it,
    and the report shows an unauthenticated source — no anomaly of the real requester."""
    fed = federation
    target = fed.nodes[TARGET]
    assert target.runner is not None
    guard = target.runner.app[GUARD]
    guard.burst = guard.per_minute = 10**9  # every request reaches authentication
    now = fed.nodes[REAL_REQUESTER].clock.now()
    real_kid = fed.nodes[REAL_REQUESTER].ctx.keys.signing_fingerprint
    stranger = nacl.signing.SigningKey.generate()
    bodies = []
    for n in range(1_000):
        obj = jws.sign(EVALUATE_REQUEST_TYP, _payload(REAL_REQUESTER, n, now), stranger).to_json()
        obj["signatures"][0]["protected"] = _protected_with_kid(
            obj["signatures"][0]["protected"], real_kid
        )
        obj["signatures"][0]["signature"] = jws.b64u_encode(secrets.token_bytes(64))
        bodies.append(jsonlib.dumps(obj).encode())
    before = len(log_entries(target))
    with structlog.testing.capture_logs() as lines:
        seen = await _flood(target.url + EVALUATE_PATH, bodies)
        unauthenticated.flush(target.ctx, everything=True)
    assert seen == {403: 1_000}

    new = log_entries(target)[before:]
    assert [e["kind"] for e in new] == ["peer.unauthenticated"]  # one window, one claim
    assert new[0]["data"]["requests"] == 1_000
    assert new[0]["data"]["reasons"] == {"bad_signature": 1_000}
    assert (new[0]["counterparty"], new[0]["actor"]) == (None, None)
    assert len(jsonlib.dumps(new[0])) < 1_000  # bounded: counts, not requests

    target.ctx.conn.execute("PRAGMA wal_checkpoint(FULL)")
    stored = b"".join(p.read_bytes() for p in sorted(target.home.glob("node.db*")))
    logged = jsonlib.dumps(lines, default=str).encode()
    for text in ("123456782", "Jan Pieter", "van der Berg", "indringer"):
        for form in (text.encode(), text.encode("utf-16-le")):
            assert form not in stored, text
        assert text.encode() not in logged, text

    status, report = await fed.api(TARGET, "GET", "/api/v1/audit/report", role="privacy_officer")
    assert status == 200
    assert report["unauthenticated"] == [
        {"claimed": REAL_REQUESTER, "reason": "bad_signature", "count": 1_000}
    ]
    assert not [a for a in report["anomalies"] if a["party"] == REAL_REQUESTER]
    assert not [a for a in report["anomalies"] if a["rule"] in ("burst", "many_subjects")]
    (source,) = [a for a in report["anomalies"] if a["rule"] == "unauthenticated_requests"]
    assert (source["party"], source["claimed"], source["count"]) == (None, REAL_REQUESTER, 1_000)
    assert REAL_REQUESTER not in {r["requester"] for r in report["answered"]}
