"""Blocks: the seed-000 header, a state commitment, the proposer and a commit certificate.

The header hash covers every header field. The commit certificate sits beside the
header, not inside it: it is the set of validator signatures over
(chain id, height, round, block hash) that made the block final, and it is
checked by anyone who syncs the block.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ehrchain.core import encoding, merkle
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError, InvalidBlock
from ehrchain.core.types import Address, BlockHash, ChainId

MAGIC: Final = 0xE4C0_B10C
VERSION: Final = 1
HEADER_DOMAIN: Final = "ehrchain/header/v1"
COMMIT_DOMAIN: Final = "ehrchain/commit/v1"
GENESIS_PARENT: Final = BlockHash(bytes(32))


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """Seed-000 header fields plus chain id, state root and proposer."""

    magic: int
    version: int
    chain_id: ChainId
    size: int
    """Bytes of the encoded transaction list this header commits to."""
    tx_count: int
    """Number of transactions: the Merkle tree size a client needs for proofs."""
    height: int
    prev_hash: BlockHash
    tx_root: bytes
    """RFC 6962 Merkle root over the transactions' canonical encodings."""
    timestamp_ms: int
    target: int
    """Proof-of-work difficulty in leading zero bits; 0 under BFT."""
    nonce: int
    state_root: bytes
    """Commitment to the state after this block's transactions."""
    proposer: Address

    def fields(self) -> list[Any]:
        return [
            self.magic,
            self.version,
            self.chain_id,
            self.size,
            self.tx_count,
            self.height,
            self.prev_hash,
            self.tx_root,
            self.timestamp_ms,
            self.target,
            self.nonce,
            self.state_root,
            self.proposer,
        ]

    def to_bytes(self) -> bytes:
        return encoding.encode(self.fields())

    @property
    def hash(self) -> BlockHash:
        return BlockHash(encoding.tagged_hash(HEADER_DOMAIN, self.fields()))

    @classmethod
    def from_fields(cls, fields: Any) -> BlockHeader:
        if not isinstance(fields, tuple | list) or len(fields) != 13:
            raise InvalidBlock("header must be a 13-element array")
        header = cls(*fields)
        check_header_shape(header)
        return header


def check_header_shape(header: BlockHeader) -> None:
    """Stateless checks on each header field, one rule each."""
    if header.magic != MAGIC:
        raise InvalidBlock(f"bad magic {header.magic!r}")
    if header.version != VERSION:
        raise InvalidBlock(f"unsupported block version {header.version!r}")
    for name in ("size", "tx_count", "height", "timestamp_ms", "target", "nonce"):
        value = getattr(header, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidBlock(f"{name} must be a non-negative integer")
    for name in ("prev_hash", "tx_root", "state_root"):
        value = getattr(header, name)
        if not isinstance(value, bytes) or len(value) != 32:
            raise InvalidBlock(f"{name} must be 32 bytes")
    if not isinstance(header.proposer, str) or not isinstance(header.chain_id, str):
        raise InvalidBlock("proposer and chain_id must be strings")


@dataclass(frozen=True, slots=True)
class Vote:
    """One validator's signature that a block is committed."""

    validator: Address
    signature: bytes


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Signatures of validators over the block hash at a height and round."""

    round: int
    votes: tuple[Vote, ...]

    def to_fields(self) -> list[Any]:
        return [self.round, [[v.validator, v.signature] for v in self.votes]]

    @classmethod
    def from_fields(cls, fields: Any) -> CommitCertificate:
        try:
            round_, votes = fields
            return cls(int(round_), tuple(Vote(Address(a), bytes(s)) for a, s in votes))
        except (TypeError, ValueError) as exc:
            raise InvalidBlock(f"malformed commit certificate: {exc}") from exc


EMPTY_CERTIFICATE: Final = CommitCertificate(0, ())


def commit_message(chain_id: str, height: int, round_: int, block_hash: bytes) -> bytes:
    """The bytes a validator signs to commit a block."""
    return encoding.encode([COMMIT_DOMAIN, chain_id, height, round_, block_hash])


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[txmod.Transaction, ...]
    certificate: CommitCertificate = EMPTY_CERTIFICATE

    @property
    def hash(self) -> BlockHash:
        return self.header.hash

    def to_bytes(self) -> bytes:
        return encoding.encode(
            [self.header.fields(), [t.to_bytes() for t in self.txs], self.certificate.to_fields()]
        )


def header_for(
    *,
    chain_id: str,
    height: int,
    prev_hash: bytes,
    txs: Sequence[txmod.Transaction],
    timestamp_ms: int,
    state_root: bytes,
    proposer: Address,
    target: int = 0,
    nonce: int = 0,
) -> BlockHeader:
    """The header committing to ``txs``: size, count and Merkle root derived from them."""
    return BlockHeader(
        magic=MAGIC,
        version=VERSION,
        chain_id=ChainId(chain_id),
        size=tx_list_size(txs),
        tx_count=len(txs),
        height=height,
        prev_hash=BlockHash(prev_hash),
        tx_root=tx_root(txs),
        timestamp_ms=timestamp_ms,
        target=target,
        nonce=nonce,
        state_root=state_root,
        proposer=proposer,
    )


def tx_list_size(txs: Sequence[txmod.Transaction]) -> int:
    return sum(len(t.to_bytes()) for t in txs)


def tx_root(txs: Sequence[txmod.Transaction]) -> bytes:
    return merkle.root([t.to_bytes() for t in txs])


KnownTx = Callable[[bytes], "txmod.Transaction | None"]
"""A transaction already decoded from exactly these bytes (looked up by their hash), or None."""


DecodeMany = Callable[[Sequence[bytes]], "list[txmod.Transaction]"]
"""Strictly decodes transactions (as ``tx.from_bytes`` does), in order; raises CoreError."""


def block_from_bytes(
    data: bytes, known: KnownTx | None = None, decode_many: DecodeMany | None = None
) -> Block:
    """Decode a block and check its shape and Merkle root (not signatures or state).

    ``known`` lets a node reuse transactions it decoded before (its pending
    pool): a transaction whose bytes hash to a known one is that object, and
    is not decoded again. ``decode_many`` decodes the others together (a node
    may check them in its verifier workers); by default each ``tx.from_bytes``.
    """
    try:
        header_fields, tx_bytes, cert_fields = encoding.decode(data)
    except (CoreError, ValueError, TypeError) as exc:
        raise InvalidBlock(f"undecodable block: {exc}") from exc
    header = BlockHeader.from_fields(header_fields)
    try:
        found = [None if known is None else known(b) for b in tx_bytes]
        missing = [b for b, t in zip(tx_bytes, found, strict=True) if t is None]
        fresh = iter((decode_many or _decode_each)(missing))
        txs = tuple(t if t is not None else next(fresh) for t in found)
    except CoreError as exc:
        raise InvalidBlock(f"block holds a malformed transaction: {exc}") from exc
    block = Block(header, txs, CommitCertificate.from_fields(cert_fields))
    check_body(block)
    return block


def _decode_each(items: Sequence[bytes]) -> list[txmod.Transaction]:
    return [txmod.from_bytes(b) for b in items]


def block_from_checked_bytes(data: bytes) -> Block:
    """Rebuild a block whose exact bytes ``block_from_bytes`` accepted (in a verifier
    process): no second canonical check of the block or its transactions, and no
    second Merkle root."""
    try:
        header_fields, tx_bytes, cert_fields = encoding.decode_checked(data)
    except (CoreError, ValueError, TypeError) as exc:
        raise InvalidBlock(f"undecodable block: {exc}") from exc
    txs = tuple(txmod.from_checked_bytes(b) for b in tx_bytes)
    return Block(
        BlockHeader.from_fields(header_fields), txs, CommitCertificate.from_fields(cert_fields)
    )


def check_body(block: Block) -> None:
    """The header's size and Merkle root match the transactions."""
    if len(block.txs) != block.header.tx_count:
        raise InvalidBlock(f"block {block.header.height}: tx_count does not match transactions")
    if tx_list_size(block.txs) != block.header.size:
        raise InvalidBlock(f"block {block.header.height}: size does not match transactions")
    if tx_root(block.txs) != block.header.tx_root:
        raise InvalidBlock(f"block {block.header.height}: Merkle root does not match")


def block_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
