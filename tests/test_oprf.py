"""RFC 9497 VOPRF(ristretto255, SHA-512): the RFC's vectors, then the ways it must fail."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import rbcl

from node.errors import InvalidGroupElement, InvalidProof, ProtocolError
from node.protocol import oprf

h = bytes.fromhex

# RFC 9497 Appendix A.1.2 (ristretto255-SHA512, VOPRF mode).
SEED = h("a3" * 32)
KEY_INFO = h("74657374206b6579")  # "test key"
SK_SM = h("e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909")
PK_SM = h("c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e")

BLIND_1 = h("64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706")
PROOF_NONCE_1 = h("222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e")
INPUT_1 = h("00")
INPUT_2 = h("5a" * 17)
BLINDED_1 = h("863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945")
EVALUATED_1 = h("aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e")
OUTPUT_1 = h(
    "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
    "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
)
OUTPUT_2 = h(
    "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
    "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"
)


@dataclass(frozen=True)
class Vector:
    name: str
    inputs: list[bytes]
    blinds: list[bytes]
    blinded: list[bytes]
    evaluated: list[bytes]
    proof: bytes
    proof_nonce: bytes
    outputs: list[bytes]


VECTORS = [
    Vector(
        name="A.1.2 test vector 1, batch size 1",
        inputs=[INPUT_1],
        blinds=[BLIND_1],
        blinded=[BLINDED_1],
        evaluated=[EVALUATED_1],
        proof=h(
            "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06"
            "6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d"
        ),
        proof_nonce=PROOF_NONCE_1,
        outputs=[OUTPUT_1],
    ),
    Vector(
        name="A.1.2 test vector 2, batch size 1",
        inputs=[INPUT_2],
        blinds=[BLIND_1],
        blinded=[h("cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c")],
        evaluated=[h("60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468")],
        proof=h(
            "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a"
            "67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02"
        ),
        proof_nonce=PROOF_NONCE_1,
        outputs=[OUTPUT_2],
    ),
    Vector(
        name="A.1.2 test vector 3, batch size 2",
        inputs=[INPUT_1, INPUT_2],
        blinds=[BLIND_1, PROOF_NONCE_1],
        blinded=[
            BLINDED_1,
            h("90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654"),
        ],
        evaluated=[
            EVALUATED_1,
            h("cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a"),
        ],
        proof=h(
            "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a"
            "5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08"
        ),
        proof_nonce=h("419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c"),
        outputs=[OUTPUT_1, OUTPUT_2],
    ),
]


def scalars(values: list[bytes]) -> oprf.RandomScalar:
    """A RandomScalar that hands out the given scalars in order."""
    it: Iterator[bytes] = iter(values)
    return lambda: next(it)


def invalid_encoding() -> bytes:
    """32 random bytes that libsodium refuses as a ristretto255 encoding."""
    while True:
        candidate = os.urandom(32)
        if candidate != bytes(32) and not rbcl.crypto_core_ristretto255_is_valid_point(candidate):
            return candidate


MALFORMED = {
    "invalid encoding": invalid_encoding(),
    "identity": bytes(32),
    "31 bytes": rbcl.crypto_core_ristretto255_random()[:31],
    "33 bytes": rbcl.crypto_core_ristretto255_random() + b"\x01",
}


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return oprf.derive_key_pair(SEED, KEY_INFO)


@pytest.fixture(scope="module")
def other_keys() -> tuple[bytes, bytes]:
    return oprf.derive_key_pair(SEED, b"another key")


def run_protocol(
    sk: bytes, pk: bytes, inputs: list[bytes]
) -> tuple[list[bytes], list[bytes], list[bytes], bytes]:
    blinds, blinded = oprf.blind(inputs)
    evaluated, proof = oprf.blind_evaluate(sk, pk, blinded)
    return blinds, blinded, evaluated, proof


# --- RFC 9497 test vectors ----------------------------------------------------------


def test_constants() -> None:
    assert oprf.SUITE == "ristretto255-SHA512"
    assert oprf.MODE_VOPRF == 0x01
    assert (oprf.ELEMENT_BYTES, oprf.SCALAR_BYTES) == (32, 32)
    assert (oprf.PROOF_BYTES, oprf.OUTPUT_BYTES) == (64, 64)


def test_derive_key_pair_vector() -> None:
    sk, pk = oprf.derive_key_pair(SEED, KEY_INFO)
    assert sk == SK_SM
    assert pk == PK_SM
    assert oprf.public_key(SK_SM) == PK_SM


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_blind_vector(v: Vector) -> None:
    blinds, blinded = oprf.blind(v.inputs, scalars(v.blinds))
    assert blinds == v.blinds
    assert blinded == v.blinded
    for data, r, element in zip(v.inputs, v.blinds, v.blinded, strict=True):
        assert rbcl.crypto_scalarmult_ristretto255(r, oprf.hash_to_group(data)) == element


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_blind_evaluate_vector(v: Vector) -> None:
    evaluated, proof = oprf.blind_evaluate(SK_SM, PK_SM, v.blinded, scalars([v.proof_nonce]))
    assert evaluated == v.evaluated
    assert proof == v.proof


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_finalize_vector(v: Vector) -> None:
    outputs = oprf.finalize(v.inputs, v.blinds, v.blinded, v.evaluated, PK_SM, v.proof)
    assert outputs == v.outputs


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_evaluate_vector(v: Vector) -> None:
    assert oprf.evaluate(SK_SM, v.inputs) == v.outputs


def test_batch_vector_agrees_with_single_vectors() -> None:
    batch = VECTORS[2]
    assert batch.outputs == VECTORS[0].outputs + VECTORS[1].outputs
    assert batch.evaluated[0] == VECTORS[0].evaluated[0]


# --- correctness beyond the vectors -------------------------------------------------


def test_output_does_not_depend_on_blinding(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    inputs = [INPUT_1, INPUT_2, b"", os.urandom(100)]
    expected = oprf.evaluate(sk, inputs)
    seen_blinded: set[bytes] = set()
    for _ in range(25):
        blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
        seen_blinded.update(blinded)
        assert oprf.finalize(inputs, blinds, blinded, evaluated, pk, proof) == expected
    # Fresh blinds every run: the server never sees the same element twice.
    assert len(seen_blinded) == 25 * len(inputs)


@pytest.mark.parametrize("size", [1, 2, 3, 17, 64])
def test_evaluate_equals_protocol_for_random_inputs(keys: tuple[bytes, bytes], size: int) -> None:
    sk, pk = keys
    inputs = [os.urandom(int.from_bytes(os.urandom(1), "big")) for _ in range(size)]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    outputs = oprf.finalize(inputs, blinds, blinded, evaluated, pk, proof)
    assert outputs == oprf.evaluate(sk, inputs)
    assert all(len(o) == oprf.OUTPUT_BYTES for o in outputs)
    assert len(proof) == oprf.PROOF_BYTES


def test_longest_allowed_input(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    inputs = [os.urandom(0xFFFF)]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    assert oprf.finalize(inputs, blinds, blinded, evaluated, pk, proof) == oprf.evaluate(sk, inputs)


def test_input_too_long(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    too_long = bytes(0x10000)
    with pytest.raises(ProtocolError):
        oprf.blind([b"ok", too_long])
    with pytest.raises(ProtocolError):
        oprf.evaluate(sk, [too_long])
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, [b"ok"])
    with pytest.raises(ProtocolError):
        oprf.finalize([too_long], blinds, blinded, evaluated, pk, proof)


def test_distinct_inputs_and_keys_give_distinct_outputs(
    keys: tuple[bytes, bytes], other_keys: tuple[bytes, bytes]
) -> None:
    inputs = [b"a", b"b", b"", b"\x00"]
    outputs = oprf.evaluate(keys[0], inputs)
    assert len(set(outputs)) == len(inputs)
    assert set(outputs).isdisjoint(oprf.evaluate(other_keys[0], inputs))


def test_derive_key_pair_deterministic_and_info_separated() -> None:
    seed = os.urandom(32)
    assert oprf.derive_key_pair(seed, b"info") == oprf.derive_key_pair(seed, b"info")
    pairs = {
        oprf.derive_key_pair(seed, b"info"),
        oprf.derive_key_pair(seed, b"info2"),
        oprf.derive_key_pair(seed, b""),
        oprf.derive_key_pair(os.urandom(32), b"info"),
    }
    assert len(pairs) == 4
    for sk, pk in pairs:
        assert oprf.public_key(sk) == pk
        oprf.validate_element(pk)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_derive_key_pair_rejects_bad_seed(seed: bytes) -> None:
    with pytest.raises(ProtocolError):
        oprf.derive_key_pair(seed, b"info")


def test_derive_key_pair_rejects_long_info() -> None:
    with pytest.raises(ProtocolError):
        oprf.derive_key_pair(SEED, bytes(0x10000))


def test_hash_to_group_is_deterministic_and_valid() -> None:
    element = oprf.hash_to_group(b"bsn:123456782")
    assert element == oprf.hash_to_group(b"bsn:123456782")
    assert element != oprf.hash_to_group(b"bsn:123456783")
    oprf.validate_element(element)


# --- proof failures -----------------------------------------------------------------


def test_finalize_rejects_evaluation_under_another_key(
    keys: tuple[bytes, bytes], other_keys: tuple[bytes, bytes]
) -> None:
    inputs = [INPUT_1, INPUT_2]
    blinds, blinded = oprf.blind(inputs)
    # The server answers with a different key but honestly proves it for that key.
    evaluated, proof = oprf.blind_evaluate(other_keys[0], other_keys[1], blinded)
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, evaluated, keys[1], proof)
    # The server answers with a different key and claims the expected public key.
    evaluated, proof = oprf.blind_evaluate(other_keys[0], keys[1], blinded)
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, evaluated, keys[1], proof)


def test_finalize_rejects_proof_for_another_key(
    keys: tuple[bytes, bytes], other_keys: tuple[bytes, bytes]
) -> None:
    inputs = [INPUT_1]
    blinds, blinded = oprf.blind(inputs)
    evaluated, _ = oprf.blind_evaluate(keys[0], keys[1], blinded)
    _, wrong_proof = oprf.blind_evaluate(other_keys[0], other_keys[1], blinded)
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, evaluated, keys[1], wrong_proof)
    # A correct proof does not verify against a different public key either.
    evaluated, proof = oprf.blind_evaluate(keys[0], keys[1], blinded)
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, evaluated, other_keys[1], proof)


def test_finalize_rejects_tampered_proof(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    inputs = [INPUT_1, INPUT_2]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    for position in (0, 5, 31, 32, 40, 62):
        tampered = bytearray(proof)
        tampered[position] ^= 0x01
        with pytest.raises(InvalidProof):
            oprf.finalize(inputs, blinds, blinded, evaluated, pk, bytes(tampered))


@pytest.mark.parametrize(
    "proof",
    [
        bytes(64),  # c = s = 0: the zero scalars must not reach libsodium as an error
        bytes(32) + rbcl.crypto_core_ristretto255_scalar_random(),
        rbcl.crypto_core_ristretto255_scalar_random() + b"\xff" * 32,  # s not canonical
        b"\xff" * 32 + bytes(32),  # c not canonical
        b"",
        bytes(63),
        bytes(65),
    ],
    ids=["zero", "zero-c", "s-noncanonical", "c-noncanonical", "empty", "63", "65"],
)
def test_finalize_rejects_malformed_proof(keys: tuple[bytes, bytes], proof: bytes) -> None:
    sk, pk = keys
    inputs = [INPUT_1]
    blinds, blinded, evaluated, _ = run_protocol(sk, pk, inputs)
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, evaluated, pk, proof)


def test_finalize_rejects_swapped_evaluated_elements(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    inputs = [INPUT_1, INPUT_2, b"third"]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    swapped = [evaluated[1], evaluated[0], evaluated[2]]
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, swapped, pk, proof)
    # An evaluated element from another exchange under the same key is refused too.
    _, _, other_evaluated, _ = run_protocol(sk, pk, [INPUT_1])
    replaced = [other_evaluated[0], evaluated[1], evaluated[2]]
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs, blinds, blinded, replaced, pk, proof)


def test_finalize_rejects_dropped_element(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    inputs = [INPUT_1, INPUT_2]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    with pytest.raises(InvalidProof):
        oprf.finalize(inputs[:1], blinds[:1], blinded[:1], evaluated[:1], pk, proof)


@pytest.mark.parametrize(
    "drop", ["inputs", "blinds", "blinded", "evaluated"], ids=lambda d: f"short-{d}"
)
def test_finalize_rejects_length_mismatch(keys: tuple[bytes, bytes], drop: str) -> None:
    sk, pk = keys
    inputs = [INPUT_1, INPUT_2]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    args = {"inputs": inputs, "blinds": blinds, "blinded": blinded, "evaluated": evaluated}
    args[drop] = args[drop][:1]
    with pytest.raises(ProtocolError) as info:
        oprf.finalize(args["inputs"], args["blinds"], args["blinded"], args["evaluated"], pk, proof)
    assert not isinstance(info.value, InvalidProof)


def test_empty_batches(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    assert oprf.blind([]) == ([], [])
    assert oprf.evaluate(sk, []) == []
    with pytest.raises(ProtocolError):
        oprf.blind_evaluate(sk, pk, [])
    with pytest.raises(ProtocolError):
        oprf.finalize([], [], [], [], pk, bytes(64))


# --- malformed elements and scalars -------------------------------------------------


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_validate_element_rejects(bad: bytes) -> None:
    with pytest.raises(InvalidGroupElement):
        oprf.validate_element(bad)


def test_validate_element_rejects_non_bytes() -> None:
    with pytest.raises(InvalidGroupElement):
        oprf.validate_element(bytearray(PK_SM))  # type: ignore[arg-type]


def test_validate_element_accepts_valid() -> None:
    for _ in range(20):
        oprf.validate_element(rbcl.crypto_core_ristretto255_random())
    oprf.validate_element(PK_SM)


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_blind_evaluate_rejects_malformed_element(keys: tuple[bytes, bytes], bad: bytes) -> None:
    sk, pk = keys
    _, blinded = oprf.blind([b"a", b"b", b"c"])
    blinded[1] = bad
    with pytest.raises(InvalidGroupElement, match="blinded element 1"):
        oprf.blind_evaluate(sk, pk, blinded)


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_finalize_rejects_malformed_evaluated_element(
    keys: tuple[bytes, bytes], bad: bytes
) -> None:
    sk, pk = keys
    inputs = [b"a", b"b", b"c"]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    evaluated[2] = bad
    with pytest.raises(InvalidGroupElement, match="evaluated element 2"):
        oprf.finalize(inputs, blinds, blinded, evaluated, pk, proof)


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_finalize_rejects_malformed_public_key(keys: tuple[bytes, bytes], bad: bytes) -> None:
    sk, pk = keys
    inputs = [b"a"]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    with pytest.raises(InvalidGroupElement, match="public key"):
        oprf.finalize(inputs, blinds, blinded, evaluated, bad, proof)
    with pytest.raises(InvalidGroupElement, match="public key"):
        oprf.blind_evaluate(sk, bad, blinded)


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_finalize_rejects_malformed_blinded_element(keys: tuple[bytes, bytes], bad: bytes) -> None:
    sk, pk = keys
    inputs = [b"a", b"b"]
    blinds, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    blinded[0] = bad
    with pytest.raises(InvalidGroupElement, match="blinded element 0"):
        oprf.finalize(inputs, blinds, blinded, evaluated, pk, proof)


NON_SCALARS = {
    "zero": bytes(32),
    "31 bytes": bytes(30) + b"\x01",
    "33 bytes": b"\x01" + bytes(32),
    "not canonical": b"\xff" * 32,
}


@pytest.mark.parametrize("bad", NON_SCALARS.values(), ids=NON_SCALARS.keys())
def test_secret_scalars_are_checked(keys: tuple[bytes, bytes], bad: bytes) -> None:
    sk, pk = keys
    with pytest.raises(ProtocolError):
        oprf.public_key(bad)
    with pytest.raises(ProtocolError):
        oprf.evaluate(bad, [b"a"])
    with pytest.raises(ProtocolError):
        oprf.blind_evaluate(bad, pk, [BLINDED_1])
    with pytest.raises(ProtocolError):
        oprf.blind([b"a"], lambda: bad)
    with pytest.raises(ProtocolError):
        oprf.blind_evaluate(sk, pk, [BLINDED_1], lambda: bad)
    inputs = [b"a"]
    _, blinded, evaluated, proof = run_protocol(sk, pk, inputs)
    with pytest.raises(ProtocolError):
        oprf.finalize(inputs, [bad], blinded, evaluated, pk, proof)


def test_no_bare_value_error_escapes(keys: tuple[bytes, bytes]) -> None:
    sk, pk = keys
    calls: list[Callable[[], object]] = [
        lambda: oprf.public_key(b"short"),
        lambda: oprf.blind([b"a"], lambda: b"short"),
        lambda: oprf.blind_evaluate(sk, pk, [b"x" * 32]),
        lambda: oprf.finalize([b"a"], [sk], [pk], [b"x" * 32], pk, bytes(64)),
        lambda: oprf.evaluate(b"\xff" * 32, [b"a"]),
        lambda: oprf.hash_to_group("text"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ProtocolError):
            call()
