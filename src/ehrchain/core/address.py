"""Addresses: Bech32 over the first 20 bytes of SHA-256 of the Ed25519 public key.

The Bech32 checksum (BIP-173) detects any single mistyped character and most
longer typos, so a mistyped address is rejected instead of silently naming
somebody else. An address is derived from a user's *first* signing key and stays
the same when the key is rotated; the ledger state maps it to the current key.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final

import bech32

from ehrchain.core.errors import InvalidAddress
from ehrchain.core.types import Address

HRP: Final = "ehr"
HASH_SIZE: Final = 20


def address_from_public_key(public_key: bytes) -> Address:
    """Derive the address of a 32-byte Ed25519 public key."""
    digest = hashlib.sha256(public_key).digest()[:HASH_SIZE]
    words = bech32.convertbits(digest, 8, 5)
    assert words is not None  # 8-to-5 bit conversion with padding always succeeds
    return Address(bech32.bech32_encode(HRP, words))


def address_bytes(address: str) -> bytes:
    """Decode an address to its 20 hash bytes, rejecting bad checksums."""
    if not isinstance(address, str):
        raise InvalidAddress("address must be a string of at most 90 characters")
    return _decode(address)


@lru_cache(maxsize=65_536)
def _decode(address: str) -> bytes:
    """Cached (only successes are cached): the same senders recur in every block."""
    if len(address) > 90:
        raise InvalidAddress("address must be a string of at most 90 characters")
    if address != address.lower():
        raise InvalidAddress("address must be lower case")
    hrp, words = bech32.bech32_decode(address)
    if hrp is None or words is None:
        raise InvalidAddress(f"address {address!r} has a bad checksum or characters")
    if hrp != HRP:
        raise InvalidAddress(f"address prefix must be {HRP!r}, not {hrp!r}")
    raw = bech32.convertbits(words, 5, 8, False)
    if raw is None or len(raw) != HASH_SIZE:
        raise InvalidAddress("address does not hold a 20-byte key hash")
    return bytes(raw)


def parse_address(address: str) -> Address:
    """Validate an address string and return it typed."""
    address_bytes(address)
    return Address(address)
