"""Properties of the canonical encoding and of signed transactions (Hypothesis)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ehrchain.core import encoding, tx
from ehrchain.core.address import address_from_public_key
from ehrchain.core.errors import EncodingError
from ehrchain.crypto.errors import InvalidSignature
from ehrchain.crypto.signing import SIGNATURE_SIZE, SigningKey

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.binary(max_size=64)
    | st.text(max_size=32)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=24,
)


def shape(value: Any) -> Any:
    """A type-exact view, so True and 1 (equal in Python) compare as different."""
    if isinstance(value, list | tuple):
        return ("seq", tuple(shape(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted((k, shape(v)) for k, v in value.items())))
    return (type(value).__name__, value)


@given(values)
def test_decode_inverts_encode(value: Any) -> None:
    encoded = encoding.encode(value)
    decoded = encoding.decode(encoded)
    assert shape(decoded) == shape(value)
    assert encoding.encode(decoded) == encoded


@given(values)
def test_decoded_sequences_are_tuples(value: Any) -> None:
    def no_lists(v: Any) -> bool:
        if isinstance(v, list):
            return False
        if isinstance(v, tuple):
            return all(no_lists(x) for x in v)
        if isinstance(v, dict):
            return all(no_lists(x) for x in v.values())
        return True

    assert no_lists(encoding.decode(encoding.encode(value)))


@given(values, values)
def test_encode_is_injective(a: Any, b: Any) -> None:
    assume(shape(a) != shape(b))
    assert encoding.encode(a) != encoding.encode(b)


@given(values, st.data())
def test_any_flipped_byte_changes_or_breaks_decoding(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(encoding.encode(value))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = encoding.decode(bytes(encoded))
    except EncodingError:
        return
    assert shape(decoded) != shape(value)


payloads = st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=4)
kinds = st.text(min_size=1, max_size=64)
chain_ids = st.text(min_size=1, max_size=64)
nonces = st.integers(min_value=0, max_value=tx.MAX_NONCE)
seeds = st.binary(min_size=32, max_size=32)


def _build(
    kind: str, chain_id: str, nonce: int, payload: dict[str, Any], seed: bytes
) -> tx.Transaction:
    key = SigningKey(seed)
    return tx.build(kind, chain_id, address_from_public_key(key.public_key), nonce, payload, key)


@given(kinds, chain_ids, nonces, payloads, seeds)
def test_transaction_round_trip(
    kind: str, chain_id: str, nonce: int, payload: dict[str, Any], seed: bytes
) -> None:
    signed = _build(kind, chain_id, nonce, payload, seed)
    decoded = tx.from_bytes(signed.to_bytes())
    assert decoded.to_bytes() == signed.to_bytes()
    assert decoded.tx_id == signed.tx_id
    assert (decoded.kind, decoded.chain_id, decoded.sender, decoded.nonce) == (
        signed.kind,
        signed.chain_id,
        signed.sender,
        signed.nonce,
    )
    assert shape(decoded.payload) == shape(payload)
    decoded.verify_signature()
    assert tx.verified_from_bytes(signed.to_bytes(), chain_id).tx_id == signed.tx_id


@given(kinds, chain_ids, nonces, payloads, seeds, st.data())
def test_flipped_signature_byte_fails_verification(
    kind: str, chain_id: str, nonce: int, payload: dict[str, Any], seed: bytes, data: st.DataObject
) -> None:
    signed = _build(kind, chain_id, nonce, payload, seed)
    wire = bytearray(signed.to_bytes())
    # The signature is the last element: its 64 bytes end the encoding.
    assert bytes(wire[-SIGNATURE_SIZE:]) == signed.signature
    index = data.draw(st.integers(0, SIGNATURE_SIZE - 1))
    wire[len(wire) - SIGNATURE_SIZE + index] ^= data.draw(st.integers(1, 255))
    tampered = tx.from_bytes(bytes(wire))
    assert tampered.tx_id != signed.tx_id
    with pytest.raises(InvalidSignature):
        tampered.verify_signature()


def _agrees_with_decode(data: bytes) -> None:
    """``decode_byte_strings`` accepts exactly what ``decode`` accepts as a
    list of byte strings, and returns the same items."""
    try:
        full = encoding.decode(data)
    except EncodingError:
        full = None
    expected = (
        full if isinstance(full, tuple) and all(type(item) is bytes for item in full) else None
    )
    for threshold in (0, 1 << 62):  # heads checked in place; re-encoded
        with mock.patch.object(encoding, "_IN_PLACE_ITEM_BYTES", threshold):
            try:
                fast = encoding.decode_byte_strings(data)
            except EncodingError:
                fast = None
        assert fast == expected


byte_lists = st.lists(
    st.binary(max_size=40) | st.sampled_from([23, 24, 255, 256, 65_535, 65_536]).map(bytes),
    max_size=30,
)


@given(byte_lists)
def test_byte_string_lists_decode_fast(items: list[bytes]) -> None:
    encoded = encoding.encode(items)
    assert encoding.decode_byte_strings(encoded) == tuple(items)
    _agrees_with_decode(encoded)


@given(byte_lists, st.data())
def test_fast_byte_list_decoder_refuses_what_decode_refuses(
    items: list[bytes], data: st.DataObject
) -> None:
    encoded = bytearray(encoding.encode(items))
    action = data.draw(st.sampled_from(["flip", "insert", "delete", "append"]))
    position = data.draw(st.integers(0, len(encoded) - 1))
    if action == "flip":
        encoded[position] ^= data.draw(st.integers(1, 255))
    elif action == "insert":
        encoded.insert(position, data.draw(st.integers(0, 255)))
    elif action == "delete":
        del encoded[position]
    else:
        encoded += data.draw(st.binary(min_size=1, max_size=4))
    _agrees_with_decode(bytes(encoded))


@given(values)
def test_fast_byte_list_decoder_refuses_other_values(value: Any) -> None:
    _agrees_with_decode(encoding.encode(value))


@pytest.mark.parametrize(
    "body",
    [
        bytes.fromhex("98 01 41 61".replace(" ", "")),  # array length in a needless extra byte
        bytes.fromhex("81 58 01 61".replace(" ", "")),  # byte-string length likewise
        bytes.fromhex("9f 41 61 ff".replace(" ", "")),  # indefinite-length array
        bytes.fromhex("81 5f 41 61 ff".replace(" ", "")),  # indefinite-length byte string
        bytes.fromhex("81 d8 18 41 61".replace(" ", "")),  # a tagged item
        bytes.fromhex("81 41 61 00".replace(" ", "")),  # trailing byte
        bytes.fromhex("81 61 61".replace(" ", "")),  # a text string, not bytes
    ],
)
def test_fast_byte_list_decoder_refuses_non_canonical_forms(body: bytes) -> None:
    for threshold in (0, 1 << 62):
        with (
            mock.patch.object(encoding, "_IN_PLACE_ITEM_BYTES", threshold),
            pytest.raises(EncodingError),
        ):
            encoding.decode_byte_strings(bytes([encoding.VERSION]) + body)
    _agrees_with_decode(bytes([encoding.VERSION]) + body)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_the_expected_heads_are_cbor2s_shortest_heads(argument: int) -> None:
    """The head check agrees with cbor2's own shortest form (an unsigned int's
    encoding is exactly its head), for every argument size up to 8 bytes."""
    import cbor2

    head = cbor2.dumps(argument)
    assert encoding._expect_head(head, 0, 0, argument) == len(head)
