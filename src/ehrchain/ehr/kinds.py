"""Transaction kinds: one frozen dataclass per payload shape, parsed strictly.

``from_payload`` accepts exactly the fields of docs/architecture.md "Transaction
kinds" (plus an optional ``patient`` where a delegate or provider acts for a
patient) and raises ``MalformedPayload`` naming the first bad field;
``to_payload`` gives the map back. Checks here are stateless; who may send a
kind and what it does to the state are in ``ehr.rules``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, Self

from ehrchain.core import encoding
from ehrchain.core.types import Address
from ehrchain.ehr import fields as f
from ehrchain.ehr.errors import MalformedPayload
from ehrchain.ehr.values import CATEGORIES, REASON_CODES, RECORD_KINDS, Scope

RECORD_ID_DOMAIN: Final = "ehrchain/record-id/v1"
HOSPITAL_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{1,31}")
LICENCE: Final = re.compile(r"[A-Za-z0-9-]{3,32}")
MEDIA_TYPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
FHIR_VERSION: Final = re.compile(r"([0-9]+\.[0-9]+(\.[0-9]+)?)?")
RESOURCE_TYPE: Final = re.compile(r"[A-Za-z]*")
MAX_NAME: Final = 128
MAX_REASON: Final = 4096
MAX_REWRAPS: Final = 1024
MAX_BLOB_SIZE: Final = 2**40


def record_id_for(chain_id: str, sender: str, nonce: int) -> str:
    """The id of the record a sender creates with a nonce, known before submitting."""
    digest = hashlib.sha256(encoding.encode([RECORD_ID_DOMAIN, chain_id, sender, nonce]))
    return "r" + digest.digest()[:16].hex()


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


def _with_patient(payload: dict[str, Any], patient: Address | None) -> dict[str, Any]:
    if patient is not None:
        payload["patient"] = patient
    return payload


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
class ProviderVerify:
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
class ConsentChange:
    """consent.authorise / consent.withdraw: the provider that may (no longer) create."""

    provider: Address

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("provider",))
        return cls(f.address(p["provider"], "provider"))

    def to_payload(self) -> dict[str, Any]:
        return {"provider": self.provider}


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
        return _with_patient({"provider": self.provider}, self.patient)


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
        return _with_patient(payload, self.patient)


@dataclass(frozen=True, slots=True)
class AccessRevoke:
    grantee: Address
    patient: Address | None = None

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("grantee",), ("patient",))
        return cls(f.address(p["grantee"], "grantee"), f.optional_address(p, "patient"))

    def to_payload(self) -> dict[str, Any]:
        return _with_patient({"grantee": self.grantee}, self.patient)


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


# Records --------------------------------------------------------------------

_RECORD_FIELDS: Final = (
    "record_id",
    "category",
    "kind",
    "resource_type",
    "media_type",
    "fhir_version",
    "cid",
    "size",
    "commitment",
    "epoch",
    "wrapped",
)


@dataclass(frozen=True, slots=True)
class RecordCreate:
    """A new record's first version (version 1); ``patient`` defaults to the sender."""

    record_id: str
    category: str
    kind: str
    resource_type: str
    media_type: str
    fhir_version: str
    cid: str
    size: int
    commitment: bytes
    epoch: int
    wrapped: Mapping[Address, bytes]
    patient: Address | None = None

    @classmethod
    def _parse(cls, p: Any, extra: tuple[str, ...]) -> dict[str, Any]:
        f.check_fields(p, (*_RECORD_FIELDS, *extra), ("patient",))
        kind = f.choice(p["kind"], "kind", RECORD_KINDS)
        resource_type = f.text(p["resource_type"], "resource_type", 64, RESOURCE_TYPE, 0)
        fhir_version = f.text(p["fhir_version"], "fhir_version", 16, FHIR_VERSION, 0)
        if kind == "fhir" and not (resource_type and fhir_version):
            raise MalformedPayload(
                "resource_type", "a FHIR record needs resource_type and fhir_version"
            )
        if kind == "document" and fhir_version:
            raise MalformedPayload("fhir_version", "must be empty for a document")
        return {
            "record_id": f.record_id(p["record_id"], "record_id"),
            "category": f.choice(p["category"], "category", CATEGORIES),
            "kind": kind,
            "resource_type": resource_type,
            "media_type": f.text(p["media_type"], "media_type", 127, MEDIA_TYPE),
            "fhir_version": fhir_version,
            "cid": f.cid(p["cid"], "cid"),
            "size": f.integer(p["size"], "size", 0, MAX_BLOB_SIZE),
            "commitment": f.raw_bytes(p["commitment"], "commitment", 32, 32),
            "epoch": f.integer(p["epoch"], "epoch"),
            "wrapped": f.wrapped_keys(p["wrapped"], "wrapped"),
            "patient": f.optional_address(p, "patient"),
        }

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        return cls(**cls._parse(p, ()))

    def to_payload(self) -> dict[str, Any]:
        payload = {
            "record_id": self.record_id,
            "category": self.category,
            "kind": self.kind,
            "resource_type": self.resource_type,
            "media_type": self.media_type,
            "fhir_version": self.fhir_version,
            "cid": self.cid,
            "size": self.size,
            "commitment": self.commitment,
            "epoch": self.epoch,
            "wrapped": dict(self.wrapped),
        }
        return _with_patient(payload, self.patient)


@dataclass(frozen=True, slots=True)
class RecordAmend(RecordCreate):
    """A new version of an existing record; ``version`` must be latest + 1."""

    version: int = 0

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        values = cls._parse(p, ("version",))
        return cls(**values, version=f.integer(p["version"], "version", 2))

    def to_payload(self) -> dict[str, Any]:
        return {**RecordCreate.to_payload(self), "version": self.version}


@dataclass(frozen=True, slots=True)
class RecordRead:
    record_id: str
    version: int

    @classmethod
    def from_payload(cls, p: Any) -> Self:
        f.check_fields(p, ("record_id", "version"))
        return cls(f.record_id(p["record_id"], "record_id"), f.integer(p["version"], "version", 1))

    def to_payload(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "version": self.version}


PAYLOADS: Final[Mapping[str, type[Any]]] = {
    "hospital.admit": HospitalAdmit,
    "validator.add": ValidatorAdd,
    "validator.remove": ValidatorRemove,
    "patient.register": PatientRegister,
    "provider.register": ProviderRegister,
    "provider.verify": ProviderVerify,
    "key.rotate": KeyRotate,
    "consent.authorise": ConsentChange,
    "consent.withdraw": ConsentChange,
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
