"""Identities at rest: private keys only ever stored encrypted under a password.

A keystore file is JSON with a public header (format, label, address, role, KDF
parameters and salt, cipher) and one sealed field. The key is derived from the
password with Argon2id (argon2-cffi); the secret keys are sealed with AES-256-GCM
and the header as AAD, so the header cannot be edited without the file failing
to open. Cost parameters live in the file, so files written with older costs
still open after the defaults change.

Tests pass ``params=KdfParams.FAST_FOR_TESTS``; everything else keeps the default.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from argon2.exceptions import HashingError
from argon2.low_level import ARGON2_VERSION, Type, hash_secret_raw

from ehrchain.crypto import envelope
from ehrchain.crypto.errors import CryptoError, KeystoreError
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.signing import SigningKey

FORMAT: Final = "ehrchain-keystore/v1"
KDF_NAME: Final = "argon2id"
CIPHER_NAME: Final = "aes-256-gcm"
SALT_SIZE: Final = 16
FILE_MODE: Final = 0o600
MAX_TIME_COST: Final = 64
MAX_MEMORY_COST_KIB: Final = 4 * 1024 * 1024
MAX_PARALLELISM: Final = 64
_OPEN_FAILED: Final = "wrong password or corrupted keystore"


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id costs; bounded so a hostile file cannot make opening it exhaust memory."""

    time_cost: int
    memory_cost_kib: int
    parallelism: int

    DEFAULT: ClassVar[KdfParams]
    FAST_FOR_TESTS: ClassVar[KdfParams]

    def __post_init__(self) -> None:
        for name, low, high in (
            ("time_cost", 1, MAX_TIME_COST),
            ("memory_cost_kib", 8 * self.parallelism, MAX_MEMORY_COST_KIB),
            ("parallelism", 1, MAX_PARALLELISM),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise KeystoreError(f"KDF {name} must be an integer in [{low}, {high}]")


KdfParams.DEFAULT = KdfParams(time_cost=3, memory_cost_kib=64 * 1024, parallelism=1)
KdfParams.FAST_FOR_TESTS = KdfParams(time_cost=1, memory_cost_kib=8, parallelism=1)


@dataclass(frozen=True, slots=True, repr=False)
class Identity:
    """A user's address and private keys; repr shows only the public parts.

    ``previous_encryption`` keeps encryption keys replaced by rotation, newest
    first, because versions written before a rotation are wrapped to them.
    """

    label: str
    address: str
    signing: SigningKey
    encryption: EncryptionKey
    previous_encryption: tuple[EncryptionKey, ...] = ()
    role: str = ""

    def all_encryption_keys(self) -> tuple[EncryptionKey, ...]:
        """The current encryption key, then the previous ones newest first."""
        return (self.encryption, *self.previous_encryption)

    def rotated(self, signing: SigningKey, encryption: EncryptionKey) -> Identity:
        """The identity after ``key.rotate``: same address, old encryption key kept."""
        previous = (self.encryption, *self.previous_encryption)
        return dataclasses.replace(
            self, signing=signing, encryption=encryption, previous_encryption=previous
        )

    def __repr__(self) -> str:
        return f"Identity(label={self.label!r}, address={self.address!r}, role={self.role!r})"


def encrypt_identity(
    identity: Identity, password: str, params: KdfParams = KdfParams.DEFAULT
) -> bytes:
    """Serialise an identity to keystore bytes, its keys sealed under ``password``."""
    salt = os.urandom(SALT_SIZE)
    header: dict[str, Any] = {
        "format": FORMAT,
        "label": identity.label,
        "address": identity.address,
        "role": identity.role,
        "cipher": CIPHER_NAME,
        "kdf": {
            "algorithm": KDF_NAME,
            "version": ARGON2_VERSION,
            "time_cost": params.time_cost,
            "memory_cost_kib": params.memory_cost_kib,
            "parallelism": params.parallelism,
            "salt": _b64(salt),
        },
    }
    secrets = {
        "signing_seed": identity.signing.seed.hex(),
        "encryption_key": identity.encryption.raw.hex(),
        "previous_encryption_keys": [k.raw.hex() for k in identity.previous_encryption],
    }
    key = _derive_key(password, salt, params)
    sealed = envelope.seal(key, json.dumps(secrets).encode("ascii"), _aad(header))
    document = {**header, "sealed": _b64(sealed)}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")


def decrypt_identity(data: bytes, password: str) -> Identity:
    """Open keystore bytes; a wrong password or any corruption raises KeystoreError."""
    header, sealed = _parse_document(data)
    params, salt = _parse_kdf(header["kdf"])
    key = _derive_key(password, salt, params)
    try:
        plaintext = envelope.open_sealed(key, sealed, _aad(header))
    except CryptoError:
        raise KeystoreError(_OPEN_FAILED) from None
    return _identity_from(header, plaintext)


def save_identity(
    path: Path, identity: Identity, password: str, params: KdfParams = KdfParams.DEFAULT
) -> None:
    """Write an encrypted keystore readable only by its owner (mode 0600), atomically."""
    _atomic_write(path, encrypt_identity(identity, password, params))


def load_identity(path: Path, password: str) -> Identity:
    """Read and open a keystore file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {str(path)!r}: {exc.strerror}") from None
    return decrypt_identity(data, password)


def _derive_key(password: str, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id over the NFC-normalised password, so one typed password has one key."""
    if not isinstance(password, str) or not password:
        raise KeystoreError("password must be a non-empty string")
    secret = unicodedata.normalize("NFC", password).encode("utf-8")
    try:
        return hash_secret_raw(
            secret,
            salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_cost_kib,
            parallelism=params.parallelism,
            hash_len=envelope.DATA_KEY_SIZE,
            type=Type.ID,
            version=ARGON2_VERSION,
        )
    except HashingError as exc:
        raise KeystoreError(f"key derivation failed: {exc}") from None


def _aad(header: dict[str, Any]) -> bytes:
    """The header in one deterministic JSON form, authenticated with the sealed keys."""
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _parse_document(data: bytes) -> tuple[dict[str, Any], bytes]:
    try:
        document = json.loads(data)
    except (ValueError, TypeError):
        raise KeystoreError("keystore is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeystoreError(f"keystore format must be {FORMAT!r}")
    for name in ("label", "address", "role"):
        if not isinstance(document.get(name), str):
            raise KeystoreError(f"keystore field {name!r} must be a string")
    if document.get("cipher") != CIPHER_NAME:
        raise KeystoreError(f"keystore cipher must be {CIPHER_NAME!r}")
    if not isinstance(document.get("kdf"), dict):
        raise KeystoreError("keystore field 'kdf' must be an object")
    header = {k: v for k, v in document.items() if k != "sealed"}
    return header, _unb64(document.get("sealed"), "sealed")


def _parse_kdf(kdf: dict[str, Any]) -> tuple[KdfParams, bytes]:
    if kdf.get("algorithm") != KDF_NAME or kdf.get("version") != ARGON2_VERSION:
        raise KeystoreError(f"keystore KDF must be {KDF_NAME} version {ARGON2_VERSION}")
    params = KdfParams(
        time_cost=_int_field(kdf, "time_cost"),
        memory_cost_kib=_int_field(kdf, "memory_cost_kib"),
        parallelism=_int_field(kdf, "parallelism"),
    )
    salt = _unb64(kdf.get("salt"), "salt")
    if len(salt) != SALT_SIZE:
        raise KeystoreError(f"keystore salt must be {SALT_SIZE} bytes")
    return params, salt


def _int_field(kdf: dict[str, Any], name: str) -> int:
    value = kdf.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise KeystoreError(f"keystore KDF {name} must be an integer")
    return value


def _identity_from(header: dict[str, Any], plaintext: bytes) -> Identity:
    """Rebuild the identity; errors never echo the decrypted secret material."""
    try:
        secrets = json.loads(plaintext)
        return Identity(
            label=header["label"],
            address=header["address"],
            role=header["role"],
            signing=SigningKey(bytes.fromhex(secrets["signing_seed"])),
            encryption=EncryptionKey(bytes.fromhex(secrets["encryption_key"])),
            previous_encryption=tuple(
                EncryptionKey(bytes.fromhex(k)) for k in secrets["previous_encryption_keys"]
            ),
        )
    except (ValueError, TypeError, KeyError, CryptoError):
        raise KeystoreError("keystore secret section is malformed") from None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, name: str) -> bytes:
    if not isinstance(text, str):
        raise KeystoreError(f"keystore field {name!r} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreError(f"keystore field {name!r} is not valid base64") from None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a 0600 temporary file in the same directory, fsync, then rename over."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise KeystoreError(f"cannot write keystore {str(path)!r}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise KeystoreError(f"cannot write keystore {str(path)!r}: {exc.strerror}") from None
