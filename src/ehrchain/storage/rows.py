"""Value objects the ledger takes and returns, and the decoding of stored rows.

Stored bytes are decoded with the same strict core decoders that check wire
input, and a stored header must still hash to the hash it was stored under, so
a damaged or edited file surfaces as ``LedgerCorrupt`` instead of as a
different chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.block import Block, BlockHeader, CommitCertificate
from ehrchain.core.errors import CoreError
from ehrchain.core.types import BlockHash
from ehrchain.storage.errors import LedgerCorrupt


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last committed block, as far as readers need it without decoding it."""

    height: int
    hash: BlockHash
    state_root: bytes
    timestamp_ms: int


class IndexedEvent(Protocol):
    """What ``Ledger.commit_block`` reads from an event (``Event`` or the EHR layer's own)."""

    @property
    def subject(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def actor(self) -> str: ...

    @property
    def record_id(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def tx_id(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Event:
    """An index entry about one transaction of a block, e.g. a record read.

    ``subject`` is whom the event concerns (the EHR layer uses the patient's
    address), so "who touched my records" is one indexed query. Storage gives
    the strings no meaning; the block height and position come from the block.
    """

    subject: str
    kind: str
    actor: str
    record_id: str
    version: int
    tx_id: bytes


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back, with the position and time of its transaction."""

    subject: str
    kind: str
    actor: str
    record_id: str
    version: int
    tx_id: bytes
    height: int
    idx: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class RawBlock:
    """A block exactly as stored, for a verifier that decodes and checks it itself."""

    height: int
    hash: bytes
    header: bytes
    certificate: bytes
    txs: tuple[bytes, ...]


def certificate_bytes(certificate: CommitCertificate) -> bytes:
    return encoding.encode(certificate.to_fields())


def decode_header(height: int, stored_hash: bytes, data: bytes) -> BlockHeader:
    """Decode a stored header and check it still hashes to its stored hash."""
    try:
        header = BlockHeader.from_fields(encoding.decode(data))
    except CoreError as exc:
        raise LedgerCorrupt(f"stored header of block {height} does not decode") from exc
    if header.height != height or header.hash != stored_hash:
        raise LedgerCorrupt(f"stored header of block {height} does not match its hash")
    return header


def decode_certificate(height: int, data: bytes) -> CommitCertificate:
    try:
        return CommitCertificate.from_fields(encoding.decode(data))
    except CoreError as exc:
        raise LedgerCorrupt(f"stored certificate of block {height} does not decode") from exc


def decode_tx(height: int, data: bytes) -> txmod.Transaction:
    try:
        return txmod.from_bytes(data)
    except CoreError as exc:
        raise LedgerCorrupt(f"a stored transaction of block {height} does not decode") from exc


def assemble(raw: RawBlock) -> Block:
    """Rebuild a ``Block`` from its stored rows."""
    header = decode_header(raw.height, raw.hash, raw.header)
    txs = tuple(decode_tx(raw.height, data) for data in raw.txs)
    return Block(header, txs, decode_certificate(raw.height, raw.certificate))


def group_txs(
    heights: Sequence[int], tx_rows: Sequence[tuple[int, bytes]]
) -> dict[int, tuple[bytes, ...]]:
    """Split (height, data) rows, ordered by position, into each height's tuple."""
    grouped: dict[int, list[bytes]] = {h: [] for h in heights}
    for height, data in tx_rows:
        if height not in grouped:
            raise LedgerCorrupt(f"transactions are stored for a missing block {height}")
        grouped[height].append(data)
    return {h: tuple(datas) for h, datas in grouped.items()}
