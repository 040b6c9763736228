"""Errors raised by the storage layer.

    StorageError
    ├── LedgerError          the ledger refused an operation or cannot use its file
    │   └── LedgerCorrupt    stored bytes no longer decode (damaged or tampered file)
    └── BlobError
        ├── BlobNotFound     no blob with that content id is stored
        ├── BlobCorrupt      the stored bytes do not hash to their content id
        └── BlobTooLarge     the blob exceeds the store's size limit

Messages name heights, content ids and sizes, never stored values: the ledger
holds only ciphertext and identifiers, and errors must not leak even those.
"""

from __future__ import annotations

from ehrchain.core import cid as cidmod


class StorageError(Exception):
    """Base of every error the storage layer raises."""


class LedgerError(StorageError):
    """The ledger refused an operation (e.g. a block that does not extend the head)."""


class LedgerCorrupt(LedgerError):
    """Bytes read back from the ledger file do not decode as what was stored."""


class BlobError(StorageError):
    """Base of the blob store's errors."""


class BlobNotFound(BlobError):
    """No blob with the requested content id is stored."""


class BlobCorrupt(BlobError, cidmod.BlobCorrupt):
    """The stored bytes do not match their content id.

    Also a ``core.cid.BlobCorrupt`` so callers that only know the core error
    still catch a corrupt blob however it was detected.
    """


class BlobTooLarge(BlobError):
    """The blob is larger than ``blobs.MAX_BLOB_SIZE``."""
