"""Identities on the client: new key pairs and the public card others register.

Self-custody: keys are generated here, in the user's process, and only the
public card (address and public keys) ever leaves it. A card is checked on
construction: the address must be well-formed and both keys valid points, so a
mistyped card fails before it is signed into a transaction. (The address
derives from the *first* signing key only; after a rotation it no longer
derives from the card's key, and registration checks derivation on the node.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ehrchain.core.address import parse_address
from ehrchain.core.identity import new_identity
from ehrchain.crypto import hpke, signing
from ehrchain.crypto.errors import InvalidKey
from ehrchain.crypto.keystore import Identity

__all__ = ["PublicIdentity", "new_identity", "public_identity"]


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of an identity: what a hospital needs to register it."""

    address: str
    signing_key: bytes
    encryption_key: bytes
    label: str = ""
    role: str = ""

    def __post_init__(self) -> None:
        parse_address(self.address)
        signing.check_public_key(self.signing_key)
        hpke.check_public_key(self.encryption_key)

    def to_payload(self) -> dict[str, Any]:
        """The ``{address, signing_key, encryption_key}`` map registration payloads use."""
        return {
            "address": self.address,
            "signing_key": self.signing_key,
            "encryption_key": self.encryption_key,
        }

    def to_json(self) -> dict[str, str]:
        return {
            "address": self.address,
            "signing_key": self.signing_key.hex(),
            "encryption_key": self.encryption_key.hex(),
            "label": self.label,
            "role": self.role,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PublicIdentity:
        try:
            return cls(
                address=str(data["address"]),
                signing_key=bytes.fromhex(data["signing_key"]),
                encryption_key=bytes.fromhex(data["encryption_key"]),
                label=str(data.get("label", "")),
                role=str(data.get("role", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidKey(f"malformed public identity: {type(exc).__name__}") from exc


def public_identity(identity: Identity) -> PublicIdentity:
    """The card of an identity."""
    return PublicIdentity(
        address=identity.address,
        signing_key=identity.signing.public_key,
        encryption_key=identity.encryption.public_key,
        label=identity.label,
        role=identity.role,
    )
