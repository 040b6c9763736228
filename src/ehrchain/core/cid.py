"""Content ids for blobs: IPFS CIDv1, raw codec, sha2-256 multihash, base32 lower.

This is exactly the id Kubo prints for ``ipfs add --cid-version 1 --raw-leaves``
of a single-block file (``bafkrei…``), so a blob can be fetched from or pinned
to IPFS by the id the chain records. Only that one form is accepted: every
blob has exactly one id string, and a blob is checked against it on every read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from typing import Final

from multiformats import CID, multihash

from ehrchain.core.errors import CoreError
from ehrchain.core.types import Cid

VERSION: Final = 1
CODEC: Final = "raw"
HASH: Final = "sha2-256"
BASE: Final = "base32"
DIGEST_SIZE: Final = 32
TEXT_LENGTH: Final = 59
"""``b`` + 58 base32 characters for the 36 bytes 0x01 0x55 0x12 0x20 ‖ digest."""
_ALPHABET: Final = frozenset("abcdefghijklmnopqrstuvwxyz234567")


class InvalidCid(CoreError):
    """The text is not a CIDv1 / raw / sha2-256 / base32-lower content id."""


class BlobCorrupt(CoreError):
    """The blob's bytes do not hash to the content id it was stored under."""


_PREFIX: Final = bytes(CID(BASE, VERSION, CODEC, multihash.wrap(bytes(32), HASH)))[:4]
"""The binary CID header 0x01 0x55 0x12 0x20 (version, raw codec, sha2-256, 32 bytes),
taken from multiformats once so the per-blob path is one hash and one base32 pass."""


def cid_of(data: bytes) -> Cid:
    """The content id of ``data``: multibase ``b`` + base32 lower, no padding."""
    return cid_of_digest(hashlib.sha256(data).digest())


def parse_cid(text: str) -> Cid:
    """Validate a content id string and return it typed."""
    if not isinstance(text, str):
        raise InvalidCid(f"content id must be a {TEXT_LENGTH}-character string")
    _decode(text)
    return Cid(text)


def digest_of(cid: str) -> bytes:
    """The 32-byte SHA-256 digest a content id names."""
    if not isinstance(cid, str):
        raise InvalidCid(f"content id must be a {TEXT_LENGTH}-character string")
    return _decode(cid)


def check_cid(cid: str, data: bytes) -> None:
    """Raise BlobCorrupt unless ``data`` is the blob ``cid`` names."""
    expected = digest_of(cid)
    if not hmac.compare_digest(hashlib.sha256(data).digest(), expected):
        raise BlobCorrupt(f"blob does not match content id {cid}")


@lru_cache(maxsize=65_536)
def _decode(text: str) -> bytes:
    """Check the one accepted text form and the binary header; return the digest.

    Only ``b`` + base32 lower without padding of 0x01 0x55 0x12 0x20 ‖ digest is
    accepted (the multibase decoder would also take upper case and padding,
    giving one CID several spellings). The header bytes come from multiformats
    (``_PREFIX``), so this checks exactly version 1, raw codec, sha2-256, 32 bytes.
    """
    if len(text) != TEXT_LENGTH:
        raise InvalidCid(f"content id must be a {TEXT_LENGTH}-character string")
    if text[0] != "b" or not _ALPHABET.issuperset(text[1:]):
        raise InvalidCid("content id must be multibase base32 lower case ('b…')")
    try:
        raw = base64.b32decode(text[1:].upper() + "======")
    except ValueError as exc:
        raise InvalidCid("content id does not decode as base32") from exc
    if raw[:4] != _PREFIX:
        raise InvalidCid(f"content id must be CIDv{VERSION}, {CODEC} codec, {HASH} multihash")
    digest = raw[4:]
    if len(digest) != DIGEST_SIZE or cid_of_digest(digest) != text:
        raise InvalidCid("content id is not in its one canonical form")
    return digest


def cid_of_digest(digest: bytes) -> Cid:
    """The content id naming a SHA-256 digest."""
    return Cid("b" + base64.b32encode(_PREFIX + digest).decode("ascii").lower().rstrip("="))
