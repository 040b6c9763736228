"""HPKE key wrapping: round trip, every binding enforced, weak keys refused."""

from __future__ import annotations

import pytest

from ehrchain.crypto import hpke
from ehrchain.crypto.errors import DecryptionError, InvalidKey

INFO = b"ehrchain/wrap/v1|test-chain|r00|1|ehr1reader"
SECRET = bytes(range(32))

# Small-order X25519 u-coordinates (little-endian), canonical and non-canonical,
# as listed by libsodium and by Cremers & Jackson, "Prime, Order Please!" (2019).
_SMALL_ORDER = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # 0
    "0100000000000000000000000000000000000000000000000000000000000000",  # 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p = 0
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1 = 1
]
SMALL_ORDER_POINTS = [bytes.fromhex(h) for h in _SMALL_ORDER] + [
    # X25519 ignores the top bit, so the same points with it set are equally weak.
    bytes.fromhex(h)[:31] + bytes([bytes.fromhex(h)[31] | 0x80])
    for h in _SMALL_ORDER
]


@pytest.fixture(scope="module")
def key() -> hpke.EncryptionKey:
    return hpke.EncryptionKey.generate()


def test_round_trip(key: hpke.EncryptionKey) -> None:
    wrapped = hpke.wrap(key.public_key, SECRET, INFO)
    assert len(wrapped) == len(SECRET) + hpke.WRAP_OVERHEAD
    assert hpke.unwrap(key, wrapped, INFO) == SECRET


def test_wrapping_is_randomised(key: hpke.EncryptionKey) -> None:
    assert hpke.wrap(key.public_key, SECRET, INFO) != hpke.wrap(key.public_key, SECRET, INFO)


def test_wrong_key_fails(key: hpke.EncryptionKey) -> None:
    wrapped = hpke.wrap(key.public_key, SECRET, INFO)
    with pytest.raises(DecryptionError):
        hpke.unwrap(hpke.EncryptionKey.generate(), wrapped, INFO)


@pytest.mark.parametrize("other_info", [b"", INFO + b"x", INFO[:-1], INFO.replace(b"|1|", b"|2|")])
def test_wrong_info_fails(key: hpke.EncryptionKey, other_info: bytes) -> None:
    wrapped = hpke.wrap(key.public_key, SECRET, INFO)
    with pytest.raises(DecryptionError):
        hpke.unwrap(key, wrapped, other_info)


def test_every_flipped_byte_fails(key: hpke.EncryptionKey) -> None:
    wrapped = hpke.wrap(key.public_key, SECRET, INFO)
    for i in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            hpke.unwrap(key, bytes(tampered), INFO)


@pytest.mark.parametrize("size", [0, 1, hpke.ENC_SIZE, hpke.WRAP_OVERHEAD - 1])
def test_truncated_input_fails(key: hpke.EncryptionKey, size: int) -> None:
    wrapped = hpke.wrap(key.public_key, SECRET, INFO)
    with pytest.raises(DecryptionError):
        hpke.unwrap(key, wrapped[:size], INFO)


def test_small_order_enc_fails(key: hpke.EncryptionKey) -> None:
    wrapped = hpke.wrap(key.public_key, SECRET, INFO)
    for point in SMALL_ORDER_POINTS:
        with pytest.raises(DecryptionError):
            hpke.unwrap(key, point + wrapped[hpke.ENC_SIZE :], INFO)


def test_empty_secret_round_trips(key: hpke.EncryptionKey) -> None:
    assert hpke.unwrap(key, hpke.wrap(key.public_key, b"", INFO), INFO) == b""


@pytest.mark.parametrize("point", SMALL_ORDER_POINTS, ids=lambda p: p.hex()[:8] + p.hex()[-2:])
def test_small_order_public_keys_rejected(point: bytes) -> None:
    with pytest.raises(InvalidKey):
        hpke.check_public_key(point)
    with pytest.raises(InvalidKey):
        hpke.wrap(point, SECRET, INFO)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_length_public_key_rejected(size: int) -> None:
    with pytest.raises(InvalidKey):
        hpke.check_public_key(b"\x09" * size)


def test_generated_public_key_accepted(key: hpke.EncryptionKey) -> None:
    hpke.check_public_key(key.public_key)
    assert len(key.public_key) == hpke.PUBLIC_KEY_SIZE


def test_public_key_is_derived_from_raw(key: hpke.EncryptionKey) -> None:
    assert hpke.EncryptionKey(key.raw).public_key == key.public_key
    assert hpke.EncryptionKey.generate().public_key != key.public_key


def test_private_key_length_checked() -> None:
    with pytest.raises(InvalidKey):
        hpke.EncryptionKey(b"\x01" * 31)


def test_repr_hides_secret(key: hpke.EncryptionKey) -> None:
    text = repr(key) + str(key)
    assert key.raw.hex() not in text
    assert repr(key.raw) not in text
