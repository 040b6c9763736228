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
    raw = _PREFIX + hashlib.sha256(data).digest()
    return Cid("b" + base64.b32encode(raw).decode("ascii").lower().rstrip("="))


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
    """Check the canonical text form, then the CID fields; return the raw digest.

    The character check comes first because the multibase decoder also accepts
    upper case and padding, which would give one CID several spellings.
    """
    if len(text) != TEXT_LENGTH:
        raise InvalidCid(f"content id must be a {TEXT_LENGTH}-character string")
    if text[0] != "b" or not _ALPHABET.issuperset(text[1:]):
        raise InvalidCid("content id must be multibase base32 lower case ('b…')")
    try:
        cid = CID.decode(text)
    except (ValueError, KeyError) as exc:
        raise InvalidCid(f"content id does not decode: {exc}") from exc
    if cid.version != VERSION or cid.codec.name != CODEC:
        raise InvalidCid(f"content id must be CIDv{VERSION} with the {CODEC} codec")
    if cid.hashfun.name != HASH:
        raise InvalidCid(f"content id must use the {HASH} multihash")
    digest = bytes(cid.raw_digest)
    if len(digest) != DIGEST_SIZE:
        raise InvalidCid(f"content id digest must be {DIGEST_SIZE} bytes")
    return digest
