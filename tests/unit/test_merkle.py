"""RFC 6962 Merkle trees against the certificate-transparency golden vectors.

The vectors are the 8-leaf corpus used by the CT reference implementations
(google/certificate-transparency, transparency-dev/merkle ``testonly``): roots
for every size 0..8 and the published inclusion and consistency proofs.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from ehrchain.core import merkle
from ehrchain.core.errors import InvalidProof

LEAVES = tuple(
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
)

ROOTS = (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)

# (leaf index, tree size) -> PATH
INCLUSION = {
    (0, 1): (),
    (0, 8): (
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ),
    (5, 8): (
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ),
    (2, 3): ("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",),
    (1, 5): (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ),
}

# (old size, new size) -> PROOF
CONSISTENCY = {
    (1, 1): (),
    (1, 8): (
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ),
    (6, 8): (
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ),
    (2, 5): (
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ),
    (6, 7): (
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ),
}


def _root(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size])


def test_hash_definitions() -> None:
    assert merkle.EMPTY_ROOT.hex() == hashlib.sha256(b"").hexdigest()
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = bytes(range(32)), bytes(range(32, 64))
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


@pytest.mark.parametrize("size", range(9))
def test_root_matches_ct_vectors(size: int) -> None:
    assert merkle.root(LEAVES[:size]).hex() == ROOTS[size]
    hashes = [merkle.leaf_hash(leaf) for leaf in LEAVES[:size]]
    assert merkle.root_from_hashes(hashes).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(INCLUSION))
def test_inclusion_proof_matches_ct_vectors(index: int, size: int) -> None:
    proof = merkle.inclusion_proof(LEAVES[:size], index)
    assert tuple(h.hex() for h in proof) == INCLUSION[index, size]
    merkle.verify_inclusion(LEAVES[index], index, size, proof, _root(size))


@pytest.mark.parametrize(("old", "new"), sorted(CONSISTENCY))
def test_consistency_proof_matches_ct_vectors(old: int, new: int) -> None:
    proof = merkle.consistency_proof(LEAVES[:new], old)
    assert tuple(h.hex() for h in proof) == CONSISTENCY[old, new]
    merkle.verify_consistency(old, new, _root(old), _root(new), proof)


def test_published_inclusion_proof_rejected_for_another_leaf() -> None:
    proof = merkle.inclusion_proof(LEAVES, 5)
    with pytest.raises(InvalidProof, match="expected root"):
        merkle.verify_inclusion(LEAVES[4], 5, 8, proof, _root(8))


def test_inclusion_rejects_index_outside_tree() -> None:
    with pytest.raises(InvalidProof, match="not in a tree"):
        merkle.verify_inclusion(LEAVES[0], 8, 8, merkle.inclusion_proof(LEAVES, 7), _root(8))


def test_inclusion_rejects_too_long_and_too_short_proofs() -> None:
    proof = merkle.inclusion_proof(LEAVES, 0)
    with pytest.raises(InvalidProof, match="too long"):
        merkle.verify_inclusion(LEAVES[0], 0, 8, (*proof, proof[0]), _root(8))
    with pytest.raises(InvalidProof, match="too short"):
        merkle.verify_inclusion(LEAVES[0], 0, 8, proof[:-1], _root(8))


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33)])
def test_inclusion_rejects_hashes_of_wrong_length(bad: bytes) -> None:
    proof = merkle.inclusion_proof(LEAVES, 3)
    with pytest.raises(InvalidProof, match="32 bytes"):
        merkle.verify_inclusion(LEAVES[3], 3, 8, (bad, *proof[1:]), _root(8))
    with pytest.raises(InvalidProof, match="32 bytes"):
        merkle.verify_inclusion(LEAVES[3], 3, 8, proof, bad)


@pytest.mark.parametrize(("index", "size"), [(-1, 8), (0, -1), (True, 8), (0, 8.0)])
def test_inclusion_rejects_non_integer_or_negative_positions(index: object, size: object) -> None:
    with pytest.raises(InvalidProof, match="non-negative integer"):
        merkle.verify_inclusion(LEAVES[0], index, size, (), _root(8))  # type: ignore[arg-type]


def test_root_alone_does_not_bind_the_tree_size() -> None:
    """RFC 6962 property: leaf 0's path has the same shape in trees of 5 and 6 leaves.

    A verifier must therefore take the tree size from a trusted source, as
    Certificate Transparency does with its signed tree heads.
    """
    proof = merkle.inclusion_proof(LEAVES[:5], 0)
    merkle.verify_inclusion(LEAVES[0], 0, 6, proof, _root(5))


def test_provers_reject_positions_outside_the_tree() -> None:
    with pytest.raises(IndexError):
        merkle.inclusion_proof(LEAVES, 8)
    with pytest.raises(IndexError):
        merkle.inclusion_proof((), 0)
    with pytest.raises(ValueError, match="old size"):
        merkle.consistency_proof(LEAVES, 9)
    with pytest.raises(ValueError, match="old size"):
        merkle.consistency_proof(LEAVES, -1)


def test_consistency_from_the_empty_tree() -> None:
    assert merkle.consistency_proof(LEAVES, 0) == ()
    merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, _root(8), ())
    with pytest.raises(InvalidProof, match="old root"):
        merkle.verify_consistency(0, 8, _root(1), _root(8), ())
    with pytest.raises(InvalidProof, match="must be empty"):
        merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, _root(8), (_root(1),))


def test_consistency_of_equal_sizes_needs_equal_roots() -> None:
    merkle.verify_consistency(8, 8, _root(8), _root(8), ())
    with pytest.raises(InvalidProof, match="old root"):
        merkle.verify_consistency(8, 8, _root(7), _root(8), ())


def test_consistency_rejects_shrinking_and_empty_proofs() -> None:
    with pytest.raises(InvalidProof, match="exceeds"):
        merkle.verify_consistency(8, 7, _root(8), _root(7), ())
    with pytest.raises(InvalidProof, match="empty"):
        merkle.verify_consistency(6, 8, _root(6), _root(8), ())


def test_consistency_rejects_wrong_roots_and_lengths() -> None:
    proof = merkle.consistency_proof(LEAVES, 6)
    with pytest.raises(InvalidProof, match="old root"):
        merkle.verify_consistency(6, 8, _root(5), _root(8), proof)
    with pytest.raises(InvalidProof, match="new root"):
        merkle.verify_consistency(6, 8, _root(6), _root(7), proof)
    with pytest.raises(InvalidProof, match="too short"):
        merkle.verify_consistency(6, 8, _root(6), _root(8), proof[:-1])
    with pytest.raises(InvalidProof, match="too long"):
        merkle.verify_consistency(6, 8, _root(6), _root(8), (*proof, proof[0]))


def test_inclusion_proof_object_round_trips_through_json() -> None:
    proof = merkle.InclusionProof.build(LEAVES, 5)
    assert proof == merkle.InclusionProof(
        5, 8, tuple(bytes.fromhex(h) for h in INCLUSION[5, 8]), _root(8)
    )
    wire = json.loads(json.dumps(proof.to_json()))
    assert wire["root"] == ROOTS[8]
    decoded = merkle.InclusionProof.from_json(wire)
    assert decoded == proof
    decoded.verify(LEAVES[5])
    with pytest.raises(InvalidProof):
        decoded.verify(LEAVES[6])


@pytest.mark.parametrize(
    "change",
    [
        {"leaf_index": 8},
        {"leaf_index": -1},
        {"leaf_index": "5"},
        {"tree_size": None},
        {"root": "zz"},
        {"root": ROOTS[8][:-2]},
        {"root": 5},
        {"hashes": "bc1a"},
        {"hashes": [ROOTS[1], 7]},
        {"hashes": [ROOTS[1][:-2]]},
    ],
)
def test_inclusion_proof_from_json_rejects_malformed_fields(change: dict[str, object]) -> None:
    wire = {**merkle.InclusionProof.build(LEAVES, 5).to_json(), **change}
    with pytest.raises(InvalidProof):
        merkle.InclusionProof.from_json(wire)


def test_inclusion_proof_from_json_rejects_missing_fields() -> None:
    wire = merkle.InclusionProof.build(LEAVES, 5).to_json()
    del wire["tree_size"]
    with pytest.raises(InvalidProof, match="malformed"):
        merkle.InclusionProof.from_json(wire)
