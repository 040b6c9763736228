"""Strict readers for payload fields: exact types, explicit bounds, named failures.

Every reader raises ``MalformedPayload(field, problem)``; the problem never
repeats the value, so a wrong field cannot leak health data into an error.
Booleans are not integers here, byte strings are not text, and unknown fields
are refused so that two encodings of "the same" payload cannot differ.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

from ehrchain.core.address import address_from_public_key, parse_address
from ehrchain.core.cid import parse_cid
from ehrchain.core.errors import CoreError
from ehrchain.core.types import Address, Cid
from ehrchain.crypto import hpke, signing
from ehrchain.crypto.errors import CryptoError
from ehrchain.ehr.errors import MalformedPayload
from ehrchain.ehr.values import CATEGORIES, Scope

MAX_INT: Final = 2**63 - 1
MAX_WRAPPED_KEY: Final = 256
MAX_READERS: Final = 256
MAX_SCOPE_RECORDS: Final = 256
RECORD_ID: Final = re.compile(r"r[0-9a-f]{32}")
FIELD_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")


def check_fields(
    payload: Any, required: tuple[str, ...], optional: tuple[str, ...] = (), prefix: str = ""
) -> None:
    """The payload is a map with all required fields and no unknown ones.

    An unknown field is named only when it looks like a field name, so that a
    client who put data in a key does not see it echoed.
    """
    if not isinstance(payload, dict):
        raise MalformedPayload(prefix.rstrip(".") or "payload", "must be a map")
    for name in payload:
        if name not in required and name not in optional:
            shown = name if isinstance(name, str) and FIELD_NAME.fullmatch(name) else "<unknown>"
            raise MalformedPayload(prefix + shown, "unknown field")
    for name in required:
        if name not in payload:
            raise MalformedPayload(prefix + name, "missing")


def text(
    value: Any, name: str, max_len: int, pattern: re.Pattern[str] | None = None, min_len: int = 1
) -> str:
    if not isinstance(value, str):
        raise MalformedPayload(name, "must be text")
    if not min_len <= len(value) <= max_len:
        raise MalformedPayload(name, f"must be {min_len} to {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise MalformedPayload(name, f"must match {pattern.pattern}")
    if pattern is None and not value.isprintable():
        raise MalformedPayload(name, "must not hold control characters")
    return value


def raw_bytes(value: Any, name: str, max_len: int, min_len: int = 1) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedPayload(name, "must be bytes")
    if not min_len <= len(value) <= max_len:
        raise MalformedPayload(name, f"must be {min_len} to {max_len} bytes")
    return value


def integer(value: Any, name: str, low: int = 0, high: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedPayload(name, "must be an integer")
    if not low <= value <= high:
        raise MalformedPayload(name, f"must be between {low} and {high}")
    return value


def choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise MalformedPayload(name, f"must be one of {list(options)}")
    return value


@functools.lru_cache(maxsize=65536)
def _parse_address(value: str) -> Address:
    return parse_address(value)


def address(value: Any, name: str) -> Address:
    if not isinstance(value, str):
        raise MalformedPayload(name, "must be an address")
    try:
        return _parse_address(value)
    except CoreError as exc:
        raise MalformedPayload(name, f"not a valid address ({exc.__class__.__name__})") from exc


def optional_address(payload: Mapping[str, Any], name: str) -> Address | None:
    return address(payload[name], name) if name in payload else None


def signing_key(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedPayload(name, "must be bytes")
    try:
        signing.check_public_key(value)
    except CryptoError as exc:
        raise MalformedPayload(name, f"not a valid Ed25519 public key: {exc}") from exc
    return value


def encryption_key(value: Any, name: str) -> bytes:
    """An X25519 public key that is not a small-order point (nobody could wrap to it safely)."""
    if not isinstance(value, bytes):
        raise MalformedPayload(name, "must be bytes")
    try:
        hpke.check_public_key(value)
    except CryptoError as exc:
        raise MalformedPayload(name, f"not a valid X25519 public key: {exc}") from exc
    return value


def derived_address(addr: Address, key: bytes, name: str) -> None:
    """A new account's address must be derived from its first signing key."""
    if address_from_public_key(key) != addr:
        raise MalformedPayload(name, "is not the address of signing_key")


def record_id(value: Any, name: str) -> str:
    return text(value, name, 33, RECORD_ID, 33)


@functools.lru_cache(maxsize=4096)
def _parse_cid(value: str) -> Cid:
    return parse_cid(value)


def cid(value: Any, name: str) -> Cid:
    """A CIDv1, raw codec, sha2-256, base32 lower case: the only blob id the store accepts."""
    if not isinstance(value, str):
        raise MalformedPayload(name, "must be text")
    try:
        return _parse_cid(value)
    except CoreError as exc:
        raise MalformedPayload(name, "must be a CIDv1 (raw, sha2-256, base32)") from exc


def scope(value: Any, name: str) -> Scope:
    """Exactly one of {"all": True}, {"categories": [...]}, {"records": [...]}."""
    if not isinstance(value, dict) or len(value) != 1:
        raise MalformedPayload(name, "must be a map with exactly one of all/categories/records")
    ((which, items),) = value.items()
    if which == "all":
        if items is not True:
            raise MalformedPayload(f"{name}.all", "must be true")
        return Scope(all=True)
    if which == "categories":
        cats = _unique_list(items, f"{name}.categories", len(CATEGORIES))
        for cat in cats:
            choice(cat, f"{name}.categories", CATEGORIES)
        return Scope(categories=frozenset(cats))
    if which == "records":
        ids = _unique_list(items, f"{name}.records", MAX_SCOPE_RECORDS)
        for rid in ids:
            record_id(rid, f"{name}.records")
        return Scope(records=frozenset(ids))
    raise MalformedPayload(name, "must be a map with exactly one of all/categories/records")


def _unique_list(value: Any, name: str, max_len: int) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise MalformedPayload(name, "must be a list")
    if not 1 <= len(value) <= max_len:
        raise MalformedPayload(name, f"must hold 1 to {max_len} items")
    items = list(value)
    if len({repr(v) for v in items}) != len(items):
        raise MalformedPayload(name, "must not repeat an item")
    return items


def wrapped_keys(value: Any, name: str) -> dict[Address, bytes]:
    """The data key wrapped for each reader: {address: HPKE enc ‖ ciphertext}."""
    if not isinstance(value, dict):
        raise MalformedPayload(name, "must be a map of address to bytes")
    if not 1 <= len(value) <= MAX_READERS:
        raise MalformedPayload(name, f"must hold 1 to {MAX_READERS} readers")
    return {
        address(reader, f"{name}.<address>"): raw_bytes(key, f"{name}.<key>", MAX_WRAPPED_KEY)
        for reader, key in value.items()
    }


def with_patient(payload: dict[str, Any], patient: Address | None) -> dict[str, Any]:
    """Add the optional ``patient`` field when it was given."""
    if patient is not None:
        payload["patient"] = patient
    return payload
