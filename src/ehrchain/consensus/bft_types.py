"""What the BFT handler is given (context, timeouts, block source) and what it asks for.

The handler never performs I/O: it returns outputs, and the driver (a node or
the simulator) carries them out in order — broadcast or send messages, arm
timers, store decided blocks, record evidence. ``Broadcast`` means "to every
other node": the handler has already applied its own message to its state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ehrchain.consensus.evidence import DoubleSign
from ehrchain.consensus.messages import NetworkMessage, TimerEvent, Verifier, signature_ok
from ehrchain.core.block import BlockHeader, CommitCertificate
from ehrchain.core.types import Address, BlockHash, ChainId
from ehrchain.crypto.signing import SigningKey


class ProposalSource(Protocol):
    """The application's side of consensus; blocks are opaque bytes to the protocol.

    ``propose`` may return None when there is nothing to propose yet (the node
    then stays silent for the round). ``header`` decodes a block's header, or
    returns None for bytes that are not a block; the header hash is the block
    hash every vote signs. ``validate`` is called at most once per proposal and
    must be deterministic given the chain decided below ``height``.
    """

    def propose(self, height: int, round_: int) -> bytes | None: ...

    def header(self, block: bytes) -> BlockHeader | None: ...

    def validate(self, height: int, block: bytes) -> bool: ...


ValidatorSetAt = Callable[[int], Mapping[Address, bytes]]
"""The validators (address → Ed25519 public key) that decide a height.

A change made by an admin transaction takes effect at a height the
application defines; all honest nodes agree on it because they agree on the
chain below. It is asked once, when the node moves to a height.
"""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Timer lengths in ms; round-dependent ones grow linearly so that, once the
    network is stable, some round is long enough for every honest node to hear
    every other (the partial-synchrony liveness argument)."""

    propose_ms: int = 1000
    prevote_ms: int = 500
    precommit_ms: int = 500
    per_round_ms: int = 500
    commit_ms: int = 0
    tick_ms: int = 1000

    def propose(self, round_: int) -> int:
        return self.propose_ms + round_ * self.per_round_ms

    def prevote(self, round_: int) -> int:
        return self.prevote_ms + round_ * self.per_round_ms

    def precommit(self, round_: int) -> int:
        return self.precommit_ms + round_ * self.per_round_ms


@dataclass(frozen=True, slots=True)
class BftContext:
    """Everything the handler needs besides its state; ``key`` None = a non-voting follower."""

    chain_id: ChainId
    me: Address
    key: SigningKey | None
    source: ProposalSource
    validator_set_at: ValidatorSetAt
    timeouts: Timeouts = field(default_factory=Timeouts)
    verify: Verifier = signature_ok
    keep_commits: int = 64
    """Decided blocks kept in the state to answer lagging peers; older ones come from sync."""


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: NetworkMessage
    lazy: bool = False
    """A relay of what others signed: it may wait to travel with this node's next
    message to a peer instead of costing a request of its own."""


@dataclass(frozen=True, slots=True)
class Send:
    to: Address
    message: NetworkMessage


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Deliver ``event`` back to this handler after ``delay_ms``."""

    event: TimerEvent
    delay_ms: int


@dataclass(frozen=True, slots=True)
class Decide:
    """``block`` is final at ``height``; store it with ``certificate``."""

    height: int
    block_hash: BlockHash
    block: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class RecordEvidence:
    evidence: DoubleSign


Output = Broadcast | Send | ScheduleTimeout | Decide | RecordEvidence
