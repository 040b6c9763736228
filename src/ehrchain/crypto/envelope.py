"""Blob encryption with AES-256-GCM and key commitments with HMAC-SHA256.

Each record version gets a fresh 32-byte data key, used to seal exactly one
plaintext, so the random 96-bit nonce can never repeat under a key. A sealed
blob is ``nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)``; the AAD binds it to
its chain, record and version.

GCM is not key-committing: one ciphertext can be made to open under two keys.
The commitment HMAC-SHA256(data key, plaintext) is recorded on the chain, so a
reader checks that the key it was given opens to the plaintext the author wrote.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ehrchain.crypto.errors import DecryptionError, InvalidKey

DATA_KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
COMMITMENT_SIZE: Final = 32


def new_data_key() -> bytes:
    """A fresh random AES-256 key."""
    return AESGCM.generate_key(bit_length=DATA_KEY_SIZE * 8)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != DATA_KEY_SIZE:
        raise InvalidKey(f"data key must be {DATA_KEY_SIZE} bytes")


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` and ``aad`` under ``key``."""
    _check_key(key)
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a sealed blob; a wrong key, wrong AAD or any tampering raises DecryptionError."""
    if not isinstance(key, bytes) or len(key) != DATA_KEY_SIZE:
        raise DecryptionError("data key is malformed")
    if not isinstance(blob, bytes) or len(blob) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("sealed blob is too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
    except InvalidTag as exc:
        raise DecryptionError("sealed blob does not open with this key and binding") from exc


def commitment(key: bytes, plaintext: bytes) -> bytes:
    """HMAC-SHA256 of the plaintext under the data key."""
    _check_key(key)
    return hmac.new(key, plaintext, hashlib.sha256).digest()


def check_commitment(key: bytes, plaintext: bytes, expected: bytes) -> None:
    """Raise DecryptionError unless ``expected`` is the commitment (constant-time compare)."""
    if not isinstance(key, bytes) or len(key) != DATA_KEY_SIZE:
        raise DecryptionError("data key is malformed")
    if not isinstance(expected, bytes):
        raise DecryptionError("commitment must be bytes")
    if not hmac.compare_digest(commitment(key, plaintext), expected):
        raise DecryptionError("plaintext does not match its commitment")
