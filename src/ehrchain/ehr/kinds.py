"""Transaction kinds: one frozen dataclass per payload shape, parsed strictly.

``from_payload`` accepts exactly the fields of docs/architecture.md "Transaction
kinds" (plus an optional ``patient`` where a delegate or provider acts for a
patient) and raises ``MalformedPayload`` naming the first bad field;
``to_payload`` gives the map back. Checks here are stateless; who may send a
kind and what it does to the state are in ``ehr.rules``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

from ehrchain.core.types import Address
from ehrchain.ehr import fields as f
from ehrchain.ehr.errors import MalformedPayload
from ehrchain.ehr.kinds_records import (
    MAX_BLOB_SIZE,
    RECORD_ID_DOMAIN,
    RecordAmend,
    RecordCreate,
    RecordRead,
    record_id_for,
)
from ehrchain.ehr.values import REASON_CODES, Scope

__all__ = [
    "MAX_BLOB_SIZE",
    "MAX_REASON",
    "MAX_REWRAPS",
    "PAYLOADS",
    "RECORD_ID_DOMAIN",
    "SENDERS",
    "AccessDeny",
    "AccessGrant",
    "AccessRequest",
    "AccessRevoke",
    "BreakGlass",
    "DelegateAdd",
    "DelegateRemove",
    "HospitalAdmit",
    "KeyRotate",
    "KeysRewrap",
    "NewAccount",
    "PatientRegister",
    "Payload",
    "ProviderRef",
    "ProviderRegister",
    "RecordAmend",
    "RecordCreate",
    "RecordRead",
    "Rewrap",
    "ValidatorAdd",
    "ValidatorRemove",
    "parse_payload",
    "record_id_for",
]

HOSPITAL_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,31}")
LICENCE: Final = re.compile(r"[A-Za-z0-9-]{3,32}")
MAX_NAME: Final = 128
MAX_REASON: Final = 4096
MAX_REWRAPS: Final = 1024


class Payload(Protocol):
    """A parsed payload."""

    def to_payload(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Rewrap:
    """A data key re-wrapped for one more reader: wire form [record_id, version, wrapped]."""

    record_id: str
    version: int
    wrapped: bytes

    def to_wire(self) -> list[Any]:
        return [self.record_id, self.version, self.wrapped]


def _rewraps(value: Any, name: str) -> tuple[Rewrap, ...]:
    if not isinstance(value, list | tuple):
        raise MalformedPayload(name, "must be a list of [record_id, version, wrapped]")
    if len(value) > MAX_REWRAPS:
        raise MalformedPayload(name, f"must hold at most {MAX_REWRAPS} items")
    out: list[Rewrap] = []
    seen: set[tuple[str, int]] = set()
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise MalformedPayload(name, "each item must be [record_id, version, wrapped]")
        rewrap = Rewrap(
            f.record_id(item[0], f"{name}.record_id"),
            f.integer(item[1], f"{name}.version", 1),
            f.raw_bytes(item[2], f"{name}.wrapped", f.MAX_WRAPPED_KEY),
        )
        if (rewrap.record_id, rewrap.version) in seen:
            raise MalformedPayload(name, "must not repeat a record version")
        seen.add((rewrap.record_id, rewrap.version))
        out.append(rewrap)
    return tuple(out)


# Identity ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewAccount:
    """An account to create; its address must derive from its signing key."""

    address: Address
    signing_key: bytes
    encryption_key: bytes

    @classmethod
    def parse(cls, p: Mapping[str, Any], prefix: str = "") -> NewAccount:
        address = f.address(p["address"], prefix + "address")
        key = f.signing_key(p["signing_key"], prefix + "signing_key")
        f.derived_address(address, key, prefix + "address")
        return cls(address, key, f.encryption_key(p["encryption_key"], prefix + "encryption_key"))

    def to_payload(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "signing_key": self.signing_key,
            "encryption_key": self.encryption_key,
        }


_ACCOUNT_FIELDS: Final = ("address", "signing_key", "encryption_key")


@dataclass(frozen=True, slots=True)
class HospitalAdmit:
    hospital_id: str
    name: str
    admin: NewAccount

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("hospital_id", "name", "admin"))
        f.check_fields(p["admin"], _ACCOUNT_FIELDS, prefix="admin.")
        return cls(
            f.text(p["hospital_id"], "hospital_id", 32, HOSPITAL_ID, 2),
            f.text(p["name"], "name", MAX_NAME),
            NewAccount.parse(p["admin"], "admin."),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "hospital_id": self.hospital_id,
            "name": self.name,
            "admin": self.admin.to_payload(),
        }


@dataclass(frozen=True, slots=True)
class ValidatorAdd:
    address: Address
    signing_key: bytes

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("address", "signing_key"))
        return cls(
            f.address(p["address"], "address"), f.signing_key(p["signing_key"], "signing_key")
        )

    def to_payload(self) -> dict[str, Any]:
        return {"address": self.address, "signing_key": self.signing_key}


MAX_EVIDENCE_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class ValidatorEvidence:
    """A proof, judged by the consensus engine, that ``offender`` misbehaved at ``height``."""

    offender: Address
    height: int
    proof: bytes

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("offender", "height", "proof"))
        return cls(
            f.address(p["offender"], "offender"),
            f.integer(p["height"], "height"),
            f.raw_bytes(p["proof"], "proof", MAX_EVIDENCE_BYTES),
        )

    def to_payload(self) -> dict[str, Any]:
        return {"offender": self.offender, "height": self.height, "proof": self.proof}


@dataclass(frozen=True, slots=True)
class ValidatorRemove:
    address: Address

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("address",))
        return cls(f.address(p["address"], "address"))

    def to_payload(self) -> dict[str, Any]:
        return {"address": self.address}


@dataclass(frozen=True, slots=True)
class PatientRegister:
    account: NewAccount

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, _ACCOUNT_FIELDS)
        return cls(NewAccount.parse(p))

    def to_payload(self) -> dict[str, Any]:
        return self.account.to_payload()


@dataclass(frozen=True, slots=True)
class ProviderRegister:
    account: NewAccount
    licence: str

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, (*_ACCOUNT_FIELDS, "licence"))
        return cls(NewAccount.parse(p), f.text(p["licence"], "licence", 32, LICENCE, 3))

    def to_payload(self) -> dict[str, Any]:
        return {**self.account.to_payload(), "licence": self.licence}


@dataclass(frozen=True, slots=True)
class ProviderRef:
    """A payload naming one provider: provider.verify, consent.authorise, consent.withdraw."""

    provider: Address

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("provider",))
        return cls(f.address(p["provider"], "provider"))

    def to_payload(self) -> dict[str, Any]:
        return {"provider": self.provider}


@dataclass(frozen=True, slots=True)
class KeyRotate:
    signing_key: bytes
    encryption_key: bytes

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("signing_key", "encryption_key"))
        return cls(
            f.signing_key(p["signing_key"], "signing_key"),
            f.encryption_key(p["encryption_key"], "encryption_key"),
        )

    def to_payload(self) -> dict[str, Any]:
        return {"signing_key": self.signing_key, "encryption_key": self.encryption_key}


# Consent and access ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessRequest:
    patient: Address
    scope: Scope

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("patient", "scope"))
        return cls(f.address(p["patient"], "patient"), f.scope(p["scope"], "scope"))

    def to_payload(self) -> dict[str, Any]:
        return {"patient": self.patient, "scope": self.scope.to_value()}


@dataclass(frozen=True, slots=True)
class AccessDeny:
    provider: Address
    patient: Address | None = None

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("provider",), ("patient",))
        return cls(f.address(p["provider"], "provider"), f.optional_address(p, "patient"))

    def to_payload(self) -> dict[str, Any]:
        return f.with_patient({"provider": self.provider}, self.patient)


@dataclass(frozen=True, slots=True)
class AccessGrant:
    grantee: Address
    scope: Scope
    expires_ms: int
    rewraps: tuple[Rewrap, ...]
    patient: Address | None = None

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("grantee", "scope", "expires_ms", "rewraps"), ("patient",))
        return cls(
            f.address(p["grantee"], "grantee"),
            f.scope(p["scope"], "scope"),
            f.integer(p["expires_ms"], "expires_ms"),
            _rewraps(p["rewraps"], "rewraps"),
            f.optional_address(p, "patient"),
        )

    def to_payload(self) -> dict[str, Any]:
        payload = {
            "grantee": self.grantee,
            "scope": self.scope.to_value(),
            "expires_ms": self.expires_ms,
            "rewraps": [r.to_wire() for r in self.rewraps],
        }
        return f.with_patient(payload, self.patient)


@dataclass(frozen=True, slots=True)
class AccessRevoke:
    grantee: Address
    patient: Address | None = None

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("grantee",), ("patient",))
        return cls(f.address(p["grantee"], "grantee"), f.optional_address(p, "patient"))

    def to_payload(self) -> dict[str, Any]:
        return f.with_patient({"grantee": self.grantee}, self.patient)


@dataclass(frozen=True, slots=True)
class DelegateAdd:
    caregiver: Address
    rewraps: tuple[Rewrap, ...]

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("caregiver", "rewraps"))
        return cls(f.address(p["caregiver"], "caregiver"), _rewraps(p["rewraps"], "rewraps"))

    def to_payload(self) -> dict[str, Any]:
        return {"caregiver": self.caregiver, "rewraps": [r.to_wire() for r in self.rewraps]}


@dataclass(frozen=True, slots=True)
class DelegateRemove:
    caregiver: Address

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("caregiver",))
        return cls(f.address(p["caregiver"], "caregiver"))

    def to_payload(self) -> dict[str, Any]:
        return {"caregiver": self.caregiver}


@dataclass(frozen=True, slots=True)
class BreakGlass:
    """Emergency access; ``reason`` is opaque ciphertext (HPKE-wrapped to the patient)."""

    patient: Address
    reason_code: str
    reason: bytes

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("patient", "reason_code", "reason"))
        return cls(
            f.address(p["patient"], "patient"),
            f.choice(p["reason_code"], "reason_code", REASON_CODES),
            f.raw_bytes(p["reason"], "reason", MAX_REASON),
        )

    def to_payload(self) -> dict[str, Any]:
        return {"patient": self.patient, "reason_code": self.reason_code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class KeysRewrap:
    patient: Address
    grantee: Address
    rewraps: tuple[Rewrap, ...]

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("patient", "grantee", "rewraps"))
        return cls(
            f.address(p["patient"], "patient"),
            f.address(p["grantee"], "grantee"),
            _rewraps(p["rewraps"], "rewraps"),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "grantee": self.grantee,
            "rewraps": [r.to_wire() for r in self.rewraps],
        }


PAYLOADS: Final[Mapping[str, type[Any]]] = {
    "hospital.admit": HospitalAdmit,
    "validator.add": ValidatorAdd,
    "validator.remove": ValidatorRemove,
    "validator.evidence": ValidatorEvidence,
    "patient.register": PatientRegister,
    "provider.register": ProviderRegister,
    "provider.verify": ProviderRef,
    "key.rotate": KeyRotate,
    "consent.authorise": ProviderRef,
    "consent.withdraw": ProviderRef,
    "access.request": AccessRequest,
    "access.deny": AccessDeny,
    "access.grant": AccessGrant,
    "access.revoke": AccessRevoke,
    "delegate.add": DelegateAdd,
    "delegate.remove": DelegateRemove,
    "access.break_glass": BreakGlass,
    "keys.rewrap": KeysRewrap,
    "record.create": RecordCreate,
    "record.amend": RecordAmend,
    "record.read": RecordRead,
}
"""Kind name -> payload class (``rules.KINDS`` pairs each with its handler)."""

SENDERS: Final[Mapping[str, str]] = {
    "hospital.admit": "consortium admin",
    "validator.add": "consortium admin",
    "validator.remove": "consortium admin",
    "validator.evidence": "validator",
    "patient.register": "hospital admin",
    "provider.register": "hospital admin",
    "provider.verify": "validator",
    "key.rotate": "any account",
    "consent.authorise": "patient",
    "consent.withdraw": "patient",
    "access.request": "verified provider",
    "access.deny": "patient or active delegate",
    "access.grant": "patient or active delegate",
    "access.revoke": "patient or active delegate",
    "delegate.add": "patient",
    "delegate.remove": "patient",
    "access.break_glass": "verified provider",
    "keys.rewrap": "custodian (admin of the patient's hospital)",
    "record.create": "patient, or verified provider with create consent",
    "record.amend": "patient, the record's author, or verified provider with create consent",
    "record.read": "patient, custodian, author, delegate, grantee or emergency provider",
}
"""Who may send each kind, for documentation and API help texts."""


def parse_payload(kind: str, payload: Any) -> Any:
    """Parse the payload of a known kind (KeyError for an unknown kind)."""
    return PAYLOADS[kind].from_payload(payload)
