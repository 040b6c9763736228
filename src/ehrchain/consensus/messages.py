"""BFT messages: signed proposals and votes, catch-up messages and timer events.

Each signed message signs the canonical encoding of its fields under its own
domain tag with the chain id first, so a prevote can never pass for a
precommit or a proposal, nor a message of one chain for another. A non-nil
precommit signs exactly ``core.block.commit_message``: a quorum of precommits
for one block *is* a commit certificate that ``certificate.check_certificate``
accepts. Timer events are messages too, so a node's whole behaviour is a fold
of ``bft.on_message`` over the events it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ehrchain.consensus.certificate import sign_vote
from ehrchain.core import encoding
from ehrchain.core.block import CommitCertificate, Vote, commit_message
from ehrchain.core.types import Address, BlockHash
from ehrchain.crypto import signing
from ehrchain.crypto.errors import CryptoError

PROPOSAL_DOMAIN: Final = "ehrchain/proposal/v1"
PREVOTE_DOMAIN: Final = "ehrchain/prevote/v1"
PRECOMMIT_NIL_DOMAIN: Final = "ehrchain/precommit-nil/v1"
NO_ROUND: Final = -1
"""``valid_round`` of a proposal whose block has not been prevoted by a quorum before."""

Verifier = Callable[[bytes, bytes, bytes], bool]
"""``verify(public_key, message, signature) -> bool``; injected so a simulator can memoise it."""


def signature_ok(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """The default verifier: Ed25519 through ``crypto.signing``, errors as False."""
    try:
        signing.verify(public_key, message, signature)
    except CryptoError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Proposal:
    """The round's proposer offers ``block``; the signature binds only its hash.

    ``block`` is opaque to the protocol; the receiver checks that it hashes to
    ``block_hash`` through the injected ``ProposalSource``.
    """

    height: int
    round: int
    block_hash: BlockHash
    valid_round: int
    proposer: Address
    signature: bytes
    block: bytes = b""

    def signing_bytes(self, chain_id: str) -> bytes:
        return encoding.encode(
            [PROPOSAL_DOMAIN, chain_id, self.height, self.round, self.block_hash, self.valid_round]
        )

    @property
    def signer(self) -> Address:
        return self.proposer


@dataclass(frozen=True, slots=True)
class Prevote:
    """A validator's first-stage vote in a round; ``block_hash`` None is a vote for nil."""

    height: int
    round: int
    block_hash: BlockHash | None
    validator: Address
    signature: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        return encoding.encode([PREVOTE_DOMAIN, chain_id, self.height, self.round, self.block_hash])

    @property
    def signer(self) -> Address:
        return self.validator


@dataclass(frozen=True, slots=True)
class Precommit:
    """A validator's second-stage vote; non-nil ones are commit-certificate votes."""

    height: int
    round: int
    block_hash: BlockHash | None
    validator: Address
    signature: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        if self.block_hash is None:
            return encoding.encode([PRECOMMIT_NIL_DOMAIN, chain_id, self.height, self.round])
        return commit_message(chain_id, self.height, self.round, self.block_hash)

    @property
    def signer(self) -> Address:
        return self.validator

    def as_vote(self) -> Vote:
        """This precommit as a certificate vote (only meaningful when non-nil)."""
        return Vote(self.validator, self.signature)


SignedMessage = Proposal | Prevote | Precommit


@dataclass(frozen=True, slots=True)
class Status:
    """Unsigned gossip: ``sender`` is still deciding ``height``.

    A peer that has decided past it answers with ``Committed`` messages, which is
    how a node that missed a decision (dropped messages, a crash) catches up.
    """

    height: int
    sender: Address


@dataclass(frozen=True, slots=True)
class Committed:
    """A decided block with its certificate; self-proving, so anyone may relay it."""

    height: int
    block: bytes
    certificate: CommitCertificate


NetworkMessage = Proposal | Prevote | Precommit | Status | Committed


@dataclass(frozen=True, slots=True)
class Start:
    """Begin, or resume after a restart: (re)arms the timers of the current step."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic: rebroadcast this height's own messages and a Status, so drops heal."""


@dataclass(frozen=True, slots=True)
class TimeoutPropose:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class TimeoutPrevote:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class TimeoutPrecommit:
    height: int
    round: int


@dataclass(frozen=True, slots=True)
class TimeoutCommit:
    """The pause after a decision ended; the next height's round 0 starts."""

    height: int


TimerEvent = Tick | TimeoutPropose | TimeoutPrevote | TimeoutPrecommit | TimeoutCommit
Message = NetworkMessage | TimerEvent | Start


def sign_proposal(
    key: signing.SigningKey,
    proposer: Address,
    chain_id: str,
    height: int,
    round_: int,
    block_hash: BlockHash,
    valid_round: int,
    block: bytes,
) -> Proposal:
    unsigned = Proposal(height, round_, block_hash, valid_round, proposer, b"", block)
    signature = key.sign(unsigned.signing_bytes(chain_id))
    return Proposal(height, round_, block_hash, valid_round, proposer, signature, block)


def sign_prevote(
    key: signing.SigningKey,
    validator: Address,
    chain_id: str,
    height: int,
    round_: int,
    block_hash: BlockHash | None,
) -> Prevote:
    unsigned = Prevote(height, round_, block_hash, validator, b"")
    return Prevote(
        height, round_, block_hash, validator, key.sign(unsigned.signing_bytes(chain_id))
    )


def sign_precommit(
    key: signing.SigningKey,
    validator: Address,
    chain_id: str,
    height: int,
    round_: int,
    block_hash: BlockHash | None,
) -> Precommit:
    """Non-nil precommits are signed by ``certificate.sign_vote``: one commit format."""
    if block_hash is not None:
        vote = sign_vote(key, validator, chain_id, height, round_, block_hash)
        return Precommit(height, round_, block_hash, validator, vote.signature)
    unsigned = Precommit(height, round_, None, validator, b"")
    return Precommit(height, round_, None, validator, key.sign(unsigned.signing_bytes(chain_id)))


def signed_by(
    msg: SignedMessage, chain_id: str, public_key: bytes, verify: Verifier = signature_ok
) -> bool:
    """Whether ``public_key`` signed ``msg`` for ``chain_id``."""
    return verify(public_key, msg.signing_bytes(chain_id), msg.signature)
