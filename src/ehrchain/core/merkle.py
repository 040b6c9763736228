"""RFC 6962 (Certificate Transparency) Merkle trees with inclusion and consistency proofs.

Leaves and interior nodes are hashed with different one-byte prefixes
(0x00 and 0x01), so a leaf can never be passed off as an interior node
(second-preimage attack). The tree over ``n`` leaves splits at the largest power
of two below ``n`` (RFC 6962 §2.1). Building it bottom-up, pairing neighbours on
each level and carrying an unpaired last node up unchanged, gives exactly that
tree: every left subtree is complete, so the two constructions agree for all
``n``. The provers below use the level-by-level form for speed; the verifiers
are the RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms, small and self-contained so a
client (or a browser) can check proofs against a root it trusts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ehrchain.core.errors import InvalidProof

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 6962 §2.1)."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 ‖ d)."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Pair neighbours; an unpaired last node moves up unchanged."""
    sha = _sha256
    parents = [
        sha(NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
    ]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def _levels(leaf_hashes: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root level (one node) last."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over raw leaf data (RFC 6962 §2.1)."""
    return root_from_hashes([leaf_hash(d) for d in leaves])


def inclusion_proof_from_hashes(leaf_hashes: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """PATH(index, D[n]) (RFC 6962 §2.1.1) over already-hashed leaves, bottom-up.

    Raises IndexError when ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaf_hashes)} leaves")
    path: list[bytes] = []
    for level in _levels(leaf_hashes)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return tuple(path)


def inclusion_proof(leaves: Sequence[bytes], index: int) -> tuple[bytes, ...]:
    """PATH(index, D[n]) (RFC 6962 §2.1.1) over raw leaf data."""
    return inclusion_proof_from_hashes([leaf_hash(d) for d in leaves], index)


def consistency_proof_from_hashes(leaf_hashes: Sequence[bytes], old_size: int) -> tuple[bytes, ...]:
    """PROOF(m, D[n]) (RFC 6962 §2.1.2) over already-hashed leaves.

    Empty when ``old_size`` is 0 or ``n`` (nothing to prove). Raises ValueError
    when ``old_size`` is negative or larger than the tree.
    """
    size = len(leaf_hashes)
    if not 0 <= old_size <= size:
        raise ValueError(f"old size {old_size} is not within a tree of {size} leaves")
    if old_size in (0, size):
        return ()
    levels = _levels(leaf_hashes)

    def subtree(start: int, end: int) -> bytes:
        # Every range the recursion visits is an aligned subtree: one node of ``levels``.
        height = (end - start - 1).bit_length()
        return levels[height][start >> height]

    def subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [subtree(start, end)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [*subproof(m, start, start + k, complete), subtree(start + k, end)]
        return [*subproof(m - k, start + k, end, False), subtree(start, start + k)]

    return tuple(subproof(old_size, 0, size, True))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> tuple[bytes, ...]:
    """PROOF(m, D[n]) (RFC 6962 §2.1.2) over raw leaf data."""
    return consistency_proof_from_hashes([leaf_hash(d) for d in leaves], old_size)


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidProof(f"{name} must be a non-negative integer")
    return value


def _check_hashes(proof: Sequence[bytes], *roots: bytes) -> None:
    for value in (*proof, *roots):
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise InvalidProof(f"every proof hash and root must be {HASH_SIZE} bytes")


def root_from_inclusion_proof(
    leaf_digest: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that an inclusion proof implies (RFC 9162 §2.1.3.2 steps 1-4).

    Raises InvalidProof when the proof has the wrong length for this index and size.
    """
    _check_size("index", index)
    _check_size("tree_size", tree_size)
    _check_hashes(proof, leaf_digest)
    if index >= tree_size:
        raise InvalidProof(f"leaf {index} is not in a tree of {tree_size} leaves")
    fn, sn, r = index, tree_size - 1, leaf_digest
    for p in proof:
        if sn == 0:
            raise InvalidProof("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("inclusion proof is too short")
    return r


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Raise InvalidProof unless ``leaf`` is leaf ``index`` of the tree with ``expected_root``."""
    _check_hashes((), expected_root)
    computed = root_from_inclusion_proof(leaf_hash(leaf), index, tree_size, proof)
    if computed != expected_root:
        raise InvalidProof(f"inclusion proof for leaf {index} does not lead to the expected root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise InvalidProof unless the tree with ``new_root`` extends the one with ``old_root``.

    Follows RFC 9162 §2.1.4.2 for 0 < old_size < new_size. The edge cases are
    decided without a proof: equal sizes need equal roots; an empty old tree
    (root ``EMPTY_ROOT``) is a prefix of every tree. Both take an empty proof.
    """
    _check_size("old_size", old_size)
    _check_size("new_size", new_size)
    _check_hashes(proof, old_root, new_root)
    if old_size > new_size:
        raise InvalidProof(f"old size {old_size} exceeds new size {new_size}")
    if old_size == 0 or old_size == new_size:
        if proof:
            raise InvalidProof("consistency proof must be empty for these sizes")
        expected_old = EMPTY_ROOT if old_size == 0 else new_root
        if old_root != expected_old:
            raise InvalidProof("old root does not match")
        return
    if not proof:
        raise InvalidProof("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("consistency proof is too short")
    if fr != old_root:
        raise InvalidProof("consistency proof does not lead to the old root")
    if sr != new_root:
        raise InvalidProof("consistency proof does not lead to the new root")


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A self-contained proof that leaf ``leaf_index`` is in the tree of ``tree_size`` leaves.

    Validated on construction, so a decoded proof always has the right shape;
    whether it is *true* is decided by ``verify``.
    """

    leaf_index: int
    tree_size: int
    hashes: tuple[bytes, ...]
    root: bytes

    def __post_init__(self) -> None:
        _check_size("leaf_index", self.leaf_index)
        _check_size("tree_size", self.tree_size)
        if self.leaf_index >= self.tree_size:
            raise InvalidProof(f"leaf {self.leaf_index} is not in a tree of {self.tree_size}")
        if not isinstance(self.hashes, tuple):
            raise InvalidProof("hashes must be a tuple")
        _check_hashes(self.hashes, self.root)

    @classmethod
    def build(cls, leaves: Sequence[bytes], index: int) -> InclusionProof:
        """The proof for leaf ``index`` of the tree over raw ``leaves``."""
        hashes = [leaf_hash(d) for d in leaves]
        return cls(
            index, len(hashes), inclusion_proof_from_hashes(hashes, index), root_from_hashes(hashes)
        )

    def verify(self, leaf: bytes) -> None:
        """Raise InvalidProof unless ``leaf`` is the leaf this proof is for."""
        verify_inclusion(leaf, self.leaf_index, self.tree_size, self.hashes, self.root)

    def to_json(self) -> dict[str, Any]:
        """JSON form with hex hashes, for the API and browser-side checking."""
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "hashes": [h.hex() for h in self.hashes],
            "root": self.root.hex(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InclusionProof:
        """Parse ``to_json`` output; raise InvalidProof on any malformed field."""
        try:
            hashes = data["hashes"]
            if not isinstance(hashes, list | tuple):
                raise InvalidProof("hashes must be a list of hex strings")
            return cls(
                data["leaf_index"],
                data["tree_size"],
                tuple(_unhex(h) for h in hashes),
                _unhex(data["root"]),
            )
        except (KeyError, TypeError) as exc:
            raise InvalidProof(f"malformed inclusion proof: {exc!r}") from exc


def _unhex(value: Any) -> bytes:
    if not isinstance(value, str):
        raise InvalidProof("hash must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidProof("hash is not valid hex") from exc
