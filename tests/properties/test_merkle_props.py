"""Properties of the RFC 6962 Merkle tree, checked against a direct recursive reference.

The reference below transcribes RFC 6962 §2.1 (MTH), §2.1.1 (PATH) and §2.1.2
(PROOF/SUBPROOF) literally, splitting at the largest power of two below n. It is
itself pinned to the CT golden vectors, and the fast level-by-level code in
``ehrchain.core.merkle`` must agree with it for every size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ehrchain.core import merkle
from ehrchain.core.errors import InvalidProof

MAX_SIZE = 64


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(n)
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def ref_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, leaves, True)


CT_LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243")] + [
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
CT_PATH_5_8 = [
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]
CT_PROOF_6_8 = [
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]


def _leaves(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") for i in range(n)]


def test_reference_reproduces_ct_vectors() -> None:
    assert ref_mth(CT_LEAVES).hex() == CT_ROOT_8
    assert [h.hex() for h in ref_path(5, CT_LEAVES)] == CT_PATH_5_8
    assert [h.hex() for h in ref_proof(6, CT_LEAVES)] == CT_PROOF_6_8


def test_root_matches_reference_for_every_size_up_to_300() -> None:
    leaves = _leaves(300)
    for n in range(301):
        assert merkle.root(leaves[:n]) == ref_mth(leaves[:n]), n


@given(st.lists(st.binary(max_size=40), max_size=2 * MAX_SIZE))
def test_root_matches_reference_for_any_leaves(leaves: list[bytes]) -> None:
    assert merkle.root(leaves) == ref_mth(leaves)


def test_every_inclusion_proof_matches_reference_and_verifies() -> None:
    leaves = _leaves(MAX_SIZE)
    for n in range(1, MAX_SIZE + 1):
        tree, root = leaves[:n], ref_mth(leaves[:n])
        for i in range(n):
            proof = merkle.inclusion_proof(tree, i)
            assert list(proof) == ref_path(i, tree), (i, n)
            merkle.verify_inclusion(tree[i], i, n, proof, root)


def test_every_consistency_proof_matches_reference_and_verifies() -> None:
    leaves = _leaves(MAX_SIZE)
    roots = [ref_mth(leaves[:n]) for n in range(MAX_SIZE + 1)]
    for n in range(1, MAX_SIZE + 1):
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(leaves[:n], m)
            assert list(proof) == ref_proof(m, leaves[:n]), (m, n)
            merkle.verify_consistency(m, n, roots[m], roots[n], proof)
        merkle.verify_consistency(0, n, roots[0], roots[n], merkle.consistency_proof(leaves[:n], 0))


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(st.lists(st.binary(max_size=16), min_size=1, max_size=MAX_SIZE))
    return leaves, draw(st.integers(0, len(leaves) - 1))


@given(tree_and_index())
def test_inclusion_verifies_for_random_trees(case: tuple[list[bytes], int]) -> None:
    leaves, i = case
    merkle.InclusionProof.build(leaves, i).verify(leaves[i])


@given(tree_and_index(), st.binary(max_size=16))
def test_inclusion_fails_for_a_changed_leaf(case: tuple[list[bytes], int], other: bytes) -> None:
    leaves, i = case
    assume(other != leaves[i])
    proof = merkle.inclusion_proof(leaves, i)
    with pytest.raises(InvalidProof):
        merkle.verify_inclusion(other, i, len(leaves), proof, merkle.root(leaves))


@given(tree_and_index(), st.data())
def test_inclusion_fails_for_a_changed_index(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves = [i.to_bytes(2, "big") + leaf for i, leaf in enumerate(case[0])]  # distinct leaves
    i, n = case[1], len(leaves)
    j = data.draw(st.integers(0, n))  # n itself: an index just outside the tree
    assume(j != i)
    proof = merkle.inclusion_proof(leaves, i)
    with pytest.raises(InvalidProof):
        merkle.verify_inclusion(leaves[i], j, n, proof, merkle.root(leaves))


@given(tree_and_index(), st.integers(1, 2 * MAX_SIZE))
def test_inclusion_fails_for_a_wrong_size(case: tuple[list[bytes], int], size: int) -> None:
    """A wrong size fails unless it gives leaf i a path of the same shape.

    The shape is fixed by the bit length of i XOR (size - 1) (how far up the
    leaf's path the tree's right edge is); a root alone does not bind the size,
    which is why the size must come from a trusted source.
    """
    leaves, i = case
    n = len(leaves)
    assume(size != n)
    proof = merkle.inclusion_proof(leaves, i)
    same_shape = i < size and (i ^ (n - 1)).bit_length() == (i ^ (size - 1)).bit_length()
    if same_shape:
        merkle.verify_inclusion(leaves[i], i, size, proof, merkle.root(leaves))
    else:
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(leaves[i], i, size, proof, merkle.root(leaves))


@given(tree_and_index(), st.data())
def test_inclusion_fails_for_any_flipped_proof_byte(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, i = case
    proof = list(merkle.inclusion_proof(leaves, i))
    assume(proof)
    k = data.draw(st.integers(0, len(proof) - 1))
    pos = data.draw(st.integers(0, merkle.HASH_SIZE - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(proof[k])
    flipped[pos] ^= 1 << bit
    proof[k] = bytes(flipped)
    with pytest.raises(InvalidProof):
        merkle.verify_inclusion(leaves[i], i, len(leaves), proof, merkle.root(leaves))


@st.composite
def grown_tree(draw: st.DrawFn) -> tuple[list[bytes], int]:
    leaves = draw(st.lists(st.binary(max_size=16), min_size=1, max_size=MAX_SIZE))
    return leaves, draw(st.integers(1, len(leaves)))


@given(grown_tree(), st.data())
def test_consistency_fails_when_the_old_tree_differs(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, m = case
    n = len(leaves)
    j = data.draw(st.integers(0, m - 1))
    other = data.draw(st.binary(max_size=16))
    assume(other != leaves[j])
    forked = [*leaves[:j], other, *leaves[j + 1 : m]]
    proof = merkle.consistency_proof(leaves, m)
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(m, n, merkle.root(forked), merkle.root(leaves), proof)
    # A proof made from a forked history does not link the real old root either.
    forked_new = [*forked, *leaves[m:]]
    forked_proof = merkle.consistency_proof(forked_new, m)
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(
            m, n, merkle.root(leaves[:m]), merkle.root(forked_new), forked_proof
        )


@settings(max_examples=200)
@given(grown_tree(), st.data())
def test_consistency_fails_for_any_flipped_proof_byte(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, m = case
    proof = list(merkle.consistency_proof(leaves, m))
    assume(proof)
    k = data.draw(st.integers(0, len(proof) - 1))
    pos = data.draw(st.integers(0, merkle.HASH_SIZE - 1))
    flipped = bytearray(proof[k])
    flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    proof[k] = bytes(flipped)
    with pytest.raises(InvalidProof):
        merkle.verify_consistency(
            m, len(leaves), merkle.root(leaves[:m]), merkle.root(leaves), proof
        )
