"""The single-validator engine: BFT with n = 1, the embedded default.

With one validator f = 0 and the quorum is 1, so the validator's own vote on
the block it proposed is the whole commit certificate. Blocks are therefore
final the moment they are sealed, and a node that syncs them checks exactly what
it would check under BFT: a quorum of valid votes from the validator set.
Always round 0: with no peers there is nothing to wait for or time out on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from ehrchain.consensus.base import (
    Committed,
    Message,
    Outbox,
    Proposal,
    SealingLimits,
    seal_due,
)
from ehrchain.consensus.certificate import check_certificate, make_certificate, sign_vote
from ehrchain.consensus.errors import NotAValidator
from ehrchain.core.address import parse_address
from ehrchain.core.block import BlockHeader, CommitCertificate
from ehrchain.core.types import Address
from ehrchain.crypto.signing import SigningKey

NAME: Final = "solo"
ROUND: Final = 0


@dataclass(frozen=True, slots=True)
class SoloState:
    """The height the validator commits next; proposals for any other height are ignored."""

    next_height: int


@dataclass(frozen=True, slots=True)
class SoloEngine:
    """The one validator's engine; ``validator`` is its address, ``key`` its current key."""

    key: SigningKey
    validator: Address
    limits: SealingLimits

    def __post_init__(self) -> None:
        parse_address(self.validator)

    @property
    def name(self) -> str:
        return NAME

    def seal_decision(
        self,
        pending_count: int,
        pending_bytes: int,
        oldest_pending_ms: int | None,
        now_ms: int,
        forced: bool,
    ) -> bool:
        """``base.seal_due``: forced, a full pool, or a waited one; never an empty pool."""
        return seal_due(
            self.limits, pending_count, pending_bytes, oldest_pending_ms, now_ms, forced
        )

    def certify(self, header: BlockHeader) -> CommitCertificate:
        """Sign this validator's vote for its own block: the n = 1 quorum.

        Raises NotAValidator for a header proposed by anyone else, so the node
        can never finalise a block it did not propose.
        """
        if header.proposer != self.validator:
            raise NotAValidator(
                f"block {header.height} was proposed by {header.proposer}, not {self.validator}"
            )
        vote = sign_vote(
            self.key, self.validator, header.chain_id, header.height, ROUND, header.hash
        )
        return make_certificate(ROUND, (vote,))

    def check(
        self, header: BlockHeader, cert: CommitCertificate, validators: Mapping[Address, bytes]
    ) -> None:
        """The proposer is a validator and ``cert`` holds a quorum of valid votes."""
        if header.proposer not in validators:
            raise NotAValidator(
                f"block {header.height} proposer {header.proposer} is not a validator"
            )
        check_certificate(header, cert, validators)

    def on_message(self, state: SoloState, msg: Message) -> tuple[SoloState, Outbox]:
        """Commit this validator's own proposal for the next height; ignore anything else.

        A solo validator has no peers, so votes and foreign or stale proposals
        change nothing.
        """
        if not isinstance(msg, Proposal):
            return state, ()
        header = msg.header
        if header.height != state.next_height or header.proposer != self.validator:
            return state, ()
        committed = Committed(header, self.certify(header))
        return replace(state, next_height=state.next_height + 1), (committed,)
