"""Errors raised by the pure core (signature errors live in ehrchain.crypto.errors).

CoreError
├── EncodingError        bytes that are not canonical encoding v1
├── InvalidAddress       a malformed or mistyped address (bad checksum)
├── InvalidTransaction   a transaction that is malformed on its own
├── InvalidBlock         a block whose header, root or certificate is wrong
└── InvalidProof         a Merkle proof that does not verify
"""


class CoreError(Exception):
    """Base of every error the pure core raises."""


class EncodingError(CoreError):
    """The bytes are not a canonical v1 encoding."""


class InvalidAddress(CoreError):
    """The address is malformed or its checksum does not match."""


class InvalidTransaction(CoreError):
    """The transaction is malformed independently of any state."""


class InvalidBlock(CoreError):
    """The block is malformed or does not link to its parent."""


class InvalidProof(CoreError):
    """A Merkle inclusion or consistency proof does not verify."""
