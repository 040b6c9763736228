"""The one canonical byte encoding for everything ehrchain hashes or signs.

Version 1 is a single version byte (0x01) followed by deterministically encoded
CBOR (RFC 8949 §4.2.1: shortest integer forms, definite lengths, map keys sorted
bytewise). Only these types are allowed: int, bool, None, bytes, str, tuple/list
and dict with str keys. Floats are refused because they do not round-trip exactly.

Decoding is strict: bytes decode only if re-encoding them gives the same bytes,
so every value has exactly one encoding and hashes cannot be malleated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

import cbor2

from ehrchain.core.errors import EncodingError

VERSION: Final = 1
_PREFIX: Final = bytes([VERSION])
MAX_ENCODED_SIZE: Final = 16 * 1024 * 1024

Encodable = int | bool | None | bytes | str | Sequence[Any] | Mapping[str, Any]


def _check(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise EncodingError("nesting deeper than 32 levels")
    if value is None or isinstance(value, bool | int | bytes | str):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"map key must be str, not {type(key).__name__}")
            _check(item, depth + 1)
        return
    raise EncodingError(f"type {type(value).__name__} is not encodable")


def encode_body(value: Any) -> bytes:
    """Deterministic CBOR of a value, without the version byte."""
    _check(value)
    return cbor2.dumps(value, canonical=True)


def encode(value: Any) -> bytes:
    """Canonical v1 encoding: version byte then deterministic CBOR."""
    return _PREFIX + encode_body(value)


def decode(data: bytes) -> Any:
    """Decode canonical v1 bytes; reject anything that is not the one encoding."""
    if len(data) > MAX_ENCODED_SIZE:
        raise EncodingError(f"encoding of {len(data)} bytes exceeds {MAX_ENCODED_SIZE}")
    if not data or data[0] != VERSION:
        raise EncodingError("missing or unknown encoding version byte")
    body = bytes(data[1:])
    try:
        value = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EncodingError(f"not valid CBOR: {exc}") from exc
    value = _freeze(value)
    if cbor2.dumps(value, canonical=True) != body:
        raise EncodingError("encoding is not canonical")
    return value


def decode_byte_strings(data: bytes) -> tuple[bytes, ...]:
    """Decode canonical v1 bytes of a list of byte strings (a batch of blobs or
    of transactions), accepting exactly what ``decode`` accepts for such a list.

    ``decode`` proves canonical form by re-encoding the value, which for a batch
    of large blobs costs more than storing them (cbor2 re-encodes 2 MiB in about
    2 ms). A list of byte strings has one canonical layout: the shortest array
    head, then each item's shortest byte-string head and its bytes. So for large
    items the heads are compared in place, each item against its own slice, and
    the total length must match (which also refuses trailing bytes, which cbor2
    ignores); a list of many small items (a transaction batch) is still checked
    by re-encoding, which is faster there than a Python loop over the items.
    """
    if len(data) > MAX_ENCODED_SIZE:
        raise EncodingError(f"encoding of {len(data)} bytes exceeds {MAX_ENCODED_SIZE}")
    if not data or data[0] != VERSION:
        raise EncodingError("missing or unknown encoding version byte")
    try:
        value = cbor2.loads(data[1:])
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EncodingError(f"not valid CBOR: {exc}") from exc
    if type(value) is not list or not all(type(item) is bytes for item in value):
        raise EncodingError("not a list of byte strings")
    if len(data) < _IN_PLACE_ITEM_BYTES * len(value):
        if cbor2.dumps(value, canonical=True) != data[1:]:
            raise EncodingError("encoding is not canonical")
        return tuple(value)
    offset = _expect_head(data, 1, _ARRAY, len(value))
    for item in value:
        offset = _expect_head(data, offset, _BYTES, len(item))
        end = offset + len(item)
        if data[offset:end] != item:
            raise EncodingError("encoding is not canonical")
        offset = end
    if offset != len(data):
        raise EncodingError("encoding is not canonical")
    return tuple(value)


_IN_PLACE_ITEM_BYTES: Final = 4096
"""Average item size from which ``decode_byte_strings`` checks heads in place."""
_BYTES: Final = 2
_ARRAY: Final = 4


def _expect_head(data: bytes, offset: int, major: int, argument: int) -> int:
    """Check that ``data`` holds the shortest CBOR head (RFC 8949 §3.1 and
    §4.2.1) of ``major`` and ``argument`` at ``offset``; return the offset after it."""
    if argument < 24:
        head = bytes([major << 5 | argument])
    else:
        extra, size = next((24 + i, 1 << i) for i in range(4) if i == 3 or argument < 1 << (8 << i))
        head = bytes([major << 5 | extra]) + argument.to_bytes(size, "big")
    if data[offset : offset + len(head)] != head:
        raise EncodingError("encoding is not canonical")
    return offset + len(head)


_SCALARS: Final = frozenset({int, bool, bytes, str, type(None)})


def decode_checked(data: bytes) -> Any:
    """Decode bytes that ``decode`` already accepted elsewhere (e.g. in a verifier
    process): the same values, without repeating the canonical re-encoding."""
    try:
        return _freeze(cbor2.loads(data[1:]))
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EncodingError(f"not valid CBOR: {exc}") from exc


def _freeze(value: Any, depth: int = 0) -> Any:
    """Check a decoded value holds only allowed types; lists become tuples.

    One pass does both, so the canonical re-encoding in ``decode`` needs no
    second type check. Exact type tests (not isinstance): cbor2 returns only
    built-in types for the allowed major types.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth > 32:
        raise EncodingError("nesting deeper than 32 levels")
    if kind is list:
        return tuple([_freeze(v, depth + 1) for v in value])
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise EncodingError(f"map key must be str, not {type(key).__name__}")
            out[key] = item if type(item) in _SCALARS else _freeze(item, depth + 1)
        return out
    raise EncodingError(f"type {kind.__name__} is not allowed")


def tagged_hash(domain: str, value: Any) -> bytes:
    """SHA-256 over a domain tag and the canonical encoding, so hashes of
    different kinds of object can never collide."""
    h = hashlib.sha256(domain.encode("ascii"))
    h.update(b"\x00")
    h.update(encode(value))
    return h.digest()
