"""RFC 9162 Merkle trees (node/protocol/merkle.py): roots, inclusion and consistency proofs.

Exhaustive over small trees (every index of every size 1..300, every pair of sizes up to
130), checked three ways: against the certificate-transparency reference vectors,
against the RFC's recursive definitions written out literally, and by verification,
which must also reject every kind of wrong input.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest

from node.protocol import merkle

h = bytes.fromhex

# --- reference vectors -----------------------------------------------------------------
# From transparency-dev/merkle proof/verify_test.go (the certificate-transparency test
# data, also in certificate-transparency-go): leaf inputs, the root of the tree of the
# first n of them, and proofs in that 8-leaf tree. Indices there are 1-based leaf
# numbers; here they are converted to 0-based leaf indices.
CT_LEAVES = [h(x) for x in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
CT_ROOTS = [h(x) for x in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]  # fmt: skip
# (leaf index, tree size, proof)
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
]  # fmt: skip
# (old size, new size, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]),
    (6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
    (2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]),
    (6, 7, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]),
]  # fmt: skip
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


# --- an in-memory tree and the RFC written out literally ---------------------------------


class Tree:
    """Leaf hashes with a memoised ``subtree(start, end)``, as a store would supply it."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.leaves = list(leaf_hashes)
        self.cache: dict[tuple[int, int], bytes] = {}
        self.calls = 0

    def subtree(self, start: int, end: int) -> bytes:
        self.calls += 1
        assert 0 <= start < end <= len(self.leaves)
        key = (start, end)
        if key not in self.cache:
            n = end - start
            if n == 1:
                self.cache[key] = self.leaves[start]
            else:
                k = merkle.split(n)
                self.cache[key] = merkle.node_hash(
                    self.subtree(start, start + k), self.subtree(start + k, end)
                )
        return self.cache[key]

    def root(self, n: int) -> bytes:
        return merkle.EMPTY_ROOT if n == 0 else self.subtree(0, n)


def rfc_mth(d: Sequence[bytes]) -> bytes:
    """§2.1.1 MTH over leaf hashes, literally."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = merkle.split(len(d))
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    """§2.1.3.1 PATH(m, D[n]), literally."""
    if len(d) == 1:
        return []
    k = merkle.split(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    """§2.1.4.1 SUBPROOF(m, D[n], b), literally."""
    if m == len(d):
        return [] if b else [rfc_mth(d)]
    k = merkle.split(len(d))
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big") * (i % 5)) for i in range(n)]


@pytest.fixture(scope="module")
def big_tree() -> Tree:
    """Tests use sizes up to 300; the spare leaves give wrong-size cases a real root."""
    return Tree(leaves(640))


def flipped(proof: Sequence[bytes], i: int, byte: int = 0) -> list[bytes]:
    out = list(proof)
    out[i] = out[i][:byte] + bytes([out[i][byte] ^ 0x08]) + out[i][byte + 1 :]
    return out


# --- hashing ---------------------------------------------------------------------------


def test_leaf_and_node_hash_domain_separation() -> None:
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        merkle.node_hash(b"a" * 32, b"b" * 32)
        == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert hashlib.sha256(b"").digest() == merkle.EMPTY_ROOT
    assert [merkle.split(n) for n in (2, 3, 4, 5, 8, 9, 300)] == [1, 2, 2, 4, 4, 8, 256]
    with pytest.raises(ValueError, match="n >= 2"):
        merkle.split(1)


def test_roots_match_the_reference_vectors() -> None:
    hs = [merkle.leaf_hash(x) for x in CT_LEAVES]
    assert merkle.root([]) == merkle.EMPTY_ROOT
    for n in range(1, 9):
        assert merkle.root(hs[:n]) == CT_ROOTS[n - 1]
        assert Tree(hs).root(n) == CT_ROOTS[n - 1]


def test_root_and_frontier_match_the_rfc_for_sizes_0_to_300(big_tree: Tree) -> None:
    frontier = merkle.Frontier()
    completed: dict[tuple[int, int], bytes] = {}
    for n in range(301):
        assert frontier.size == n
        assert frontier.root() == big_tree.root(n)
        if n <= 70:
            assert merkle.root(big_tree.leaves[:n]) == rfc_mth(big_tree.leaves[:n])
        if n < 300:
            for level, idx, node in frontier.push(big_tree.leaves[n]):
                assert level >= 1
                assert ((idx + 1) << level) - 1 == n  # completed by exactly this leaf
                completed[(level, idx)] = node
    # every perfect aligned subtree of 300 leaves was reported once, with its MTH
    want = {(level, idx) for level in range(1, 9) for idx in range(300 >> level)}
    assert set(completed) == want
    for (level, idx), node in completed.items():
        assert node == big_tree.subtree(idx << level, (idx + 1) << level)
    # a frontier rebuilt from its levels carries on identically
    again = merkle.Frontier(dict(frontier.levels))
    assert (again.size, again.root()) == (300, frontier.root())


# --- inclusion -------------------------------------------------------------------------


def test_inclusion_reference_vectors() -> None:
    hs = [merkle.leaf_hash(x) for x in CT_LEAVES]
    tree = Tree(hs)
    for index, size, proof_hex in CT_INCLUSION:
        proof = [h(x) for x in proof_hex]
        assert merkle.inclusion_proof(index, size, tree.subtree) == proof
        assert merkle.verify_inclusion(hs[index], index, size, proof, CT_ROOTS[size - 1])


def test_inclusion_every_index_of_every_size_1_to_300(big_tree: Tree) -> None:
    checked = 0
    for n in range(1, 301):
        root = big_tree.root(n)
        for i in range(n):
            proof = merkle.inclusion_proof(i, n, big_tree.subtree)
            assert len(proof) <= (n - 1).bit_length()
            assert merkle.verify_inclusion(big_tree.leaves[i], i, n, proof, root), (i, n)
            checked += 1
    assert checked == 300 * 301 // 2


def test_inclusion_proofs_are_the_rfc_path_for_sizes_1_to_64(big_tree: Tree) -> None:
    for n in range(1, 65):
        d = big_tree.leaves[:n]
        for i in range(n):
            assert merkle.inclusion_proof(i, n, big_tree.subtree) == rfc_path(i, d)


def test_proofs_ask_one_subtree_per_proof_element(big_tree: Tree) -> None:
    for n in (1, 2, 3, 255, 256, 257, 300):
        for i in (0, n // 2, n - 1):
            before = big_tree.calls
            proof = merkle.inclusion_proof(i, n, big_tree.subtree)
            # every top-level call is one element; the memo's own recursion is not counted
            # because the tree is warm
            assert big_tree.calls - before >= len(proof)
            assert len(proof) <= (n - 1).bit_length()
        for m in range(1, n + 1, max(1, n // 7)):
            counted = Tree(big_tree.leaves)
            proof = merkle.consistency_proof(m, n, counted.subtree)
            assert counted.calls >= len(proof)
            assert len(proof) <= 2 * (n - 1).bit_length()


def inclusion_mutations(
    tree: Tree, i: int, n: int, proof: list[bytes]
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    """(what, leaf, index, size, proof, root) that must all fail to verify."""
    leaf, root = tree.leaves[i], tree.root(n)
    out: list[tuple[str, bytes, int, int, list[bytes], bytes]] = [
        ("wrong leaf", SOME_HASH, i, n, proof, root),
        ("another leaf", tree.leaves[(i + 1) % len(tree.leaves)], i, n, proof, root),
        ("empty root", leaf, i, n, proof, merkle.EMPTY_ROOT),
        ("random root", leaf, i, n, proof, SOME_HASH),
        ("short leaf", leaf[:31], i, n, proof, root),
        ("short root", leaf, i, n, proof, root[:31]),
        ("index = size", leaf, n, n, proof, root),
        ("negative index", leaf, -1, n, proof, root),
        ("size 0", leaf, i, 0, proof, root),
        ("size * 2", leaf, i, n * 2, proof, root),
        ("size / 2", leaf, i, n // 2, proof, root),
        ("trailing garbage", leaf, i, n, [*proof, b""], root),
        ("trailing root", leaf, i, n, [*proof, root], root),
        ("preceding garbage", leaf, i, n, [b"", *proof], root),
        ("preceding root", leaf, i, n, [root, *proof], root),
        ("long element", leaf, i, n, [p + b"\x00" for p in proof] or [root], root),
    ]
    for j in range(len(proof)):
        out.append((f"flipped byte in [{j}]", leaf, i, n, flipped(proof, j, j % 32), root))
        out.append((f"dropped [{j}]", leaf, i, n, proof[:j] + proof[j + 1 :], root))
        out.append((f"inserted at [{j}]", leaf, i, n, [*proof[:j], SOME_HASH, *proof[j:]], root))
        out.append((f"duplicated [{j}]", leaf, i, n, [*proof[: j + 1], *proof[j:]], root))
    if len(proof) > 1:
        out.append(("reversed", leaf, i, n, proof[::-1], root))
    for other in {i - 1, i + 1, i ^ 1, i ^ 2, 0, n - 1} - {i}:
        if 0 <= other < n:
            out.append((f"index {other}", leaf, other, n, proof, root))
    for other in {n - 1, n + 1, n + 7, 2 * n - 1} - {n}:
        if other > i:
            # another size, with that size's root: the proof is for size n
            out.append((f"size {other} and its root", leaf, i, other, proof, tree.root(other)))
    return out


def test_inclusion_rejects_every_wrong_input(big_tree: Tree) -> None:
    rng = random.Random(9162)
    cases = [(i, n) for n in range(1, 101) for i in range(n)]
    cases += [(i, n) for n in range(101, 301) for i in {0, n // 2, n - 1, rng.randrange(n)}]
    tried = 0
    for i, n in cases:
        proof = merkle.inclusion_proof(i, n, big_tree.subtree)
        for what, leaf, index, size, bad, root in inclusion_mutations(big_tree, i, n, proof):
            assert not merkle.verify_inclusion(leaf, index, size, bad, root), (i, n, what)
            tried += 1
    assert tried > 20_000


def test_inclusion_generation_refuses_impossible_positions(big_tree: Tree) -> None:
    for i, n in [(0, 0), (1, 1), (5, 3), (-1, 4)]:
        with pytest.raises(ValueError, match="not in a tree"):
            merkle.inclusion_proof(i, n, big_tree.subtree)


def test_inclusion_single_entry_and_type_misuse() -> None:
    leaf = merkle.leaf_hash(b"data")
    assert merkle.verify_inclusion(leaf, 0, 1, [], leaf)
    assert not merkle.verify_inclusion(leaf, 0, 1, [], b"")
    assert not merkle.verify_inclusion(b"", 0, 1, [], leaf)
    assert not merkle.verify_inclusion(leaf, 0, 1, [leaf], leaf)
    assert not merkle.verify_inclusion(leaf, 1, 1, [], leaf)
    assert not merkle.verify_inclusion(leaf, 0, 0, [], merkle.EMPTY_ROOT)
    assert not merkle.verify_inclusion(bytearray(leaf), 0, 1, [], leaf)  # type: ignore[arg-type]
    assert not merkle.verify_inclusion(leaf, 0, 2, ["x" * 32], leaf)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        merkle.verify_inclusion(leaf, "0", 1, [], leaf)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        merkle.verify_inclusion(leaf, 0, 1.0, [], leaf)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        merkle.verify_inclusion(leaf, True, 2, [leaf], leaf)
    with pytest.raises(TypeError):
        merkle.verify_inclusion(leaf, 0, 2, leaf, leaf)  # type: ignore[arg-type]


# --- consistency -----------------------------------------------------------------------


def test_consistency_reference_vectors() -> None:
    hs = [merkle.leaf_hash(x) for x in CT_LEAVES]
    tree = Tree(hs)
    for m, n, proof_hex in CT_CONSISTENCY:
        proof = [h(x) for x in proof_hex]
        assert merkle.consistency_proof(m, n, tree.subtree) == proof
        assert merkle.verify_consistency(m, n, CT_ROOTS[m - 1], CT_ROOTS[n - 1], proof)


def test_consistency_edge_cases_from_the_reference_tests() -> None:
    # transparency-dev/merkle TestVerifyConsistency, with one deliberate difference:
    # there size 0 is consistent with any "root"; here a size-0 root must be the empty
    # tree's (SHA-256 of ""), the only root our node ever signs for size 0.
    e, r1, r2 = merkle.EMPTY_ROOT, SOME_HASH, merkle.leaf_hash(b"x")
    cases: list[tuple[int, int, bytes, bytes, list[bytes], bool]] = [
        (0, 0, e, e, [], True),
        (0, 1, e, r2, [], True),
        (1, 1, r2, r2, [], True),
        (0, 0, r1, r1, [], False),  # the reference accepts this
        (0, 0, e, r2, [], False),
        (1, 1, r1, r2, [], False),
        (1, 0, r1, r2, [], False),
        (2, 1, r1, r2, [], False),
        (1, 2, r1, r2, [], False),  # empty proof for a real extension
        (0, 0, e, e, [e], False),
        (0, 1, e, e, [e], False),
        (1, 1, e, e, [e], False),
        (-1, 1, e, r2, [], False),
    ]
    for m, n, root_m, root_n, proof, want in cases:
        assert merkle.verify_consistency(m, n, root_m, root_n, proof) is want, (m, n)


def test_consistency_every_pair_up_to_130(big_tree: Tree) -> None:
    checked = 0
    for n in range(1, 131):
        root_n = big_tree.root(n)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, big_tree.subtree)
            assert merkle.verify_consistency(m, n, big_tree.root(m), root_n, proof), (m, n)
            checked += 1
        assert merkle.consistency_proof(0, n, big_tree.subtree) == []
        assert merkle.verify_consistency(0, n, merkle.EMPTY_ROOT, root_n, [])
    assert checked == 130 * 131 // 2


def test_consistency_sample_up_to_300(big_tree: Tree) -> None:
    rng = random.Random(6962)
    pairs = {(m, n) for n in range(131, 301) for m in (1, 2, n // 2, n - 1, n, 128, 256) if m <= n}
    for _ in range(3000):
        a, b = rng.randrange(1, 301), rng.randrange(1, 301)
        pairs.add((min(a, b), max(a, b)))
    for m, n in pairs:
        proof = merkle.consistency_proof(m, n, big_tree.subtree)
        assert merkle.verify_consistency(m, n, big_tree.root(m), big_tree.root(n), proof), (m, n)


def test_consistency_proofs_are_the_rfc_proof_up_to_64(big_tree: Tree) -> None:
    for n in range(1, 65):
        d = big_tree.leaves[:n]
        for m in range(1, n + 1):
            assert merkle.consistency_proof(m, n, big_tree.subtree) == rfc_subproof(m, d, True)


def consistency_mutations(
    tree: Tree, m: int, n: int, proof: list[bytes]
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    """(what, m, n, root_m, root_n, proof) that must all fail to verify."""
    rm, rn = tree.root(m), tree.root(n)
    out: list[tuple[str, int, int, bytes, bytes, list[bytes]]] = [
        ("m - 1", m - 1, n, rm, rn, proof),
        ("m + 1", m + 1, n, rm, rn, proof),
        ("m ^ 2", m ^ 2, n, rm, rn, proof),
        ("n * 2", m, n * 2, rm, rn, proof),
        ("n / 2", m, n // 2, rm, rn, proof),
        ("m > n", n, m, rn, rm, proof),
        ("wrong root_m", m, n, SOME_HASH, rn, proof),
        ("wrong root_n", m, n, rm, SOME_HASH, proof),
        ("swapped roots", m, n, rn, rm, proof),
        ("short root_m", m, n, rm[:31], rn, proof),
        ("empty proof", m, n, rm, rn, []),
        ("trailing garbage", m, n, rm, rn, [*proof, b""]),
        ("trailing root_m", m, n, rm, rn, [*proof, rm]),
        ("trailing root_n", m, n, rm, rn, [*proof, rn]),
        ("preceding garbage", m, n, rm, rn, [b"", *proof]),
        ("preceding root_m", m, n, rm, rn, [rm, *proof]),
        ("preceding root_n", m, n, rm, rn, [rn, *proof]),
        ("preceding proof[0]", m, n, rm, rn, [proof[0], *proof]),
        ("long elements", m, n, rm, rn, [p + b"\x00" for p in proof]),
    ]
    for j in range(len(proof)):
        out.append((f"flipped byte in [{j}]", m, n, rm, rn, flipped(proof, j, (7 * j) % 32)))
        out.append((f"dropped [{j}]", m, n, rm, rn, proof[:j] + proof[j + 1 :]))
        out.append((f"inserted at [{j}]", m, n, rm, rn, [*proof[:j], SOME_HASH, *proof[j:]]))
    if len(proof) > 1:
        out.append(("reversed", m, n, rm, rn, proof[::-1]))
    for other in {m - 1, m + 1, 1} - {m}:
        if 0 < other < n:
            out.append((f"old size {other} and its root", other, n, tree.root(other), rn, proof))
    for other in {n - 1, n + 1, n + 5} - {n}:
        if other > m:
            out.append((f"new size {other} and its root", m, other, rm, tree.root(other), proof))
    return out


def test_consistency_rejects_every_wrong_input(big_tree: Tree) -> None:
    rng = random.Random(2)
    pairs = [(m, n) for n in range(2, 65) for m in range(1, n)]
    pairs += [(rng.randrange(1, n), n) for n in range(48, 301) for _ in range(3)]
    tried = 0
    for m, n in pairs:
        proof = merkle.consistency_proof(m, n, big_tree.subtree)
        assert proof  # 0 < m < n always needs one
        for what, mm, nn, rm, rn, bad in consistency_mutations(big_tree, m, n, proof):
            assert not merkle.verify_consistency(mm, nn, rm, rn, bad), (m, n, what)
            tried += 1
    assert tried > 20_000


def test_consistency_generation_refuses_backwards_sizes(big_tree: Tree) -> None:
    for m, n in [(2, 1), (-1, 3), (0, -1)]:
        with pytest.raises(ValueError, match="no consistency proof"):
            merkle.consistency_proof(m, n, big_tree.subtree)
    with pytest.raises(TypeError):
        merkle.verify_consistency(1, 2.0, SOME_HASH, SOME_HASH, [SOME_HASH])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        merkle.verify_consistency(1, 2, SOME_HASH, SOME_HASH, SOME_HASH)  # type: ignore[arg-type]
    assert not merkle.verify_consistency(1, 2, SOME_HASH, SOME_HASH, [None])  # type: ignore[list-item]


def test_subtree_function_is_asked_only_for_aligned_ranges(big_tree: Tree) -> None:
    """The ranges proofs ask for start at a multiple of the largest power of two not
    above their length, which is what lets a store answer each from a few stored nodes."""
    asked: list[tuple[int, int]] = []

    def subtree(start: int, end: int) -> bytes:
        asked.append((start, end))
        return big_tree.subtree(start, end)

    for n in range(1, 301):
        for i in {0, n // 3, n - 1}:
            merkle.inclusion_proof(i, n, subtree)
        for m in {1, n // 2 or 1, n}:
            merkle.consistency_proof(m, n, subtree)
    for start, end in asked:
        k = 1 << ((end - start).bit_length() - 1)
        assert start % k == 0, (start, end)


def test_verification_with_a_wrong_hash_callback_fails(big_tree: Tree) -> None:
    """A store returning a wrong subtree yields a proof that does not verify."""

    def wrong(a: int, b: int) -> bytes:
        return SOME_HASH if b - a == 4 else big_tree.subtree(a, b)

    proof = merkle.inclusion_proof(0, 20, wrong)
    assert not merkle.verify_inclusion(big_tree.leaves[0], 0, 20, proof, big_tree.root(20))
    proof = merkle.consistency_proof(3, 20, wrong)
    assert not merkle.verify_consistency(3, 20, big_tree.root(3), big_tree.root(20), proof)
