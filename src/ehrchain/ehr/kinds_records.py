"""Record payloads: record.create, record.amend, record.read, and the record id derivation.

A record's id is derived from (chain, sender, nonce) so the writer knows it
before submitting and can bind the HPKE ``info`` and the blob AAD to it. A
record's first version is version 1; an amendment names latest + 1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from ehrchain.core import encoding
from ehrchain.core.types import Address
from ehrchain.ehr import fields as f
from ehrchain.ehr.errors import MalformedPayload
from ehrchain.ehr.values import CATEGORIES, RECORD_KINDS

RECORD_ID_DOMAIN: Final = "ehrchain/record-id/v1"
MEDIA_TYPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")
FHIR_VERSION: Final = re.compile(r"([0-9]+\.[0-9]+(\.[0-9]+)?)?")
RESOURCE_TYPE: Final = re.compile(r"[A-Za-z]*")
MAX_BLOB_SIZE: Final = 2**40


def record_id_for(chain_id: str, sender: str, nonce: int) -> str:
    """The id of the record a sender creates with a nonce, known before submitting."""
    digest = hashlib.sha256(encoding.encode([RECORD_ID_DOMAIN, chain_id, sender, nonce]))
    return "r" + digest.digest()[:16].hex()


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
        return f.with_patient(payload, self.patient)


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
