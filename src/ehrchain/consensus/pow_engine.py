"""The node-facing side of permissioned proof of work (``Engine`` for ``consensus = "pow"``).

What makes a block final here is different from BFT: no quorum, but work at
the chain's fixed ``target`` and the seal of one admitted validator, its miner.
``check`` is what every received, synced or replayed block must pass before
it is executed; which of several valid chains a node follows is
``pow_chain``'s fork choice, not this engine's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ehrchain.consensus.base import SealingLimits, seal_due
from ehrchain.consensus.certificate import make_certificate, sign_vote
from ehrchain.consensus.errors import NotAValidator
from ehrchain.consensus.pow import SEAL_ROUND, check_header_seal, check_work
from ehrchain.core.address import parse_address
from ehrchain.core.block import BlockHeader, CommitCertificate
from ehrchain.core.types import Address
from ehrchain.crypto.signing import SigningKey

NAME: Final = "pow"
MAX_TARGET: Final = 64
"""Above this a block would take centuries of hashing; a genesis asking for it is a mistake."""


@dataclass(frozen=True, slots=True)
class PowEngine:
    """A miner's engine: ``miner`` is this node's address, ``key`` its current key."""

    key: SigningKey
    miner: Address
    limits: SealingLimits
    target: int

    def __post_init__(self) -> None:
        parse_address(self.miner)
        if isinstance(self.target, bool) or not 1 <= self.target <= MAX_TARGET:
            raise ValueError(f"pow target must be 1 to {MAX_TARGET} bits, not {self.target!r}")

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
        """Seal a header this node mined: its one vote at round 0 (``pow.seal``)."""
        if header.proposer != self.miner:
            raise NotAValidator(
                f"block {header.height} was mined by {header.proposer}, not {self.miner}"
            )
        vote = sign_vote(
            self.key, self.miner, header.chain_id, header.height, SEAL_ROUND, header.hash
        )
        return make_certificate(SEAL_ROUND, (vote,))

    def check(
        self, header: BlockHeader, cert: CommitCertificate, validators: Mapping[Address, bytes]
    ) -> None:
        """The header meets the chain's target and is sealed by its miner, a validator."""
        check_work(header, self.target)
        check_header_seal(header, cert, validators)
