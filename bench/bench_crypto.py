"""Per-operation cost of the node's cryptography: the ceiling every other benchmark hits.

Run as ``python bench/bench_crypto.py``. Other bench scripts import :func:`crypto_bound`
to print, next to their own figures, what the crypto alone allows on the same machine
in the same run.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nacl.signing
import rbcl

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.protocol import oprf

_SEED = bytes(range(32))
_INFO = b"bench key"


def _seconds_per_call(fn: Callable[[], object], budget: float) -> float:
    """Mean wall time of ``fn`` over repeated calls filling about ``budget`` seconds."""
    fn()  # warm caches and lazy imports outside the measurement
    calls = 0
    start = time.perf_counter()
    deadline = start + budget
    now = start
    while now < deadline:
        fn()
        calls += 1
        now = time.perf_counter()
    return (now - start) / calls


def _keys() -> tuple[bytes, bytes]:
    return oprf.derive_key_pair(_SEED, _INFO)


def _inputs(n: int) -> list[bytes]:
    return [os.urandom(16) for _ in range(n)]


def _measure_scalarmult(budget: float) -> float:
    s = rbcl.crypto_core_ristretto255_scalar_random()
    p = rbcl.crypto_core_ristretto255_random()
    return _seconds_per_call(lambda: rbcl.crypto_scalarmult_ristretto255(s, p), budget)


def _measure_hash_to_group(budget: float) -> float:
    data = os.urandom(16)
    return _seconds_per_call(lambda: oprf.hash_to_group(data), budget)


def _measure_evaluate_per_element(budget: float, batch: int = 100) -> float:
    sk, _ = _keys()
    inputs = _inputs(batch)
    return _seconds_per_call(lambda: oprf.evaluate(sk, inputs), budget) / batch


def _ed25519(budget: float) -> tuple[float, float]:
    key = nacl.signing.SigningKey.generate()
    verify_key = key.verify_key
    message = os.urandom(256)
    signed = key.sign(message)
    sign = _seconds_per_call(lambda: key.sign(message), budget)
    verify = _seconds_per_call(lambda: verify_key.verify(signed.message, signed.signature), budget)
    return sign, verify


def crypto_bound(budget: float = 0.25) -> dict[str, float]:
    """Operations per second for the primitives that bound the node's throughput.

    Keys: scalarmult, hash_to_group, ed25519_sign, ed25519_verify, evaluate_per_element.
    Takes about ``6 * budget`` seconds.
    """
    sign, verify = _ed25519(budget)
    return {
        "scalarmult": 1.0 / _measure_scalarmult(budget),
        "hash_to_group": 1.0 / _measure_hash_to_group(budget),
        "ed25519_sign": 1.0 / sign,
        "ed25519_verify": 1.0 / verify,
        "evaluate_per_element": 1.0 / _measure_evaluate_per_element(budget),
    }


def _row(name: str, seconds: float) -> None:
    print(f"{name:<40} {seconds * 1e6:>10.1f} µs {1.0 / seconds:>12,.0f} ops/s")


def main() -> None:
    budget = 0.5
    sk, pk = _keys()
    print(f"RFC 9497 VOPRF {oprf.SUITE}, libsodium via rbcl; Ed25519 via PyNaCl")
    print(f"{'operation':<40} {'per op':>13} {'throughput':>18}")

    _row("hash_to_group", _measure_hash_to_group(budget))
    _row("scalar multiplication", _measure_scalarmult(budget))
    s = rbcl.crypto_core_ristretto255_scalar_random()
    _row(
        "scalar inversion",
        _seconds_per_call(lambda: rbcl.crypto_core_ristretto255_scalar_invert(s), budget),
    )

    for n in (1, 10, 100):
        inputs = _inputs(n)
        blinds, blinded = oprf.blind(inputs)
        evaluated, proof = oprf.blind_evaluate(sk, pk, blinded)
        server = functools.partial(oprf.blind_evaluate, sk, pk, blinded)
        _row(f"blind_evaluate, batch {n} (per element)", _seconds_per_call(server, budget) / n)
        client = functools.partial(oprf.finalize, inputs, blinds, blinded, evaluated, pk, proof)
        _row(f"finalize, batch {n} (per element)", _seconds_per_call(client, budget) / n)

    _row("evaluate (per element, batch 100)", _measure_evaluate_per_element(budget))
    sign, verify = _ed25519(budget)
    _row("ed25519 sign (256-byte message)", sign)
    _row("ed25519 verify (256-byte message)", verify)


if __name__ == "__main__":
    main()
