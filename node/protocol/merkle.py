"""RFC 9162 Merkle trees: hashing, inclusion and consistency proofs, as pure functions.

Section numbers are those of RFC 9162 (Certificate Transparency Version 2.0), §2.1
"Merkle Trees", which keeps RFC 6962's tree unchanged; docs/protocol.md §9 uses them
with SHA-256. Nothing here touches storage: proof generation takes ``subtree(start,
end)``, a function returning the Merkle Tree Hash of leaves ``[start, end)``, which the
caller answers from wherever it keeps the tree (``node.store.log`` answers from SQLite
in O(log n) lookups, tests from a list).

Verification is strict and never raises on bad *values* (wrong sizes, hashes of the
wrong length, too short or too long proofs, an index outside the tree, m > n): it
returns False. Only misuse of types (a size that is not an int, a proof that is not a
sequence) raises TypeError.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""§2.1.1: the MTH of the empty list is the hash of the empty string."""

Subtree = Callable[[int, int], bytes]
"""``subtree(start, end)``: the MTH of leaves ``[start, end)`` (0 <= start < end)."""


def leaf_hash(data: bytes) -> bytes:
    """§2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """§2.1.1: an interior node is HASH(0x01 || MTH(left) || MTH(right))."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split(n: int) -> int:
    """§2.1.1: k, the largest power of two smaller than n (n >= 2)."""
    if n < 2:
        raise ValueError("split needs n >= 2")
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right frontier (compact range) of a tree of ``size`` leaves: ``levels[h]`` is
    the root of a perfect subtree of 2^h leaves, present exactly for the set bits of
    ``size``.

    Appending is a binary increment that merges equal-height subtrees; each merge
    completes one perfect subtree, which ``push`` returns so a store can keep every
    complete subtree. The root folds the subtrees from the smallest up, which is the
    §2.1.1 split at the largest power of two.
    """

    __slots__ = ("levels", "size")

    def __init__(self, levels: dict[int, bytes] | None = None) -> None:
        self.levels: dict[int, bytes] = dict(levels or {})
        self.size = sum(1 << level for level in self.levels)

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash. Returns the perfect subtrees it completed above the
        leaf, as ``(level, index, hash)`` with level >= 1: the subtree of level h and
        index i covers leaves [i * 2^h, (i + 1) * 2^h)."""
        index = self.size
        completed: list[tuple[int, int, bytes]] = []
        node, level = leaf, 0
        while level in self.levels:
            node = node_hash(self.levels.pop(level), node)
            level += 1
            completed.append((level, index >> level, node))
        self.levels[level] = node
        self.size += 1
        return completed

    def root(self) -> bytes:
        acc: bytes | None = None
        for level in sorted(self.levels):
            acc = self.levels[level] if acc is None else node_hash(self.levels[level], acc)
        return EMPTY_ROOT if acc is None else acc


def root(leaf_hashes: Iterable[bytes]) -> bytes:
    """§2.1.1 Merkle Tree Hash of a list of leaf hashes, in O(n) time and O(log n) memory."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.push(h)
    return frontier.root()


# --- proofs ----------------------------------------------------------------------------


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """§2.1.3.1 PATH(m, D[n]): the inclusion proof of leaf ``index`` in the tree of the
    first ``size`` leaves, nearest sibling first. Raises ValueError unless
    0 <= index < size."""
    _check_int(index, size)
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])        for m < k
        #               = PATH(m - k, D[k:n]) : MTH(D[0:k])    for m >= k
        mid = start + split(end - start)
        if index < mid:
            path.append(subtree(mid, end))
            end = mid
        else:
            path.append(subtree(start, mid))
            start = mid
    path.reverse()  # the recursion emits the deepest sibling first
    return path


def consistency_proof(m: int, n: int, subtree: Subtree) -> list[bytes]:
    """§2.1.4.1 PROOF(m, D[n]): proves the tree of the first ``m`` leaves is a prefix of
    the tree of the first ``n``. Empty when m == 0 or m == n. Raises ValueError unless
    0 <= m <= n."""
    _check_int(m, n)
    if not 0 <= m <= n:
        raise ValueError(f"no consistency proof from size {m} to size {n}")
    if m in (0, n):
        return []
    path: list[bytes] = []
    start, end, complete = 0, n, True  # SUBPROOF(m, D[start:end], complete)
    while True:
        if m == end - start:
            # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            if not complete:
                path.append(subtree(start, end))
            break
        mid = start + split(end - start)
        if m <= mid - start:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            path.append(subtree(mid, end))
            end = mid
        else:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            path.append(subtree(start, mid))
            m -= mid - start
            start, complete = mid, False
    path.reverse()
    return path


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """§2.1.3.2: does ``proof`` show leaf ``leaf_hash`` at ``index`` in the tree of
    ``size`` leaves with root ``root``?"""
    _check_int(index, size)
    _check_sequence(proof)
    if not (_is_hash(leaf_hash) and _is_hash(root)) or not 0 <= index < size:
        return False  # step 1: leaf_index >= tree_size fails
    fn, sn = index, size - 1  # step 2
    r = leaf_hash  # step 3
    for p in proof:  # step 4
        if not _is_hash(p) or sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    return sn == 0 and r == root  # step 5


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> bool:
    """§2.1.4.2: does ``proof`` show that the tree of size ``m`` with root ``root_m`` is a
    prefix of the tree of size ``n`` with root ``root_n``?

    The RFC's algorithm covers 0 < m < n. Around it: m > n never verifies; m == n needs an
    empty proof and equal roots; m == 0 needs an empty proof and ``root_m`` the empty
    tree's root (every tree extends the empty one, but a size-0 head with another root is
    not a head of this tree).
    """
    _check_int(m, n)
    _check_sequence(proof)
    if not (_is_hash(root_m) and _is_hash(root_n)) or not 0 <= m <= n:
        return False
    if m == 0:
        return not proof and root_m == EMPTY_ROOT and (n > 0 or root_n == EMPTY_ROOT)
    if m == n:
        return not proof and root_m == root_n
    if not proof or not all(_is_hash(c) for c in proof):
        return False  # step 1: an empty consistency_path fails
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, root_m)  # step 2: first is an exact power of two
    fn, sn = m - 1, n - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    return fr == root_m and sr == root_n and sn == 0  # step 7


# --- input checks ----------------------------------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _check_int(*values: object) -> None:
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"tree sizes and indices must be int, not {type(v).__name__}")


def _check_sequence(proof: object) -> None:
    if isinstance(proof, (bytes, str)) or not isinstance(proof, Sequence):
        raise TypeError("a proof must be a sequence of 32-byte hashes")
