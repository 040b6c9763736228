"""Ed25519 signing: RFC 8032 vectors, tampering, and public-key validation."""

from __future__ import annotations

import nacl.bindings
import pytest

from ehrchain.crypto.errors import InvalidSignature
from ehrchain.crypto.signing import (
    PUBLIC_KEY_SIZE,
    SIGNATURE_SIZE,
    SigningKey,
    check_public_key,
    verify,
)

# RFC 8032 §7.1, TEST 1 and TEST 2.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
        "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da08"
        "5ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]

# The eight points of the Ed25519 torsion subgroup (libsodium's blocklist).
SMALL_ORDER = [
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    )
]


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    key = SigningKey(bytes.fromhex(seed))
    assert key.public_key.hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature
    verify(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature))


def test_generated_key_round_trip() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"payload")
    assert len(signature) == SIGNATURE_SIZE
    assert len(key.public_key) == PUBLIC_KEY_SIZE
    verify(key.public_key, b"payload", signature)


def test_wrong_message_or_key_fails() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"payload")
    with pytest.raises(InvalidSignature):
        verify(key.public_key, b"payloaD", signature)
    with pytest.raises(InvalidSignature):
        verify(SigningKey.generate().public_key, b"payload", signature)


def test_every_flipped_signature_byte_fails() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"payload")
    for i in range(SIGNATURE_SIZE):
        tampered = bytearray(signature)
        tampered[i] ^= 0x01
        with pytest.raises(InvalidSignature):
            verify(key.public_key, b"payload", bytes(tampered))


@pytest.mark.parametrize("size", [0, 63, 65, 128])
def test_wrong_signature_length_fails(size: int) -> None:
    key = SigningKey.generate()
    signature = (key.sign(b"m") * 2)[:size]
    with pytest.raises(InvalidSignature):
        verify(key.public_key, b"m", signature)


@pytest.mark.parametrize("point", SMALL_ORDER, ids=lambda p: p.hex()[:8] + p.hex()[-2:])
def test_small_order_public_keys_rejected(point: bytes) -> None:
    with pytest.raises(InvalidSignature):
        check_public_key(point)


def test_mixed_order_public_key_rejected() -> None:
    public = SigningKey.generate().public_key
    mixed = nacl.bindings.crypto_core_ed25519_add(public, SMALL_ORDER[4])
    check_public_key(public)
    with pytest.raises(InvalidSignature):
        check_public_key(mixed)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_wrong_public_key_length_rejected(size: int) -> None:
    with pytest.raises(InvalidSignature):
        check_public_key(b"\x09" * size)


def test_seed_length_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SigningKey(b"\x00" * 31)


def test_repr_hides_seed() -> None:
    key = SigningKey(bytes.fromhex(RFC8032[0][0]))
    assert RFC8032[0][0] not in repr(key)
    assert "9d61" not in str(key)
