"""One detail exchange (docs/protocol.md §14), end to end, and its crypto-only bound.

Run as ``python bench/bench_detail.py`` (``--requests N``, default 200).

Four real nodes from the test federation (tests/detail_fixtures.py) in one event loop on
127.0.0.1: the coordinator at vh-test asks politie-test for one category through the
local API (``POST /api/v1/details``), which signs a detail request, lets politie-test
authenticate it, bind it to the round, resolve and check the hit proof, decide, read the
text, seal and sign it, and then verifies, opens, re-encrypts at rest and stores the
answer — two SQLite write transactions on each side. Timed per request: the wall time of
that API call. Printed next to it: the crypto-only bound of the same run — per exchange
four Ed25519 signatures (request, response, one signed log tree head on each side) and
three verifications (request, response, the partner's tree head), one OPRF evaluation
(the proof check), one sealed box each way (seal and open) and one XChaCha20-Poly1305
encryption at rest.

Also timed: a poll of an answered request (the requester's ``POST .../poll``), which
re-runs the policy and seals the texts again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import nacl.bindings
import nacl.public
import nacl.signing
from bench_common import machine_line, percentile, seconds_per_call

from node.protocol import oprf
from tests.detail_fixtures import CONTACT, detail_federation, hit_round
from tests.federation import PURPOSE


def crypto_bound_ms() -> float:
    """Crypto of one exchange on one core, measured now (ms)."""
    signing = nacl.signing.SigningKey.generate()
    signed = signing.sign(b"x" * 900)
    verify = signing.verify_key
    sk, _ = oprf.derive_key_pair(b"\x01" * 32, b"bench")
    box_key = nacl.public.PrivateKey.generate()
    sealed_box = nacl.public.SealedBox(box_key.public_key)
    ciphertext = sealed_box.encrypt(b"y" * 300)
    opener = nacl.public.SealedBox(box_key)
    key, nonce = b"\x02" * 32, b"\x03" * 24
    costs = {
        "sign": seconds_per_call(lambda: signing.sign(b"x" * 900), 0.3),
        "verify": seconds_per_call(lambda: verify.verify(signed), 0.3),
        "oprf": seconds_per_call(lambda: oprf.evaluate(sk, [b"bsn:123456782"]), 0.3),
        "seal": seconds_per_call(lambda: sealed_box.encrypt(b"y" * 300), 0.3),
        "open": seconds_per_call(lambda: opener.decrypt(ciphertext), 0.3),
        "at_rest": seconds_per_call(
            lambda: nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
                b"y" * 300, b"aad", nonce, key
            ),
            0.3,
        ),
    }
    per_exchange = (
        4 * costs["sign"]
        + 3 * costs["verify"]
        + costs["oprf"]
        + costs["seal"]
        + costs["open"]
        + costs["at_rest"]
    )
    return per_exchange * 1000


async def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as root:
        fed = await detail_federation(Path(root))
        try:
            round_ = await hit_round(fed)
            body = {
                "round_trace_id": round_["trace_id"],
                "partner": "politie-test",
                "categories": [CONTACT],
                "purpose": PURPOSE,
            }
            times: list[float] = []
            traces: list[str] = []
            for _ in range(n):
                started = time.perf_counter()
                status, ask = await fed.api("vh-test", "POST", "/api/v1/details", json=body)
                times.append((time.perf_counter() - started) * 1000)
                assert status == 200, ask
                assert ask["categories"][0]["status"] == "delivered", ask
                traces.append(ask["trace_id"])
            polls: list[float] = []
            for trace in traces[: max(1, n // 4)]:
                started = time.perf_counter()
                status, ask = await fed.api("vh-test", "POST", f"/api/v1/details/{trace}/poll")
                polls.append((time.perf_counter() - started) * 1000)
                assert status == 200, ask
        finally:
            await fed.close()
    bound = crypto_bound_ms()
    print(machine_line())
    print(
        f"detail request (API to API, 1 category, {n} requests): "
        f"p50 {percentile(times, 50):.1f} ms, p99 {percentile(times, 99):.1f} ms; "
        f"crypto-only bound {bound:.2f} ms per exchange "
        f"(p50 = {percentile(times, 50) / bound:.0f}x bound)"
    )
    print(
        f"poll of an answered request ({len(polls)} polls): p50 {percentile(polls, 50):.1f} ms, "
        f"p99 {percentile(polls, 99):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.requests))


if __name__ == "__main__":
    main()
