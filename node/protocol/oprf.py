"""RFC 9497 VOPRF (mode 0x01) with the ciphersuite ristretto255-SHA512.

What is implemented, by RFC 9497 section:

* §3.1 ``CreateContextString``: ``"OPRFV1-" || I2OSP(0x01, 1) || "-" || "ristretto255-SHA512"``.
* §3.2 ``GenerateKeyPair`` is :func:`public_key` over a random scalar; §3.2.1
  ``DeriveKeyPair`` is :func:`derive_key_pair`.
* §3.3.1 ``Blind`` (:func:`blind`), §3.3.2 VOPRF ``BlindEvaluate`` and ``Finalize``
  (:func:`blind_evaluate`, :func:`finalize`), batched as §3.3.2 allows: one DLEQ proof
  covers every element of a request. §3.3.1/§3.3.2 ``Evaluate`` is :func:`evaluate`.
* §2.2 DLEQ proofs: ``GenerateProof`` with ``ComputeCompositesFast`` on the server,
  ``VerifyProof`` with ``ComputeComposites`` on the client.
* §4.1 the group: ``HashToGroup`` is hash_to_ristretto255 (RFC 9380 Appendix B) with
  ``expand_message_xmd`` over SHA-512 (RFC 9380 §5.3.1); ``HashToScalar`` is the same
  expander to 64 bytes, read little-endian and reduced mod the group order; scalars are
  32 bytes little-endian, elements 32-byte ristretto255 encodings.
* §3.3 / §4.1 input validation: every element received is decoded and must not be the
  identity; every scalar received must be canonical. §5.1 (input limits): an input longer
  than 2^16-1 bytes cannot be framed by ``I2OSP(len(input), 2)`` and is refused.

libsodium (via ``rbcl``) does the group arithmetic. Its errors never escape: every public
function turns them into :class:`~node.errors.ProtocolError`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeAlias, TypeVar

import rbcl

from node.errors import InvalidGroupElement, InvalidProof, ProtocolError, VhnodeError

__all__ = [
    "ELEMENT_BYTES",
    "MAX_BATCH",
    "MAX_INPUT_BYTES",
    "MODE_VOPRF",
    "OUTPUT_BYTES",
    "PROOF_BYTES",
    "SCALAR_BYTES",
    "SUITE",
    "RandomScalar",
    "blind",
    "blind_evaluate",
    "derive_key_pair",
    "evaluate",
    "finalize",
    "hash_to_group",
    "public_key",
    "validate_element",
]

SUITE = "ristretto255-SHA512"
MODE_VOPRF = 0x01
ELEMENT_BYTES = 32
SCALAR_BYTES = 32
PROOF_BYTES = 64
OUTPUT_BYTES = 64

RandomScalar: TypeAlias = Callable[[], bytes]
"""Returns a uniformly random non-zero scalar (32 bytes, little-endian)."""

# RFC 9497 §5.1: the input is framed with a two-byte length.
MAX_INPUT_BYTES = 0xFFFF
# The composite transcript frames the element index as I2OSP(i, 2) (§2.2.1).
MAX_BATCH = 0x10000

_CONTEXT = b"OPRFV1-" + bytes([MODE_VOPRF]) + b"-" + SUITE.encode("ascii")
_DST_HASH_TO_GROUP = b"HashToGroup-" + _CONTEXT
_DST_HASH_TO_SCALAR = b"HashToScalar-" + _CONTEXT
_DST_DERIVE_KEY_PAIR = b"DeriveKeyPair" + _CONTEXT
_SEED_DST = b"Seed-" + _CONTEXT

_IDENTITY = bytes(ELEMENT_BYTES)
_ZERO_SCALAR = bytes(SCALAR_BYTES)
_SCALAR_PAD = bytes(SCALAR_BYTES)
# I2OSP(Ne, 2): every element in a transcript is framed with this prefix.
_LEN_ELEMENT = ELEMENT_BYTES.to_bytes(2, "big")
_SEED_TRANSCRIPT_TAIL = len(_SEED_DST).to_bytes(2, "big") + _SEED_DST
_LEN_SEED = hashlib.sha512().digest_size.to_bytes(2, "big")

# rbcl ships no type information; binding the few functions used to typed names keeps
# mypy --strict meaningful and saves an attribute lookup per call in the hot loops.
_is_valid_point: Callable[[bytes], bool] = rbcl.crypto_core_ristretto255_is_valid_point
_from_hash: Callable[[bytes], bytes] = rbcl.crypto_core_ristretto255_from_hash
_point_add: Callable[[bytes, bytes], bytes] = rbcl.crypto_core_ristretto255_add
_scalar_random: Callable[[], bytes] = rbcl.crypto_core_ristretto255_scalar_random
_scalar_reduce: Callable[[bytes], bytes] = rbcl.crypto_core_ristretto255_scalar_reduce
_scalar_invert: Callable[[bytes], bytes] = rbcl.crypto_core_ristretto255_scalar_invert
_scalar_mul: Callable[[bytes, bytes], bytes] = rbcl.crypto_core_ristretto255_scalar_mul
_scalar_sub: Callable[[bytes, bytes], bytes] = rbcl.crypto_core_ristretto255_scalar_sub
# Secret scalars are checked non-zero and elements non-identity before these run, so the
# product can never be the identity, which is the one case libsodium refuses.
_mul: Callable[[bytes, bytes], bytes] = rbcl.crypto_scalarmult_ristretto255
_mul_base: Callable[[bytes], bytes] = rbcl.crypto_scalarmult_ristretto255_base
# A proof's scalars and composite weights come from the peer or a hash and may be zero;
# these variants return the identity encoding instead of failing, as the RFC's group does.
_mul_any: Callable[[bytes, bytes], bytes] = rbcl.crypto_scalarmult_ristretto255_allow_scalar_zero
_mul_base_any: Callable[[bytes], bytes] = rbcl.crypto_scalarmult_ristretto255_base_allow_scalar_zero

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _sodium_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Report whatever libsodium or the rbcl wrapper raises as a ProtocolError.

    The argument checks below should make these unreachable; this is the backstop that
    keeps a bare ValueError/RuntimeError from ever reaching the HTTP layer.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except VhnodeError:
            raise
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ProtocolError(f"ristretto255 operation failed: {exc}") from exc

    return wrapper


def _xmd_sha512_64(dst: bytes) -> Callable[[bytes], bytes]:
    """expand_message_xmd (RFC 9380 §5.3.1) with SHA-512 and len_in_bytes = 64, for one DST.

    With len_in_bytes equal to the hash size, ell = 1 and uniform_bytes is b_1. The
    zero block Z_pad is hashed once here and the state copied per call, and the fixed
    suffixes are built once, since every protocol step hashes with one of three DSTs.
    """
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    dst_prime = dst + bytes([len(dst)])
    # l_i_b_str = I2OSP(64, 2), then I2OSP(0, 1), then DST_prime.
    tail_b0 = b"\x00\x40\x00" + dst_prime
    tail_b1 = b"\x01" + dst_prime
    z_pad_state = hashlib.sha512(bytes(128))
    sha512 = hashlib.sha512

    def expand(msg: bytes) -> bytes:
        h = z_pad_state.copy()
        h.update(msg)
        h.update(tail_b0)
        return sha512(h.digest() + tail_b1).digest()

    return expand


_expand_hash_to_group = _xmd_sha512_64(_DST_HASH_TO_GROUP)
_expand_hash_to_scalar = _xmd_sha512_64(_DST_HASH_TO_SCALAR)
_expand_derive_key_pair = _xmd_sha512_64(_DST_DERIVE_KEY_PAIR)


def _hash_to_scalar(msg: bytes) -> bytes:
    return _scalar_reduce(_expand_hash_to_scalar(msg))


def _is_canonical_scalar(s: bytes) -> bool:
    # DeserializeScalar (§4.1) must fail for values >= the group order.
    return _scalar_reduce(s + _SCALAR_PAD) == s


def _check_secret_scalar(s: bytes, what: str) -> None:
    if not isinstance(s, bytes) or len(s) != SCALAR_BYTES:
        raise ProtocolError(f"{what} must be {SCALAR_BYTES} bytes")
    if s == _ZERO_SCALAR or not _is_canonical_scalar(s):
        raise ProtocolError(f"{what} is not a non-zero canonical ristretto255 scalar")


def _check_input(data: bytes, index: int) -> None:
    if not isinstance(data, bytes):
        raise ProtocolError(f"input {index} must be bytes")
    if len(data) > MAX_INPUT_BYTES:
        raise ProtocolError(f"input {index} is longer than {MAX_INPUT_BYTES} bytes")


def _check_batch_size(n: int) -> None:
    if n == 0:
        raise ProtocolError("a VOPRF batch needs at least one element")
    if n > MAX_BATCH:
        raise ProtocolError(f"a VOPRF batch holds at most {MAX_BATCH} elements")


def _element_error(element: object, what: str) -> str | None:
    if not isinstance(element, bytes):
        return f"{what} must be bytes"
    if len(element) != ELEMENT_BYTES:
        return f"{what} is {len(element)} bytes, expected {ELEMENT_BYTES}"
    # libsodium accepts the identity's all-zero encoding as valid; the RFC rejects it.
    if element == _IDENTITY:
        return f"{what} is the identity element"
    if not _is_valid_point(element):
        return f"{what} is not a valid ristretto255 encoding"
    return None


def _validate(element: bytes, what: str) -> None:
    problem = _element_error(element, what)
    if problem is not None:
        raise InvalidGroupElement(problem)


def validate_element(element: bytes) -> None:
    """DeserializeElement's checks (§4.1): 32 bytes, canonical encoding, not the identity.

    Raises :class:`~node.errors.InvalidGroupElement`.
    """
    _validate(element, "group element")


def _draw(random_scalar: RandomScalar | None) -> bytes:
    if random_scalar is None:
        # libsodium already excludes zero and non-canonical values.
        return _scalar_random()
    s = random_scalar()
    _check_secret_scalar(s, "random scalar")
    return s


@_sodium_errors
def public_key(sk: bytes) -> bytes:
    """ScalarMultGen(skS) (§3.2)."""
    _check_secret_scalar(sk, "secret key")
    return _mul_base(sk)


@_sodium_errors
def derive_key_pair(seed: bytes, info: bytes) -> tuple[bytes, bytes]:
    """DeriveKeyPair (§3.2.1): a deterministic (skS, pkS) from a 32-byte seed and info."""
    if not isinstance(seed, bytes) or len(seed) != SCALAR_BYTES:
        raise ProtocolError(f"DeriveKeyPair seed must be {SCALAR_BYTES} bytes")
    if not isinstance(info, bytes) or len(info) > MAX_INPUT_BYTES:
        raise ProtocolError(f"DeriveKeyPair info must be bytes of at most {MAX_INPUT_BYTES}")
    derive_input = seed + len(info).to_bytes(2, "big") + info
    for counter in range(256):
        sk = _scalar_reduce(_expand_derive_key_pair(derive_input + bytes([counter])))
        if sk != _ZERO_SCALAR:
            return sk, _mul_base(sk)
    raise ProtocolError("DeriveKeyPairError: no non-zero scalar within 256 attempts")


def _hash_to_group(data: bytes) -> bytes:
    element = _from_hash(_expand_hash_to_group(data))
    if element == _IDENTITY:
        raise ProtocolError("input maps to the identity element")
    return element


@_sodium_errors
def hash_to_group(data: bytes) -> bytes:
    """HashToGroup (§4.1) with DST ``"HashToGroup-" || contextString`` for VOPRF mode.

    Raises ProtocolError in the (negligible) case the RFC calls InvalidInputError: the
    input maps to the identity, which would make its output independent of the key.
    """
    if not isinstance(data, bytes):
        raise ProtocolError("hash_to_group input must be bytes")
    return _hash_to_group(data)


@_sodium_errors
def blind(
    inputs: Sequence[bytes], random_scalar: RandomScalar | None = None
) -> tuple[list[bytes], list[bytes]]:
    """Blind (§3.3.1) for each input. Returns (blinds, blinded_elements).

    ``random_scalar`` defaults to libsodium's scalar_random; tests inject the RFC's blinds.
    Blinds are drawn in input order, one per input, before hashing it, as in the RFC.
    """
    blinds: list[bytes] = []
    blinded: list[bytes] = []
    for i, data in enumerate(inputs):
        _check_input(data, i)
        r = _draw(random_scalar)
        blinds.append(r)
        blinded.append(_mul(r, _hash_to_group(data)))
    return blinds, blinded


def _composite_weights(pk: bytes, cs: Sequence[bytes], ds: Sequence[bytes]) -> list[bytes]:
    """The d_i of ComputeComposites / ComputeCompositesFast (§2.2.1, §2.2.2)."""
    seed = hashlib.sha512(_LEN_ELEMENT + pk + _SEED_TRANSCRIPT_TAIL).digest()
    prefix = _LEN_SEED + seed
    return [
        _hash_to_scalar(
            prefix + i.to_bytes(2, "big") + _LEN_ELEMENT + c + _LEN_ELEMENT + d + b"Composite"
        )
        for i, (c, d) in enumerate(zip(cs, ds, strict=True))
    ]


def _weighted_sum(weights: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    acc = _mul_any(weights[0], elements[0])
    for w, e in zip(weights[1:], elements[1:], strict=True):
        acc = _point_add(acc, _mul_any(w, e))
    return acc


def _challenge(pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes) -> bytes:
    return _hash_to_scalar(
        _LEN_ELEMENT
        + pk
        + _LEN_ELEMENT
        + m
        + _LEN_ELEMENT
        + z
        + _LEN_ELEMENT
        + t2
        + _LEN_ELEMENT
        + t3
        + b"Challenge"
    )


@_sodium_errors
def blind_evaluate(
    sk: bytes,
    pk: bytes,
    blinded_elements: Sequence[bytes],
    random_scalar: RandomScalar | None = None,
) -> tuple[list[bytes], bytes]:
    """VOPRF BlindEvaluate (§3.3.2), batched under one proof. Returns (evaluated, proof).

    The proof is GenerateProof(skS, G, pkS, blindedElements, evaluatedElements) (§2.2.1)
    serialised as SerializeScalar(c) || SerializeScalar(s). ``random_scalar`` supplies
    the proof's nonce r; tests inject the RFC's ProofRandomScalar.
    """
    _check_secret_scalar(sk, "secret key")
    _validate(pk, "public key")
    _check_batch_size(len(blinded_elements))
    for i, c in enumerate(blinded_elements):
        _validate(c, f"blinded element {i}")
    evaluated = [_mul(sk, c) for c in blinded_elements]
    # ComputeCompositesFast: knowing k, Z = k*M saves the second weighted sum.
    weights = _composite_weights(pk, blinded_elements, evaluated)
    m = _weighted_sum(weights, blinded_elements)
    z = _mul_any(sk, m)
    r = _draw(random_scalar)
    t2 = _mul_base(r)
    t3 = _mul_any(r, m)
    c = _challenge(pk, m, z, t2, t3)
    s = _scalar_sub(r, _scalar_mul(c, sk))
    return evaluated, c + s


def _verify_proof(
    pk: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes], proof: bytes
) -> None:
    """VerifyProof(G, pkS, C, D, proof) (§2.2.2); raises InvalidProof."""
    if not isinstance(proof, bytes) or len(proof) != PROOF_BYTES:
        raise InvalidProof(f"proof must be {PROOF_BYTES} bytes")
    c = proof[:SCALAR_BYTES]
    s = proof[SCALAR_BYTES:]
    if not (_is_canonical_scalar(c) and _is_canonical_scalar(s)):
        raise InvalidProof("proof scalar is not canonical")
    weights = _composite_weights(pk, blinded, evaluated)
    m = _weighted_sum(weights, blinded)
    z = _weighted_sum(weights, evaluated)
    t2 = _point_add(_mul_base_any(s), _mul_any(c, pk))
    t3 = _point_add(_mul_any(s, m), _mul_any(c, z))
    if not hmac.compare_digest(_challenge(pk, m, z, t2, t3), c):
        raise InvalidProof()


def _batch_invert(scalars: Sequence[bytes]) -> list[bytes]:
    """Montgomery's trick: n inverses for one inversion and 3(n-1) multiplications."""
    prefix = [scalars[0]]
    for s in scalars[1:]:
        prefix.append(_scalar_mul(prefix[-1], s))
    inv = _scalar_invert(prefix[-1])
    out = [_ZERO_SCALAR] * len(scalars)
    for i in range(len(scalars) - 1, 0, -1):
        out[i] = _scalar_mul(inv, prefix[i - 1])
        inv = _scalar_mul(inv, scalars[i])
    out[0] = inv
    return out


def _output(data: bytes, element: bytes) -> bytes:
    """The Finalize/Evaluate hash (§3.3.1): Hash(len||input||len||element||"Finalize")."""
    return hashlib.sha512(
        len(data).to_bytes(2, "big") + data + _LEN_ELEMENT + element + b"Finalize"
    ).digest()


@_sodium_errors
def finalize(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    blinded_elements: Sequence[bytes],
    evaluated_elements: Sequence[bytes],
    pk: bytes,
    proof: bytes,
) -> list[bytes]:
    """VOPRF Finalize (§3.3.2) for a batch answered under one proof.

    Checks the server's elements and pk, verifies the batched DLEQ proof, then unblinds
    and hashes. Raises InvalidGroupElement, InvalidProof, or ProtocolError (lists of
    different lengths, bad inputs or blinds).
    """
    n = len(inputs)
    if not (len(blinds) == len(blinded_elements) == len(evaluated_elements) == n):
        raise ProtocolError(
            "finalize needs one blind, blinded and evaluated element per input; got "
            f"{n} inputs, {len(blinds)} blinds, {len(blinded_elements)} blinded, "
            f"{len(evaluated_elements)} evaluated"
        )
    _check_batch_size(n)
    for i, data in enumerate(inputs):
        _check_input(data, i)
    for i, r in enumerate(blinds):
        _check_secret_scalar(r, f"blind {i}")
    _validate(pk, "public key")
    for i, e in enumerate(blinded_elements):
        _validate(e, f"blinded element {i}")
    for i, e in enumerate(evaluated_elements):
        _validate(e, f"evaluated element {i}")
    _verify_proof(pk, blinded_elements, evaluated_elements, proof)
    inverses = _batch_invert(blinds)
    return [
        _output(data, _mul(inv, e))
        for data, inv, e in zip(inputs, inverses, evaluated_elements, strict=True)
    ]


@_sodium_errors
def evaluate(sk: bytes, inputs: Sequence[bytes]) -> list[bytes]:
    """Evaluate (§3.3.1, used unchanged by §3.3.2): the PRF output computed with skS.

    Equals what a client's :func:`finalize` returns for the same input and key.
    """
    _check_secret_scalar(sk, "secret key")
    outputs: list[bytes] = []
    for i, data in enumerate(inputs):
        _check_input(data, i)
        outputs.append(_output(data, _mul(sk, _hash_to_group(data))))
    return outputs
