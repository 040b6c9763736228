"""Signed transactions.

A transaction names its kind (``record.create``, ``access.grant`` …), the chain
it is for, its sender and the sender's next sequence number (replay protection: a
sequence number is used once, in order), a payload and the sender's current
public key. These six fields are the *body*, canonically encoded once; the
signature covers a domain tag and exactly those body bytes, so a transaction
signed for one chain is invalid on another, and a verifier checks the signature
over the bytes it received without encoding anything again.

Wire form: ``encode([body, signature])`` where ``body`` is the canonical v1
encoding of ``[kind, chain_id, sender, nonce, payload, public_key]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from ehrchain.core import encoding
from ehrchain.core.address import parse_address
from ehrchain.core.errors import CoreError, InvalidTransaction
from ehrchain.core.types import Address, ChainId, TxId
from ehrchain.crypto import signing

SIGNING_DOMAIN: Final = "ehrchain/tx/v1"
_SIGNING_PREFIX: Final = SIGNING_DOMAIN.encode("ascii") + b"\x00"
MAX_TX_SIZE: Final = 1024 * 1024
MAX_KIND_LENGTH: Final = 64
MAX_NONCE: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Transaction:
    """An immutable signed transaction; ``payload`` must never be mutated."""

    kind: str
    chain_id: ChainId
    sender: Address
    nonce: int
    payload: dict[str, Any]
    public_key: bytes
    signature: bytes = b""
    _encoded: bytes = field(default=b"", compare=False, repr=False)
    _id: bytes = field(default=b"", compare=False, repr=False)
    _body: bytes = field(default=b"", compare=False, repr=False)

    def body(self) -> bytes:
        """Canonical encoding of everything but the signature (computed once)."""
        if not self._body:
            fields = [
                self.kind,
                self.chain_id,
                self.sender,
                self.nonce,
                self.payload,
                self.public_key,
            ]
            object.__setattr__(self, "_body", encoding.encode(fields))
        return self._body

    def signing_bytes(self) -> bytes:
        """The bytes the sender signs: a domain tag and the body."""
        return _SIGNING_PREFIX + self.body()

    def to_bytes(self) -> bytes:
        """The canonical wire and storage encoding of the signed transaction."""
        if self._encoded:
            return self._encoded
        return encoding.encode([self.body(), self.signature])

    @property
    def tx_id(self) -> TxId:
        """SHA-256 of the wire bytes, computed once per object."""
        if not self._id:
            object.__setattr__(self, "_id", hashlib.sha256(self.to_bytes()).digest())
        return TxId(self._id)

    def verify_signature(self) -> None:
        """Raise InvalidSignature unless the sender's key signed this transaction."""
        signing.verify(self.public_key, self.signing_bytes(), self.signature)


def build(
    kind: str,
    chain_id: str,
    sender: Address,
    nonce: int,
    payload: dict[str, Any],
    key: signing.SigningKey,
) -> Transaction:
    """Build and sign a transaction with ``key``."""
    unsigned = Transaction(kind, ChainId(chain_id), sender, nonce, payload, key.public_key)
    check_shape(unsigned)
    signature = key.sign(unsigned.signing_bytes())
    signed = Transaction(kind, ChainId(chain_id), sender, nonce, payload, key.public_key, signature)
    object.__setattr__(signed, "_body", unsigned.body())
    return _with_encoding(signed)


def _with_encoding(tx: Transaction) -> Transaction:
    encoded = tx.to_bytes()
    if len(encoded) > MAX_TX_SIZE:
        raise InvalidTransaction(f"transaction of {len(encoded)} bytes exceeds {MAX_TX_SIZE}")
    object.__setattr__(tx, "_encoded", encoded)
    return tx


def check_shape(tx: Transaction) -> None:
    """Stateless well-formedness checks, one rule each."""
    if not isinstance(tx.kind, str) or not 0 < len(tx.kind) <= MAX_KIND_LENGTH:
        raise InvalidTransaction("kind must be a non-empty string of at most 64 characters")
    if not isinstance(tx.chain_id, str) or not 0 < len(tx.chain_id) <= 64:
        raise InvalidTransaction("chain_id must be a non-empty string of at most 64 characters")
    if isinstance(tx.nonce, bool) or not isinstance(tx.nonce, int):
        raise InvalidTransaction("nonce must be an integer")
    if not 0 <= tx.nonce <= MAX_NONCE:
        raise InvalidTransaction("nonce out of range")
    if not isinstance(tx.payload, dict):
        raise InvalidTransaction("payload must be a map")
    if not isinstance(tx.public_key, bytes) or len(tx.public_key) != signing.PUBLIC_KEY_SIZE:
        raise InvalidTransaction("public_key must be 32 bytes")
    if not isinstance(tx.signature, bytes):
        raise InvalidTransaction("signature must be bytes")
    try:
        parse_address(tx.sender)
    except CoreError as exc:
        raise InvalidTransaction(f"bad sender: {exc}") from exc


def from_bytes(data: bytes) -> Transaction:
    """Decode and shape-check a transaction (signature not yet verified)."""
    if len(data) > MAX_TX_SIZE:
        raise InvalidTransaction(f"transaction of {len(data)} bytes exceeds {MAX_TX_SIZE}")
    try:
        outer = encoding.decode(data)
        if not isinstance(outer, tuple) or len(outer) != 2:
            raise InvalidTransaction("transaction must be a [body, signature] array")
        body, signature = outer
        if not isinstance(body, bytes):
            raise InvalidTransaction("transaction body must be bytes")
        fields = encoding.decode(body)
    except CoreError as exc:
        raise InvalidTransaction(f"undecodable transaction: {exc}") from exc
    if not isinstance(fields, tuple) or len(fields) != 6:
        raise InvalidTransaction("transaction body must be a 6-element array")
    kind, chain_id, sender, nonce, payload, public_key = fields
    if not isinstance(sender, str):
        raise InvalidTransaction("sender must be a string")
    tx = Transaction(
        kind, ChainId(chain_id), Address(sender), nonce, payload, public_key, signature
    )
    check_shape(tx)
    object.__setattr__(tx, "_encoded", bytes(data))
    object.__setattr__(tx, "_body", body)
    return tx


def from_checked_bytes(data: bytes) -> Transaction:
    """Rebuild a transaction whose exact bytes ``verified_from_bytes`` accepted
    (in another process): no second canonical or signature check."""
    body, signature = encoding.decode_checked(data)
    kind, chain_id, sender, nonce, payload, public_key = encoding.decode_checked(body)
    tx = Transaction(
        kind, ChainId(chain_id), Address(sender), nonce, payload, public_key, signature
    )
    object.__setattr__(tx, "_encoded", bytes(data))
    object.__setattr__(tx, "_body", body)
    return tx


def check_chain(tx: Transaction, chain_id: str) -> None:
    if tx.chain_id != chain_id:
        raise InvalidTransaction(f"transaction is for chain {tx.chain_id!r}, not {chain_id!r}")


def verified_from_bytes(data: bytes, chain_id: str) -> Transaction:
    """Decode, shape-check, check the chain id and verify the signature."""
    tx = from_bytes(data)
    check_chain(tx, chain_id)
    tx.verify_signature()
    return tx


def to_json(tx: Transaction) -> dict[str, Any]:
    """A readable JSON view (hex for bytes); the wire form stays the CBOR bytes."""
    return {
        "tx_id": tx.tx_id.hex(),
        "kind": tx.kind,
        "chain_id": tx.chain_id,
        "sender": tx.sender,
        "nonce": tx.nonce,
        "payload": _jsonable(tx.payload),
        "public_key": tx.public_key.hex(),
        "signature": tx.signature.hex(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
