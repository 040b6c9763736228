"""The messages one node has accepted at its current height, by round and signer.

A validator that double-signs has each of its conflicting votes counted for
the block it names: that is what a quorum certificate it took part in claims,
and it is safe, since two quorums of n - f still share an honest validator, who
never votes twice. Keeping only the first vote instead would let an equivocator
show one node a lock that node can never prove to the others (a liveness bug).
Conflicting votes are kept only for nil and for blocks proposed at this height,
so a validator cannot fill memory with votes for made-up hashes. A round holds
one proposal, the first from its proposer; a later different one is evidence.
Books are immutable; ``with_*`` returns a copy sharing the untouched rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from ehrchain.consensus.messages import Precommit, Prevote, Proposal, SignedMessage
from ehrchain.core.types import Address, BlockHash

V = TypeVar("V", Prevote, Precommit)
Votes = Mapping[int, Mapping[Address, tuple[V, ...]]]
"""round → validator → its distinct votes in that round, first received first."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A proposed block with the round it was proposed in and whether it is valid."""

    round: int
    block_hash: BlockHash
    block: bytes
    valid: bool


def _empty() -> Mapping[int, Mapping[Address, tuple[V, ...]]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class VoteBook:
    """Proposals (with their checked candidate) and votes at one height."""

    proposals: Mapping[int, tuple[Proposal, Candidate]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    prevotes: Votes[Prevote] = field(default_factory=_empty)
    precommits: Votes[Precommit] = field(default_factory=_empty)

    def held(self, msg: SignedMessage) -> tuple[SignedMessage, ...]:
        """What ``msg``'s signer already has here for its kind and round."""
        if isinstance(msg, Proposal):
            entry = self.proposals.get(msg.round)
            return (entry[0],) if entry else ()
        if isinstance(msg, Prevote):
            return self.prevotes.get(msg.round, {}).get(msg.validator, ())
        return self.precommits.get(msg.round, {}).get(msg.validator, ())

    def keeps(self, vote: Prevote | Precommit) -> bool:
        """Whether a conflicting vote is worth keeping: nil or a block proposed here."""
        return vote.block_hash is None or any(
            c.block_hash == vote.block_hash for _, c in self.proposals.values()
        )

    def with_proposal(self, proposal: Proposal, candidate: Candidate) -> VoteBook:
        proposals = dict(self.proposals)
        proposals[proposal.round] = (proposal, candidate)
        return VoteBook(MappingProxyType(proposals), self.prevotes, self.precommits)

    def with_vote(self, vote: Prevote | Precommit) -> VoteBook:
        if isinstance(vote, Prevote):
            return VoteBook(self.proposals, _added(self.prevotes, vote), self.precommits)
        return VoteBook(self.proposals, self.prevotes, _added(self.precommits, vote))

    def candidate(self, round_: int) -> Candidate | None:
        entry = self.proposals.get(round_)
        return entry[1] if entry else None

    def prevotes_for(self, round_: int, block_hash: BlockHash | None) -> tuple[Prevote, ...]:
        """One prevote per validator that prevoted ``block_hash`` in the round."""
        return _for(self.prevotes, round_, block_hash)

    def precommits_for(self, round_: int, block_hash: BlockHash | None) -> tuple[Precommit, ...]:
        return _for(self.precommits, round_, block_hash)

    def prevoters(self, round_: int) -> int:
        return len(self.prevotes.get(round_, {}))

    def precommitters(self, round_: int) -> int:
        return len(self.precommits.get(round_, {}))

    def signers_in(self, round_: int) -> int:
        """Distinct validators heard from in a round, in any kind of message."""
        signers = set(self.prevotes.get(round_, {})) | set(self.precommits.get(round_, {}))
        entry = self.proposals.get(round_)
        if entry:
            signers.add(entry[0].proposer)
        return len(signers)

    def rounds(self) -> frozenset[int]:
        return frozenset(self.proposals) | frozenset(self.prevotes) | frozenset(self.precommits)

    def votes(self) -> tuple[Prevote | Precommit, ...]:
        """Every vote held, by round, prevotes before precommits."""
        out: list[Prevote | Precommit] = []
        for round_ in sorted(set(self.prevotes) | set(self.precommits)):
            for prevotes in self.prevotes.get(round_, {}).values():
                out.extend(prevotes)
            for precommits in self.precommits.get(round_, {}).values():
                out.extend(precommits)
        return tuple(out)

    def signed_by(self, signer: Address) -> tuple[SignedMessage, ...]:
        """Every message of ``signer`` held, by round then kind."""
        out: list[SignedMessage] = []
        for round_ in sorted(self.rounds()):
            entry = self.proposals.get(round_)
            if entry and entry[0].proposer == signer:
                out.append(entry[0])
            out.extend(self.prevotes.get(round_, {}).get(signer, ()))
            out.extend(self.precommits.get(round_, {}).get(signer, ()))
        return tuple(out)


def _for(book: Votes[V], round_: int, block_hash: BlockHash | None) -> tuple[V, ...]:
    found = []
    for votes in book.get(round_, {}).values():
        for vote in votes:
            if vote.block_hash == block_hash:
                found.append(vote)
                break
    return tuple(found)


def _added(book: Votes[V], vote: V) -> Votes[V]:
    rounds: dict[int, Mapping[Address, tuple[V, ...]]] = dict(book)
    signers: dict[Address, tuple[V, ...]] = dict(rounds.get(vote.round, {}))
    votes = list(signers.get(vote.validator, ()))
    votes.append(vote)
    signers[vote.validator] = tuple(votes)
    rounds[vote.round] = MappingProxyType(signers)
    return MappingProxyType(rounds)
