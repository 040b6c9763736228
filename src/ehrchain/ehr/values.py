"""The values stored under each state key, as frozen dataclasses.

Each class maps one key prefix of docs/architecture.md "EHR state" to a
canonical-encoded map: ``to_value`` gives the map that is encoded, ``from_value``
rebuilds the object from a decoded map. ``from_value`` trusts its input: state
values are only ever produced by ``to_value`` and committed under the state
root; untrusted input is parsed in ``ehr.kinds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ehrchain.core.types import Address

ROLE_CONSORTIUM_ADMIN: Final = "consortium_admin"
ROLE_HOSPITAL_ADMIN: Final = "hospital_admin"
ROLE_VALIDATOR: Final = "validator"
ROLE_PATIENT: Final = "patient"
ROLE_PROVIDER: Final = "provider"
ROLES: Final = (
    ROLE_CONSORTIUM_ADMIN,
    ROLE_HOSPITAL_ADMIN,
    ROLE_VALIDATOR,
    ROLE_PATIENT,
    ROLE_PROVIDER,
)

ACTIVE: Final = "active"
REVOKED: Final = "revoked"
REMOVED: Final = "removed"
PENDING: Final = "pending"
DENIED: Final = "denied"
GRANTED: Final = "granted"

CATEGORIES: Final = (
    "general",
    "laboratory",
    "imaging",
    "medication",
    "allergy",
    "condition",
    "procedure",
    "vital-signs",
    "mental-health",
    "document",
)
RECORD_KINDS: Final = ("fhir", "document")
REASON_CODES: Final = ("unconscious", "life-threatening", "other")
EMERGENCY_DURATION_MS: Final = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Scope:
    """What a grant covers: everything, some categories, or some records."""

    all: bool = False
    categories: frozenset[str] = frozenset()
    records: frozenset[str] = frozenset()

    def covers(self, record_id: str | None, category: str) -> bool:
        if self.all:
            return True
        if category in self.categories:
            return True
        return record_id is not None and record_id in self.records

    def to_value(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        if self.categories:
            return {"categories": sorted(self.categories)}
        return {"records": sorted(self.records)}

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> Scope:
        return cls(
            all=bool(value.get("all", False)),
            categories=frozenset(value.get("categories", ())),
            records=frozenset(value.get("records", ())),
        )


@dataclass(frozen=True, slots=True)
class Account:
    """``acct/{address}``: role, current keys, home hospital ("" if none), status."""

    role: str
    signing_key: bytes
    encryption_key: bytes
    hospital: str
    status: str = ACTIVE

    def to_value(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "signing_key": self.signing_key,
            "encryption_key": self.encryption_key,
            "hospital": self.hospital,
            "status": self.status,
        }

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Account:
        return cls(v["role"], v["signing_key"], v["encryption_key"], v["hospital"], v["status"])


@dataclass(frozen=True, slots=True)
class Hospital:
    """``hospital/{hospital_id}``: its name and its admin (the custodian of its patients)."""

    name: str
    admin: Address

    def to_value(self) -> dict[str, Any]:
        return {"name": self.name, "admin": self.admin}

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Hospital:
        return cls(v["name"], Address(v["admin"]))


@dataclass(frozen=True, slots=True)
class Patient:
    """``patient/{address}``: the generated patient id and the registering hospital."""

    patient_id: str
    hospital: str

    def to_value(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "hospital": self.hospital}

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Patient:
        return cls(v["patient_id"], v["hospital"])


@dataclass(frozen=True, slots=True)
class Provider:
    """``provider/{address}``: licence, hospital, and who verified it ("" until verified)."""

    licence: str
    hospital: str
    verified: bool = False
    verified_by: str = ""

    def to_value(self) -> dict[str, Any]:
        return {
            "licence": self.licence,
            "hospital": self.hospital,
            "verified": self.verified,
            "verified_by": self.verified_by,
        }

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Provider:
        return cls(v["licence"], v["hospital"], v["verified"], v["verified_by"])


@dataclass(frozen=True, slots=True)
class Record:
    """``record/{record_id}``: fields fixed at creation plus the latest version number."""

    patient: Address
    author: Address
    category: str
    kind: str
    resource_type: str
    latest: int

    def to_value(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "author": self.author,
            "category": self.category,
            "kind": self.kind,
            "resource_type": self.resource_type,
            "latest": self.latest,
        }

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Record:
        return cls(
            Address(v["patient"]),
            Address(v["author"]),
            v["category"],
            v["kind"],
            v["resource_type"],
            v["latest"],
        )


@dataclass(frozen=True, slots=True)
class Version:
    """``version/{record_id}/{n}``: the blob, its commitment and the per-reader wrapped keys."""

    cid: str
    commitment: bytes
    size: int
    media_type: str
    fhir_version: str
    author: Address
    epoch: int
    wrapped: Mapping[Address, bytes]

    def to_value(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "commitment": self.commitment,
            "size": self.size,
            "media_type": self.media_type,
            "fhir_version": self.fhir_version,
            "author": self.author,
            "epoch": self.epoch,
            "wrapped": dict(self.wrapped),
        }

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Version:
        return cls(
            v["cid"],
            v["commitment"],
            v["size"],
            v["media_type"],
            v["fhir_version"],
            Address(v["author"]),
            v["epoch"],
            v["wrapped"],
        )


@dataclass(frozen=True, slots=True)
class Consent:
    """``consent/{patient}/{provider}``: may the provider create records (False once withdrawn)."""

    create: bool

    def to_value(self) -> dict[str, Any]:
        return {"create": self.create}

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Consent:
        return cls(v["create"])


@dataclass(frozen=True, slots=True)
class Request:
    """``request/{patient}/{provider}``: status pending, denied or granted."""

    scope: Scope
    status: str

    def to_value(self) -> dict[str, Any]:
        return {"scope": self.scope.to_value(), "status": self.status}

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Request:
        return cls(Scope.from_value(v["scope"]), v["status"])


@dataclass(frozen=True, slots=True)
class Grant:
    """``grant/{patient}/{grantee}``; ``expires_ms == 0`` never expires."""

    scope: Scope
    expires_ms: int
    status: str

    def active_at(self, now_ms: int) -> bool:
        return self.status == ACTIVE and (self.expires_ms == 0 or now_ms < self.expires_ms)

    def to_value(self) -> dict[str, Any]:
        return {
            "scope": self.scope.to_value(),
            "expires_ms": self.expires_ms,
            "status": self.status,
        }

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Grant:
        return cls(Scope.from_value(v["scope"]), v["expires_ms"], v["status"])


@dataclass(frozen=True, slots=True)
class Delegate:
    """``delegate/{patient}/{caregiver}``: status active or removed."""

    status: str

    def to_value(self) -> dict[str, Any]:
        return {"status": self.status}

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Delegate:
        return cls(v["status"])


@dataclass(frozen=True, slots=True)
class Emergency:
    """``emergency/{patient}/{provider}``: break-glass access; ``reason`` is ciphertext."""

    reason_code: str
    reason: bytes
    expires_ms: int

    def active_at(self, now_ms: int) -> bool:
        return now_ms < self.expires_ms

    def to_value(self) -> dict[str, Any]:
        return {
            "reason_code": self.reason_code,
            "reason": self.reason,
            "expires_ms": self.expires_ms,
        }

    @classmethod
    def from_value(cls, v: Mapping[str, Any]) -> Emergency:
        return cls(v["reason_code"], v["reason"], v["expires_ms"])
