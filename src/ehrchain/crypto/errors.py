"""Errors raised by the crypto wrappers.

CryptoError
├── InvalidSignature   a signature or public key that does not verify
├── InvalidKey         a malformed or weak key (e.g. wrong length, small order)
├── DecryptionError    a ciphertext, wrapped key or blob that fails authentication
└── KeystoreError      a keystore that cannot be opened (wrong password, corrupt file)
"""


class CryptoError(Exception):
    """Base of every error the crypto wrappers raise."""


class InvalidSignature(CryptoError):
    """The signature, or the public key it is checked against, is invalid."""


class InvalidKey(CryptoError):
    """A key is malformed or unsafe to use (wrong length, small-order point)."""


class DecryptionError(CryptoError):
    """Authenticated decryption failed: wrong key, wrong binding or tampered bytes."""


class KeystoreError(CryptoError):
    """The keystore could not be opened or written."""
