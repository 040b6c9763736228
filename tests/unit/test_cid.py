"""Content ids: the exact id Kubo gives, one spelling per blob, checked on read."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehrchain.core.cid import BlobCorrupt, InvalidCid, check_cid, cid_of, digest_of, parse_cid

HELLO = b"hello world"
# `printf 'hello world' | ipfs add --cid-version 1 --raw-leaves -Q`
HELLO_CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
# `printf '' | ipfs add --cid-version 1 --raw-leaves -Q`
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def independent_cid(data: bytes) -> str:
    """CIDv1 computed without multiformats: 0x01 (v1) 0x55 (raw) 0x12 (sha2-256) 0x20 (32)."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def test_hello_world_matches_kubo() -> None:
    assert cid_of(HELLO) == independent_cid(HELLO)
    assert cid_of(HELLO) == HELLO_CID


def test_empty_blob_matches_kubo() -> None:
    assert cid_of(b"") == independent_cid(b"") == EMPTY_CID


@given(st.binary(max_size=2048))
def test_matches_independent_computation(data: bytes) -> None:
    cid = cid_of(data)
    assert cid == independent_cid(data)
    assert parse_cid(cid) == cid
    assert digest_of(cid) == hashlib.sha256(data).digest()
    check_cid(cid, data)


def test_check_detects_corruption() -> None:
    check_cid(HELLO_CID, HELLO)
    with pytest.raises(BlobCorrupt):
        check_cid(HELLO_CID, b"hello world!")
    with pytest.raises(BlobCorrupt):
        check_cid(HELLO_CID, b"")


@given(st.binary(min_size=1, max_size=256), st.data())
def test_any_flipped_bit_is_detected(data: bytes, draw: st.DataObject) -> None:
    cid = cid_of(data)
    position = draw.draw(st.integers(0, len(data) * 8 - 1))
    corrupted = bytearray(data)
    corrupted[position // 8] ^= 1 << (position % 8)
    with pytest.raises(BlobCorrupt):
        check_cid(cid, bytes(corrupted))


@pytest.mark.parametrize(
    "text",
    [
        "",
        HELLO_CID.upper(),  # base32upper spelling of the same CID
        "b" + HELLO_CID[1:].upper(),  # mixed case
        HELLO_CID + "=",  # padded
        HELLO_CID[:-1],  # truncated
        HELLO_CID[:-1] + "f",  # non-zero pad bits: a second spelling
        # The same digest as CIDv0, as dag-pb, in base58btc and in base36:
        "QmaozNR7DZHQK1ZcU9p7QdrshMvXqWK6gpu5rmrkPdT3L4",
        "bafybeifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
        "zb2rhj7crUKTQYRGCRATFaQ6YFLTde2YzdqbbhAASkL9uRDXn",
        "k2cwued9o1pvrt3q271rrqbo49x30tbxwpoeaq75z14e5ui2rzygpbe1",
        "b" + "a" * 58,
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5é",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidCid):
        parse_cid(text)
    with pytest.raises(InvalidCid):
        check_cid(text, HELLO)


def test_parse_rejects_other_hash_function() -> None:
    # Same layout with multihash code 0x13 (sha2-512) and a 32-byte digest.
    raw = bytes([0x01, 0x55, 0x13, 0x20]) + hashlib.sha256(HELLO).digest()
    text = "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")
    with pytest.raises(InvalidCid):
        parse_cid(text)


def test_parse_rejects_non_string() -> None:
    with pytest.raises(InvalidCid):
        parse_cid(HELLO_CID.encode())  # type: ignore[arg-type]
