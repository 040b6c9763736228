"""Key wrapping with HPKE (RFC 9180) base mode: X25519, HKDF-SHA256, AES-256-GCM.

A record version's data key is wrapped once per reader with single-shot HPKE
from ``cryptography``. Everything the wrapped key belongs to (chain, record,
version, reader) is bound through ``info``: the library's single-shot API has no
AAD parameter, and ``info`` enters the key schedule, so a wrapped key copied to
another record, version or reader does not open. A wrapped key is
``enc (32 bytes) ‖ ciphertext ‖ tag (16 bytes)``.

Recipient public keys are checked before use: a small-order X25519 point would
make the shared secret a constant known to everybody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519

from ehrchain.crypto.errors import DecryptionError, InvalidKey

PUBLIC_KEY_SIZE: Final = 32
PRIVATE_KEY_SIZE: Final = 32
ENC_SIZE: Final = 32
TAG_SIZE: Final = 16
WRAP_OVERHEAD: Final = ENC_SIZE + TAG_SIZE
SUITE: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True, slots=True, repr=False)
class EncryptionKey:
    """An X25519 private key used to unwrap data keys; repr never shows the secret."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != PRIVATE_KEY_SIZE:
            raise InvalidKey(f"X25519 private key must be {PRIVATE_KEY_SIZE} bytes")

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls(x25519.X25519PrivateKey.generate().private_bytes_raw())

    @property
    def public_key(self) -> bytes:
        return self._private().public_key().public_bytes_raw()

    def _private(self) -> x25519.X25519PrivateKey:
        return x25519.X25519PrivateKey.from_private_bytes(self.raw)

    def __repr__(self) -> str:
        return "EncryptionKey(<secret>)"


def check_public_key(public_key: bytes) -> None:
    """Raise InvalidKey unless the key is 32 bytes and not a small-order point.

    Every clamped X25519 scalar is a multiple of the cofactor 8, so a point of
    order 1, 2, 4 or 8 (in canonical or non-canonical encoding, with or without
    the ignored top bit) gives the all-zero shared secret with any private key.
    The library refuses that output (RFC 7748 §6.1), which is how it is detected.
    """
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidKey(f"X25519 public key must be {PUBLIC_KEY_SIZE} bytes")
    probe = x25519.X25519PrivateKey.generate()
    try:
        probe.exchange(x25519.X25519PublicKey.from_public_bytes(public_key))
    except ValueError as exc:
        raise InvalidKey("X25519 public key is a small-order point") from exc


def wrap(recipient_public_key: bytes, secret: bytes, info: bytes) -> bytes:
    """Encrypt ``secret`` to the recipient, bound to ``info``."""
    check_public_key(recipient_public_key)
    recipient = x25519.X25519PublicKey.from_public_bytes(recipient_public_key)
    return SUITE.encrypt(secret, recipient, info=info)


def unwrap(key: EncryptionKey, wrapped: bytes, info: bytes) -> bytes:
    """Open a wrapped secret; any wrong key, wrong ``info`` or tampering raises DecryptionError."""
    if not isinstance(wrapped, bytes) or len(wrapped) < WRAP_OVERHEAD:
        raise DecryptionError("wrapped key is malformed")
    try:
        return SUITE.decrypt(wrapped, key._private(), info=info)
    except (InvalidTag, ValueError, TypeError) as exc:
        raise DecryptionError("wrapped key does not open with this key and binding") from exc
