"""Permissioned proof of work: nonce search, seals, cumulative work and fork choice.

A block is valid work when its header hash has at least ``header.target``
leading zero bits, so finding one takes 2**target hashes on average: that is
the block's work, and the best chain is the one with the most cumulative work
("longest valid chain"). Work alone does not admit a block: its proposer must
be a validator and seal the mined header with a one-vote commit certificate,
so only admitted validator nodes can extend the chain however much hash power
anyone else has. Everything here is pure; ``pow_chain`` keeps the block tree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Final

from ehrchain.consensus.certificate import check_certificate, make_certificate, sign_vote
from ehrchain.consensus.errors import ConsensusError, InsufficientWork, NotAValidator
from ehrchain.core.block import Block, BlockHeader, CommitCertificate
from ehrchain.core.types import Address, BlockHash
from ehrchain.crypto.signing import SigningKey

SEAL_ROUND: Final = 0
"""PoW has no rounds; seals are single votes at round 0."""


class NoCommonAncestor(ConsensusError):
    """Two tips are not in one block tree: a programming error in the caller."""


def leading_zero_bits(digest: bytes) -> int:
    """How many of the digest's leading bits (big-endian) are zero."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def meets_target(header_hash: bytes, target_bits: int) -> bool:
    """Whether the hash has at least ``target_bits`` leading zero bits."""
    return leading_zero_bits(header_hash) >= target_bits


def mine(header: BlockHeader, target: int, start_nonce: int, max_iters: int) -> BlockHeader | None:
    """Search nonces ``start_nonce`` .. ``start_nonce + max_iters - 1`` for a header with
    ``target`` set whose hash meets it; None if none does (call again from where it stopped)."""
    candidate = replace(header, target=target)
    for nonce in range(start_nonce, start_nonce + max_iters):
        candidate = replace(candidate, nonce=nonce)
        if meets_target(candidate.hash, target):
            return candidate
    return None


def check_work(header: BlockHeader, target: int) -> None:
    """Raise InsufficientWork unless the header claims the chain's fixed ``target`` and meets it.

    A header may not pick its own target: an easier one would be less work, a
    harder one would buy a single block the weight of many.
    """
    if header.target != target:
        raise InsufficientWork(f"block target {header.target} is not the chain's {target}")
    if not meets_target(header.hash, target):
        raise InsufficientWork(
            f"header hash does not meet its target: {leading_zero_bits(header.hash)} "
            f"leading zero bits, {target} needed"
        )


def block_work(target_bits: int) -> int:
    """Expected hashes to find a block at this target: 2**target."""
    return 1 << target_bits


def best_tip(work: Mapping[BlockHash, int]) -> BlockHash:
    """The block with the most cumulative work; ties go to the lowest hash.

    A fixed tie-break, rather than "first seen", means every node that knows
    the same blocks picks the same tip, so equal-work forks cannot keep two
    honest nodes apart once blocks stop arriving.
    """
    if not work:
        raise ValueError("no blocks to choose from")
    return min(work, key=lambda h: (-work[h], h))


def reorg_plan(
    old_tip: BlockHash,
    new_tip: BlockHash,
    parent_of: Callable[[BlockHash], BlockHash | None],
) -> tuple[list[BlockHash], list[BlockHash]]:
    """Blocks to undo (old tip first) and to apply (oldest first) to move between tips.

    Walks back from both tips in step, so the cost is the depth of the fork,
    not the length of the chain. ``parent_of`` returns None above the root.
    """
    old_path, new_path = [old_tip], [new_tip]
    old_seen, new_seen = {old_tip}, {new_tip}
    while True:
        if old_path[-1] in new_seen:
            ancestor = old_path[-1]
            break
        if new_path[-1] in old_seen:
            ancestor = new_path[-1]
            break
        old_parent, new_parent = parent_of(old_path[-1]), parent_of(new_path[-1])
        if old_parent is None and new_parent is None:
            raise NoCommonAncestor(f"{old_tip.hex()} and {new_tip.hex()} share no block")
        if old_parent is not None:
            old_path.append(old_parent)
            old_seen.add(old_parent)
        if new_parent is not None:
            new_path.append(new_parent)
            new_seen.add(new_parent)
    undo = old_path[: old_path.index(ancestor)]
    apply = new_path[: new_path.index(ancestor)]
    return undo, apply[::-1]


def seal(block: Block, key: SigningKey, proposer: Address) -> Block:
    """Attach the proposer's one-vote certificate to a mined block."""
    header = block.header
    vote = sign_vote(key, proposer, header.chain_id, header.height, SEAL_ROUND, header.hash)
    return replace(block, certificate=make_certificate(SEAL_ROUND, (vote,)))


def check_seal(block: Block, validators: Mapping[Address, bytes]) -> None:
    """Raise unless the block's proposer is a validator and signed the mined header."""
    check_header_seal(block.header, block.certificate, validators)


def check_header_seal(
    header: BlockHeader, cert: CommitCertificate, validators: Mapping[Address, bytes]
) -> None:
    """``check_seal`` for a header and its certificate.

    The certificate is checked against the proposer alone (a set of one, whose
    quorum is one vote), so a block carries exactly its miner's seal.
    """
    proposer = header.proposer
    if proposer not in validators:
        raise NotAValidator(f"block {header.height} sealed by {proposer}, not a validator")
    check_certificate(header, cert, {proposer: validators[proposer]})


def seal_error(block: Block, validators: Mapping[Address, bytes]) -> str | None:
    """``check_seal`` as a value: the reason the seal is bad, or None."""
    try:
        check_seal(block, validators)
    except ConsensusError as exc:
        return str(exc)
    return None
