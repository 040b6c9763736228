"""Blob envelope: AES-256-GCM sealing bound to its AAD, and the key commitment."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ehrchain.crypto import envelope
from ehrchain.crypto.errors import DecryptionError, InvalidKey

AAD = b"\x01ehrchain/blob/v1 test-chain r00 1"
PLAINTEXT = b'{"resourceType": "Observation", "status": "final"}'


@pytest.fixture
def key() -> bytes:
    return envelope.new_data_key()


def test_round_trip(key: bytes) -> None:
    blob = envelope.seal(key, PLAINTEXT, AAD)
    assert len(blob) == envelope.NONCE_SIZE + len(PLAINTEXT) + envelope.TAG_SIZE
    assert PLAINTEXT not in blob
    assert envelope.open_sealed(key, blob, AAD) == PLAINTEXT


def test_data_keys_are_fresh() -> None:
    keys = {envelope.new_data_key() for _ in range(16)}
    assert len(keys) == 16
    assert all(len(k) == envelope.DATA_KEY_SIZE for k in keys)


def test_nonce_is_random(key: bytes) -> None:
    first, second = envelope.seal(key, PLAINTEXT, AAD), envelope.seal(key, PLAINTEXT, AAD)
    assert first[: envelope.NONCE_SIZE] != second[: envelope.NONCE_SIZE]


def test_wrong_key_fails(key: bytes) -> None:
    blob = envelope.seal(key, PLAINTEXT, AAD)
    with pytest.raises(DecryptionError):
        envelope.open_sealed(envelope.new_data_key(), blob, AAD)


@pytest.mark.parametrize("other_aad", [b"", AAD + b"\x00", AAD.replace(b" 1", b" 2")])
def test_wrong_aad_fails(key: bytes, other_aad: bytes) -> None:
    blob = envelope.seal(key, PLAINTEXT, AAD)
    with pytest.raises(DecryptionError):
        envelope.open_sealed(key, blob, other_aad)


def test_every_flipped_bit_position_fails(key: bytes) -> None:
    blob = envelope.seal(key, PLAINTEXT, AAD)
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x80
        with pytest.raises(DecryptionError):
            envelope.open_sealed(key, bytes(tampered), AAD)


@pytest.mark.parametrize("size", [0, 11, 12, 27])
def test_truncated_blob_fails(key: bytes, size: int) -> None:
    blob = envelope.seal(key, b"", AAD)
    with pytest.raises(DecryptionError):
        envelope.open_sealed(key, blob[:size], AAD)


def test_empty_plaintext_round_trips(key: bytes) -> None:
    assert envelope.open_sealed(key, envelope.seal(key, b"", AAD), AAD) == b""


def test_bad_key_length() -> None:
    with pytest.raises(InvalidKey):
        envelope.seal(b"\x00" * 16, PLAINTEXT, AAD)
    with pytest.raises(DecryptionError):
        envelope.open_sealed(b"\x00" * 16, b"\x00" * 40, AAD)


def test_commitment_is_hmac_sha256(key: bytes) -> None:
    expected = hmac.new(key, PLAINTEXT, hashlib.sha256).digest()
    assert envelope.commitment(key, PLAINTEXT) == expected
    envelope.check_commitment(key, PLAINTEXT, expected)


def test_commitment_rejects_other_plaintext_or_key(key: bytes) -> None:
    value = envelope.commitment(key, PLAINTEXT)
    with pytest.raises(DecryptionError):
        envelope.check_commitment(key, PLAINTEXT + b" ", value)
    with pytest.raises(DecryptionError):
        envelope.check_commitment(envelope.new_data_key(), PLAINTEXT, value)
    with pytest.raises(DecryptionError):
        envelope.check_commitment(key, PLAINTEXT, value[:-1])
    with pytest.raises(DecryptionError):
        envelope.check_commitment(key, PLAINTEXT, bytes(32))
