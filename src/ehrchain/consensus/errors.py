"""Errors raised by consensus.

ConsensusError
├── InvalidCertificate   a commit certificate that does not prove the block final
├── NotAValidator        an address outside the validator set asked to act as one
├── InsufficientWork     a proof-of-work header that misses the chain's target
└── InvalidLimits        sealing limits that cannot work (e.g. max_txs of 0)
"""


class ConsensusError(Exception):
    """Base of every error consensus raises."""


class InvalidCertificate(ConsensusError):
    """The certificate is malformed, has a bad or foreign vote, or lacks a quorum."""


class NotAValidator(ConsensusError):
    """The address is not (or not this node's) validator for the block at hand."""


class InsufficientWork(ConsensusError):
    """The header claims another target than the chain's, or its hash does not meet it."""


class InvalidLimits(ConsensusError):
    """Sealing limits are out of range, so a block could never (or always) be sealed."""
