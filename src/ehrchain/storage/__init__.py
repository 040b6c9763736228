"""Storage: the ledger (one SQLite file) and the content-addressed blob store.

Storage holds only what the layers above hand it, ciphertext and identifiers;
it never sees plaintext and gives keys, subjects and blobs no EHR meaning.
"""

from ehrchain.storage.blobs import MAX_BLOB_SIZE, BlobStore
from ehrchain.storage.errors import (
    BlobCorrupt,
    BlobError,
    BlobNotFound,
    BlobTooLarge,
    LedgerCorrupt,
    LedgerError,
    StorageError,
)
from ehrchain.storage.ledger import Ledger
from ehrchain.storage.rows import ChainHead, Event, RawBlock, StoredEvent
from ehrchain.storage.view import MAX_BLOCK_PAGE, MAX_PAGE, LedgerView

__all__ = [
    "MAX_BLOB_SIZE",
    "MAX_BLOCK_PAGE",
    "MAX_PAGE",
    "BlobCorrupt",
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "ChainHead",
    "Event",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "LedgerView",
    "RawBlock",
    "StorageError",
    "StoredEvent",
]
