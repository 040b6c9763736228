"""Addresses: Bech32 with the ``ehr`` prefix; any single mistyped character is rejected."""

from __future__ import annotations

import hashlib

import bech32
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ehrchain.core.address import (
    HASH_SIZE,
    HRP,
    address_bytes,
    address_from_public_key,
    parse_address,
)
from ehrchain.core.errors import InvalidAddress

RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
keys = st.binary(min_size=32, max_size=32)


@given(keys)
def test_round_trip(public_key: bytes) -> None:
    address = address_from_public_key(public_key)
    assert address.startswith(HRP + "1")
    assert address == address.lower()
    assert parse_address(address) == address
    assert address_bytes(address) == hashlib.sha256(public_key).digest()[:HASH_SIZE]


@given(keys, st.data())
def test_any_single_mistyped_character_is_rejected(public_key: bytes, data: st.DataObject) -> None:
    address = address_from_public_key(public_key)
    position = data.draw(st.integers(0, len(address) - 1), label="position")
    replacement = data.draw(
        st.sampled_from(bech32.CHARSET + "1bio" + "EHRQPZ") | st.characters(), label="replacement"
    )
    assume(replacement != address[position])
    mistyped = address[:position] + replacement + address[position + 1 :]
    with pytest.raises(InvalidAddress):
        parse_address(mistyped)


@given(keys, keys)
def test_distinct_keys_give_distinct_addresses(a: bytes, b: bytes) -> None:
    assume(a != b)
    assert address_from_public_key(a) != address_from_public_key(b)


def test_upper_case_is_rejected() -> None:
    address = address_from_public_key(RFC8032_PUBLIC)
    with pytest.raises(InvalidAddress):
        parse_address(address.upper())


def _bech32(hrp: str, payload: bytes) -> str:
    words = bech32.convertbits(payload, 8, 5)
    assert words is not None
    text: str = bech32.bech32_encode(hrp, words)
    return text


def test_other_prefix_is_rejected() -> None:
    digest = hashlib.sha256(RFC8032_PUBLIC).digest()
    assert parse_address(_bech32(HRP, digest[:HASH_SIZE])) == address_from_public_key(
        RFC8032_PUBLIC
    )
    with pytest.raises(InvalidAddress):
        parse_address(_bech32("bc", digest[:HASH_SIZE]))


def test_wrong_payload_length_is_rejected() -> None:
    digest = hashlib.sha256(RFC8032_PUBLIC).digest()
    for size in (0, HASH_SIZE - 1, HASH_SIZE + 1, 32):
        with pytest.raises(InvalidAddress):
            parse_address(_bech32(HRP, digest[:size]))


@pytest.mark.parametrize(
    "text", ["", "ehr1", "ehr", "x" * 91, "ehr1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"]
)
def test_malformed_is_rejected(text: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_address(text)


def test_non_string_is_rejected() -> None:
    with pytest.raises(InvalidAddress):
        parse_address(b"ehr1")  # type: ignore[arg-type]
