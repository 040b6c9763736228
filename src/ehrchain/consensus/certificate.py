"""Commit certificates: a quorum of validator signatures that makes a block final.

A vote is a validator's Ed25519 signature over ``core.block.commit_message``
(chain id, height, round, block hash), so it cannot be replayed on another
chain, at another height or for another block. A certificate is final when it
holds votes from a quorum of distinct validators and nothing else: a single
unknown, repeated or badly signed vote rejects it, so every node that accepts a
block accepts the same certificate for the same reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import pairwise

from ehrchain.consensus.errors import InvalidCertificate
from ehrchain.core.block import BlockHeader, CommitCertificate, Vote, commit_message
from ehrchain.core.types import Address
from ehrchain.crypto import signing
from ehrchain.crypto.errors import CryptoError


def max_faulty(n: int) -> int:
    """f: the most Byzantine validators n validators tolerate (n >= 3f + 1)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"a validator set has at least one member, not {n!r}")
    return (n - 1) // 3


def quorum(n: int) -> int:
    """Votes needed to commit among n validators: n - f, i.e. more than two thirds.

    This is 2f + 1 exactly when n = 3f + 1. For other n, 2f + 1 is too few
    (n = 3 would commit on 1 vote, so two partitions could commit two different
    blocks); n - f keeps the rule that any two quorums share at least f + 1
    validators, hence at least one honest one.
    """
    return n - max_faulty(n)


def sign_vote(
    key: signing.SigningKey,
    validator: Address,
    chain_id: str,
    height: int,
    round_: int,
    block_hash: bytes,
) -> Vote:
    """The vote of ``validator`` (whose current key is ``key``) to commit a block."""
    return Vote(validator, key.sign(commit_message(chain_id, height, round_, block_hash)))


def make_certificate(round_: int, votes: Iterable[Vote]) -> CommitCertificate:
    """A certificate with the votes sorted by validator, so one vote set has one encoding.

    Raises InvalidCertificate if two votes come from the same validator.
    """
    ordered = tuple(sorted(votes, key=lambda v: v.validator))
    for earlier, later in pairwise(ordered):
        if earlier.validator == later.validator:
            raise InvalidCertificate(f"two votes from validator {later.validator}")
    return CommitCertificate(round_, ordered)


def check_certificate(
    header: BlockHeader, cert: CommitCertificate, validators: Mapping[Address, bytes]
) -> None:
    """Raise InvalidCertificate unless ``cert`` proves ``header`` final for ``validators``.

    ``validators`` maps each validator's address to its Ed25519 public key at
    the block's height. Checks, in order:
      1. the validator set is not empty;
      2. the round is a non-negative integer;
      3. each vote is from a known validator, not seen before in this certificate,
         and its signature verifies over the commit message for this header and round;
      4. the valid distinct votes reach ``quorum(len(validators))``.
    """
    if not validators:
        raise InvalidCertificate("the validator set is empty")
    if isinstance(cert.round, bool) or not isinstance(cert.round, int) or cert.round < 0:
        raise InvalidCertificate("round must be a non-negative integer")
    message = commit_message(header.chain_id, header.height, cert.round, header.hash)
    seen: set[Address] = set()
    for vote in cert.votes:
        _check_vote(vote, message, validators, seen)
        seen.add(vote.validator)
    needed = quorum(len(validators))
    if len(seen) < needed:
        raise InvalidCertificate(
            f"{len(seen)} of {len(validators)} validators voted for block "
            f"{header.height}; {needed} needed"
        )


def _check_vote(
    vote: Vote, message: bytes, validators: Mapping[Address, bytes], seen: set[Address]
) -> None:
    if not isinstance(vote, Vote):
        raise InvalidCertificate("malformed vote")
    if not isinstance(vote.validator, str) or not isinstance(vote.signature, bytes):
        raise InvalidCertificate("malformed vote")
    if vote.validator not in validators:
        raise InvalidCertificate(f"vote from {vote.validator}, who is not a validator")
    if vote.validator in seen:
        raise InvalidCertificate(f"two votes from validator {vote.validator}")
    try:
        signing.verify(validators[vote.validator], message, vote.signature)
    except CryptoError as exc:
        raise InvalidCertificate(
            f"vote from {vote.validator} does not sign this block: {exc}"
        ) from exc
