"""New identities: fresh key pairs and the address their signing key derives."""

from __future__ import annotations

from ehrchain.core.address import address_from_public_key
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.keystore import Identity
from ehrchain.crypto.signing import SigningKey


def new_identity(label: str, role: str = "") -> Identity:
    """Fresh Ed25519 and X25519 keys; the address derives from the signing key."""
    key = SigningKey.generate()
    return Identity(
        label=label,
        address=address_from_public_key(key.public_key),
        signing=key,
        encryption=EncryptionKey.generate(),
        role=role,
    )
