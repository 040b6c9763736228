"""The interface every consensus engine (solo, bft, pow) implements.

Two faces, both pure. The node-facing ``Engine`` answers three questions: is it
time to seal a block, how is a block this node proposed made final, and does a
received block carry a valid proof of finality. The network-facing ``Replica``
is a message handler, ``on_message(state, msg) -> (state, outbox)``: it reads
one immutable message, returns the next immutable state and what to send or
announce, and never touches sockets or clocks, so a seeded simulator can drive
many replicas deterministically. Time is always passed in (milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ehrchain.consensus.errors import InvalidLimits
from ehrchain.core.block import BlockHeader, CommitCertificate, Vote
from ehrchain.core.types import Address, BlockHash


@dataclass(frozen=True, slots=True)
class SealingLimits:
    """When a proposer seals: a full block (count or bytes) or the oldest tx waited long enough.

    Validated on construction: a limit of zero transactions or bytes could never
    hold a transaction, so such limits are refused rather than stalling the chain.
    """

    max_txs: int
    max_bytes: int
    max_wait_ms: int
    """0 seals as soon as anything is pending."""

    def __post_init__(self) -> None:
        for name, least in (("max_txs", 1), ("max_bytes", 1), ("max_wait_ms", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidLimits(f"{name} must be an integer of at least {least}")


def limits_reached(
    limits: SealingLimits,
    pending_count: int,
    pending_bytes: int,
    oldest_pending_ms: int | None,
    now_ms: int,
) -> bool:
    """Whether a non-empty pool is full or has waited ``max_wait_ms`` since its oldest tx.

    A clock that steps back (now before the oldest arrival) counts as no wait.
    """
    if pending_count >= limits.max_txs or pending_bytes >= limits.max_bytes:
        return True
    if oldest_pending_ms is None:
        raise ValueError("pending transactions need the arrival time of the oldest")
    return now_ms - oldest_pending_ms >= limits.max_wait_ms


def seal_due(
    limits: SealingLimits,
    pending_count: int,
    pending_bytes: int,
    oldest_pending_ms: int | None,
    now_ms: int,
    forced: bool,
) -> bool:
    """When a block-making engine (solo, pow) starts a block: when forced (``/mine``),
    when the pool fills a block, or when its oldest transaction has waited.

    Never for an empty pool, even when forced: a block without transactions
    would record nothing, so ``/mine`` on an empty pool makes nothing.
    """
    if pending_count <= 0:
        return False
    if forced:
        return True
    return limits_reached(limits, pending_count, pending_bytes, oldest_pending_ms, now_ms)


class Engine(Protocol):
    """What the node asks of consensus; one instance per node, immutable."""

    @property
    def name(self) -> str:
        """The ``consensus`` setting that selects this engine (``solo``, ``bft``, ``pow``)."""
        ...

    @property
    def limits(self) -> SealingLimits:
        """The caps the node packs a block to."""
        ...

    def seal_decision(
        self,
        pending_count: int,
        pending_bytes: int,
        oldest_pending_ms: int | None,
        now_ms: int,
        forced: bool,
    ) -> bool:
        """Whether to seal a block from the pending pool now; never for an empty pool."""
        ...

    def certify(self, header: BlockHeader) -> CommitCertificate:
        """The certificate that makes a block this node proposed final (or raise)."""
        ...

    def check(
        self, header: BlockHeader, cert: CommitCertificate, validators: Mapping[Address, bytes]
    ) -> None:
        """Raise a ConsensusError unless ``cert`` proves ``header`` final for ``validators``."""
        ...


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposer offers a block header for its height in a round."""

    round: int
    header: BlockHeader


@dataclass(frozen=True, slots=True)
class CommitVote:
    """A validator's signed vote to commit a block hash at a height and round."""

    height: int
    round: int
    block_hash: BlockHash
    vote: Vote


Message = Proposal | CommitVote
"""What replicas send each other."""


@dataclass(frozen=True, slots=True)
class Send:
    """Deliver ``message`` to one validator, or to all of them when ``to`` is None."""

    to: Address | None
    message: Message


@dataclass(frozen=True, slots=True)
class Committed:
    """Event: the block with ``header`` is final; the node stores it with ``certificate``."""

    header: BlockHeader
    certificate: CommitCertificate


Output = Send | Committed
Outbox = tuple[Output, ...]

S = TypeVar("S")


class Replica(Protocol[S]):
    """A consensus participant as a pure message handler over its own state type ``S``."""

    def on_message(self, state: S, msg: Message) -> tuple[S, Outbox]:
        """The next state and the messages and events this message causes."""
        ...
