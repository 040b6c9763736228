"""Named id types, so an address is never confused with a hash."""

from typing import NewType

Address = NewType("Address", str)
"""Bech32 address: human prefix ``ehr`` + 20 bytes of SHA-256(public key) + checksum."""

BlockHash = NewType("BlockHash", bytes)
TxId = NewType("TxId", bytes)
Cid = NewType("Cid", str)
"""IPFS CIDv1 (raw codec, sha2-256 multihash) in base32, as Kubo prints it."""
RecordId = NewType("RecordId", str)
ChainId = NewType("ChainId", str)
