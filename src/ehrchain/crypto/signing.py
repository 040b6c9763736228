"""Ed25519 signing and verification through libsodium (pynacl).

Public keys are checked on their own before use: a key must be 32 bytes, decode
to a point on the curve and not lie in the small-order subgroup. libsodium's
``crypto_core_ed25519_is_valid_point`` does all three checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import nacl.bindings
import nacl.exceptions
import nacl.signing

from ehrchain.crypto.errors import InvalidSignature

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32


def check_public_key(public_key: bytes) -> None:
    """Raise InvalidSignature unless the key is a valid, non-small-order point."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidSignature(f"public key must be {PUBLIC_KEY_SIZE} bytes")
    if not _is_valid_point(bytes(public_key)):
        raise InvalidSignature("public key is not a valid prime-order curve point")


@lru_cache(maxsize=65_536)
def _is_valid_point(public_key: bytes) -> bool:
    """Cached: a node sees the same few thousand senders' keys over and over."""
    return bool(nacl.bindings.crypto_core_ed25519_is_valid_point(public_key))


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless signature is a valid Ed25519 signature."""
    check_public_key(public_key)
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidSignature(f"signature must be {SIGNATURE_SIZE} bytes")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except nacl.exceptions.BadSignatureError as exc:
        raise InvalidSignature("signature does not verify") from exc


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """An Ed25519 private key; repr never shows the secret."""

    seed: bytes
    _key: nacl.signing.SigningKey = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_SIZE:
            raise ValueError(f"Ed25519 seed must be {SEED_SIZE} bytes")
        object.__setattr__(self, "_key", nacl.signing.SigningKey(self.seed))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return "SigningKey(<secret>)"
