"""Golden bytes for everything ehrchain hashes or signs.

The literals below were computed once and pasted in. If one of these tests
fails, the canonical encoding (or an id, hash or signature built on it) has
changed, which invalidates every stored transaction, block and address: change
the literal only together with a new encoding version.

The RFC 8949 Appendix A examples (restricted to the types ehrchain allows) tie
the CBOR body to the standard independently of the pasted values.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ehrchain.core import block, encoding, tx
from ehrchain.core.address import address_from_public_key
from ehrchain.core.errors import EncodingError
from ehrchain.core.types import Address, ChainId
from ehrchain.crypto.signing import SigningKey

# RFC 8032 §7.1 TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
ADDRESS = "ehr1y8lrrhap2j3xzcntlp2qgm7jyudhhm2tx2uz6s"
CHAIN = "ehrchain-test"

RFC8949_APPENDIX_A: list[tuple[Any, str]] = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (18446744073709551616, "c249010000000000000000"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-18446744073709551617, "c349010000000000000000"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ((), "80"),
    ((1, 2, 3), "83010203"),
    ((1, (2, 3), (4, 5)), "8301820203820405"),
    ({}, "a0"),
    ({"a": 1, "b": (2, 3)}, "a26161016162820203"),
    (("a", {"b": "c"}), "826161a161626163"),
    (
        {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
        "a56161614161626142616361436164614461656145",
    ),
]

EHRCHAIN_VECTORS: list[tuple[Any, str]] = [
    (0, "0100"),
    (255, "0118ff"),
    (65536, "011a00010000"),
    (2**32, "011b0000000100000000"),
    (2**100, "01c24d10000000000000000000000000"),
    (-25, "013818"),
    (-256, "0138ff"),
    (-(2**64) - 1, "01c349010000000000000000"),
    (b"\x00\xff", "014200ff"),
    (bytes(range(24)), "015818000102030405060708090a0b0c0d0e0f1011121314151617"),
    ("h\u00e9llo \U0001fa7a", "016b68c3a96c6c6f20f09fa9ba"),
    ([1, [2, 3], b"x", "y", False, None], "01860182020341786179f4f6"),
    ({"b": 1, "a": {"z": [], "aa": True}, "c": None}, "01a36161a2617a80626161f56162016163f6"),
    # Keys sort by their encoded bytes, so shorter keys first (RFC 8949 §4.2.1).
    (
        {"version": 1, "record_id": "r00", "Z": b"\x01"},
        "01a3615a41016776657273696f6e01697265636f72645f696463723030",
    ),
]

NON_CANONICAL: list[tuple[str, str]] = [
    ("", "empty input"),
    ("00", "missing version byte"),
    ("0200", "unknown version byte"),
    ("01a2616201616102", "map keys not sorted"),
    ("01a2616101616102", "duplicate map key"),
    ("011817", "23 in a one-byte argument"),
    ("01190001", "1 in a two-byte argument"),
    ("011a00000001", "1 in a four-byte argument"),
    ("01c24101", "small integer as a bignum"),
    ("019f01ff", "indefinite-length array"),
    ("017f6161ff", "indefinite-length text"),
    ("015f4101ff", "indefinite-length bytes"),
    ("01bf616101ff", "indefinite-length map"),
    ("01f93c00", "half-precision float"),
    ("01fa3f800000", "single-precision float"),
    ("01fb3ff0000000000000", "double-precision float"),
    ("010000", "trailing bytes"),
    ("01c100", "tagged value (epoch time)"),
    ("01d8200161", "tagged value (URI)"),
    ("01a10102", "integer map key"),
    ("01f7", "undefined"),
    ("0161", "truncated text"),
]


@pytest.mark.parametrize(("value", "body"), RFC8949_APPENDIX_A, ids=lambda v: repr(v)[:24])
def test_rfc8949_appendix_a(value: Any, body: str) -> None:
    assert encoding.encode_body(value).hex() == body
    assert encoding.decode(bytes.fromhex("01" + body)) == value


@pytest.mark.parametrize(("value", "encoded"), EHRCHAIN_VECTORS, ids=lambda v: repr(v)[:24])
def test_encode_golden(value: Any, encoded: str) -> None:
    assert encoding.encode(value).hex() == encoded


@pytest.mark.parametrize(("value", "encoded"), EHRCHAIN_VECTORS, ids=lambda v: repr(v)[:24])
def test_decode_golden(value: Any, encoded: str) -> None:
    assert encoding.decode(bytes.fromhex(encoded)) == _as_tuples(value)


@pytest.mark.parametrize(("encoded", "why"), NON_CANONICAL, ids=[w for _, w in NON_CANONICAL])
def test_decode_rejects_non_canonical(encoded: str, why: str) -> None:
    with pytest.raises(EncodingError):
        encoding.decode(bytes.fromhex(encoded))


def test_encode_rejects_floats_and_other_types() -> None:
    for value in (1.0, {1: 2}, {"a": 1.5}, {1, 2}, object()):
        with pytest.raises(EncodingError):
            encoding.encode(value)


def test_tagged_hash_golden() -> None:
    value = [1, "a", b"b"]
    expected = "24c4e4e411a41cc0872aa20a9a760d204747843ccf70a2422dc6d0705b630999"
    assert encoding.tagged_hash("ehrchain/test/v1", value).hex() == expected
    independent = hashlib.sha256(b"ehrchain/test/v1\x00" + encoding.encode(value)).hexdigest()
    assert independent == expected


def test_address_golden() -> None:
    assert SigningKey(RFC8032_SEED).public_key == RFC8032_PUBLIC
    assert address_from_public_key(RFC8032_PUBLIC) == ADDRESS


TX_BODY = (
    "01866b7265636f72642e726561646d656872636861696e2d74657374782a6568723179386c727268"
    "6170326a33787a636e746c703271676d376a79756468686d32747832757a367307a2677665727369"
    "6f6e02697265636f72645f69647172303132333435363738396162636465665820d75a980182b10a"
    "b7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)
TX_SIGNING_BYTES = b"ehrchain/tx/v1\x00".hex() + TX_BODY
TX_SIGNATURE = (
    "d2a9d1da2cfd4ebbc462f85ecd11928d581c27dd12073a4deec9c900e1c84d33"
    "c6231e0d2e8dc8ca2fc8e4e31ba7dcfd4a6c2ddec578b52787d217f69b22e005"
)
TX_WIRE = (
    "0182589101866b7265636f72642e726561646d656872636861696e2d74657374782a656872317938"
    "6c7272686170326a33787a636e746c703271676d376a79756468686d32747832757a367307a26776"
    "657273696f6e02697265636f72645f69647172303132333435363738396162636465665820d75a98"
    "0182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a5840" + TX_SIGNATURE
)
TX_ID = "572211222845ff3b9767e4844812ae40c554c3178a3804db427500921016611c"


def _golden_tx() -> tx.Transaction:
    payload = {"record_id": "r0123456789abcdef", "version": 2}
    return tx.build("record.read", CHAIN, Address(ADDRESS), 7, payload, SigningKey(RFC8032_SEED))


def test_transaction_golden() -> None:
    signed = _golden_tx()
    assert signed.body().hex() == TX_BODY
    assert signed.signing_bytes().hex() == TX_SIGNING_BYTES
    assert signed.signature.hex() == TX_SIGNATURE
    assert signed.to_bytes().hex() == TX_WIRE
    assert signed.tx_id.hex() == TX_ID
    assert hashlib.sha256(bytes.fromhex(TX_WIRE)).hexdigest() == TX_ID


def test_transaction_decodes_from_golden_wire() -> None:
    decoded = tx.verified_from_bytes(bytes.fromhex(TX_WIRE), CHAIN)
    assert decoded == _golden_tx()
    assert decoded.tx_id.hex() == TX_ID


TX_ROOT = "4c1e5ad594a7cbd64681ce60e20390ba2be979943de6a9a7a065e71c6654a4a6"
HEADER_BYTES = (
    # array(13): magic, version 1, chain id, size 215, tx_count 1, height 1, prev hash,
    # tx root, timestamp, target 0, nonce 0, state root, proposer
    "018d1ae4c0b10c016d656872636861696e2d7465737418d701015820000000000000000000000000"
    "000000000000000000000000000000000000000058204c1e5ad594a7cbd64681ce60e20390ba2be9"
    "79943de6a9a7a065e71c6654a4a61b0000018bcfe56800000058204ba69735ca53765ed6a709edb5"
    "6c6ea236b7193a3b29a6b390c346f0f4340e4e782a6568723179386c7272686170326a33787a636e"
    "746c703271676d376a79756468686d32747832757a3673"
)
HEADER_HASH = "24c7e4d6482ca7cd50254330c85707f5593c388fa2efcf0f776fc1df24b28f3a"


def test_block_header_golden() -> None:
    txs = (_golden_tx(),)
    header = block.BlockHeader(
        magic=block.MAGIC,
        version=block.VERSION,
        chain_id=ChainId(CHAIN),
        size=block.tx_list_size(txs),
        tx_count=len(txs),
        height=1,
        prev_hash=block.GENESIS_PARENT,
        tx_root=block.tx_root(txs),
        timestamp_ms=1_700_000_000_000,
        target=0,
        nonce=0,
        state_root=hashlib.sha256(b"state").digest(),
        proposer=Address(ADDRESS),
    )
    # One leaf: the RFC 6962 root is SHA-256(0x00 ‖ leaf).
    assert hashlib.sha256(b"\x00" + bytes.fromhex(TX_WIRE)).hexdigest() == TX_ROOT
    assert header.tx_root.hex() == TX_ROOT
    assert header.to_bytes().hex() == HEADER_BYTES
    assert header.hash.hex() == HEADER_HASH
    expected = hashlib.sha256(b"ehrchain/header/v1\x00" + bytes.fromhex(HEADER_BYTES))
    assert expected.hexdigest() == HEADER_HASH


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value
