"""Acting for a signed-in user: the web app holds their opened identity and signs for them.

Every action here builds, signs and submits one transaction through the node
service in process, then waits until a block commits it, so the page that
follows already shows the result. Sealing, opening and re-wrapping record keys
use ``ehr.records``, exactly as the SDK does on a user's own machine. One lock
per address keeps a user's nonces in order when two of their requests race.

Nothing here logs or returns plaintext except ``open_record``, whose result
goes to the user's own session.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto import hpke
from ehrchain.crypto.keystore import Identity
from ehrchain.ehr import records
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE
from ehrchain.ehr.kinds import MAX_REWRAPS, record_id_for
from ehrchain.ehr.values import Scope
from ehrchain.node.errors import NotFoundError, Rejected, Unavailable
from ehrchain.node.service import NodeService
from ehrchain.web.chainindex import ChainIndex
from ehrchain.web.errors import BadForm

REASON_DOMAIN: Final = "ehrchain/break-glass-reason/v1"
FHIR_RELEASES: Final = {"R4": "4.0.1", "R4B": "4.3.0", "R5": "5.0.0"}
"""FHIR release name (what validation takes) -> version number (what the chain records)."""


Service = NodeService
"""The node service the web layer talks to, in process."""


@dataclass(frozen=True, slots=True)
class Content:
    """What a writer gives for one record version, checked by ``ehr.records``."""

    data: bytes
    kind: str
    media_type: str
    fhir_version: str
    resource_type: str
    category: str

    @classmethod
    def fhir(cls, json_bytes: bytes, fhir_version: str, category: str | None = None) -> Content:
        checked, info = records.prepare_fhir(json_bytes, fhir_version)
        return cls(
            checked,
            "fhir",
            FHIR_MEDIA_TYPE,
            FHIR_RELEASES.get(info.fhir_version, info.fhir_version),
            info.resource_type,
            category or info.category,
        )

    @classmethod
    def document(cls, data: bytes, media_type: str, category: str) -> Content:
        return cls(
            records.prepare_document(data, media_type), "document", media_type, "", "", category
        )


@dataclass(frozen=True, slots=True)
class OpenedVersion:
    record: dict[str, Any]
    version: int
    media_type: str
    plaintext: bytes
    read_tx: str


def as_bytes(value: Any) -> bytes:
    """Keys in service views are bytes or hex strings."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return bytes.fromhex(value)
    raise TypeError("expected bytes or hex")


def reason_info(chain_id: str, patient: str, provider: str) -> bytes:
    """HPKE ``info`` of a break-glass reason: bound to the chain, the patient and the provider."""
    return encoding.encode([REASON_DOMAIN, chain_id, patient, provider])


class Custody:
    """Signs and submits for web users; one instance per node."""

    def __init__(self, service: Service, index: ChainIndex, wait_s: float) -> None:
        self.service = service
        self.index = index
        self.chain_id = service.chain_id
        self._wait_s = wait_s
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------

    def _lock(self, address: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(address, threading.Lock())

    def _send(self, who: Identity, kind: str, payload: dict[str, Any], nonce: int) -> bytes:
        tx = txmod.build(kind, self.chain_id, Address(who.address), nonce, payload, who.signing)
        return self.service.submit(tx.to_bytes())

    def submit(self, who: Identity, kind: str, payload: dict[str, Any]) -> str:
        """Sign, submit, wait for the commit; return the tx id (hex)."""
        with self._lock(who.address):
            tx_id = self._send(who, kind, payload, self.service.next_nonce(who.address))
        self._wait(tx_id)
        return tx_id.hex()

    def _wait(self, tx_id: bytes) -> None:
        if self.service.wait_for_tx(tx_id, self._wait_s) is None:
            raise Unavailable("the transaction was accepted but is not in a block yet; reload soon")
        self.index.catch_up()

    def public_key(self, address: str) -> bytes:
        account = self.service.account(address)
        if account is None:
            raise BadForm("address", "no account with that address is registered")
        return as_bytes(account["encryption_key"])

    def wrapped_key(self, record_id: str, version: int, reader: str) -> bytes | None:
        """The reader's wrapped key of a version: a later re-wrap first, else the original."""
        direct = getattr(self.service, "wrapped_key", None)
        if callable(direct):
            found = direct(record_id, version, reader)
            return bytes(found) if found is not None else None
        self.index.catch_up()
        rewrap_tx = self.index.rewrap_tx(record_id, version, reader)
        if rewrap_tx is not None:
            for rid, number, wrapped in self._payload(rewrap_tx).get("rewraps", ()):
                if rid == record_id and number == version:
                    return bytes(wrapped)
        version_tx = self.index.version_tx(record_id, version)
        if version_tx is None:
            return None
        found = self._payload(version_tx).get("wrapped", {}).get(reader)
        return bytes(found) if found is not None else None

    def _payload(self, tx_id: bytes) -> dict[str, Any]:
        found = self.service.tx(tx_id)
        if found is None:
            raise NotFoundError("a record transaction is missing from the chain")
        return dict(found[0].payload)

    # -- records --------------------------------------------------------------

    def create_record(self, who: Identity, patient: str, content: Content) -> str:
        """Seal version 1 for exactly the required readers and create the record."""
        with self._lock(who.address):
            nonce = self.service.next_nonce(who.address)
            record_id = record_id_for(self.chain_id, who.address, nonce)
            payload = self._sealed_payload(who, patient, record_id, 1, content)
            tx_id = self._send(who, "record.create", payload, nonce)
        self._wait(tx_id)
        return record_id

    def amend_record(self, who: Identity, record_id: str, content: Content) -> int:
        record = self.service.record(record_id)
        if record is None:
            raise NotFoundError(f"record {record_id} does not exist")
        if content.kind != record["kind"] or content.category != record["category"]:
            raise BadForm("content", "a new version keeps the record's kind and category")
        with self._lock(who.address):
            number = int(record["latest"]) + 1
            patient = str(record["patient"])
            payload = self._sealed_payload(who, patient, record_id, number, content)
            tx_id = self._send(who, "record.amend", payload, self.service.next_nonce(who.address))
        self._wait(tx_id)
        return number

    def _sealed_payload(
        self, who: Identity, patient: str, record_id: str, number: int, content: Content
    ) -> dict[str, Any]:
        readers = self.service.readers(patient, record_id, content.category, who.address)
        epoch = self.service.epoch(patient)
        sealed = records.seal_version(
            chain_id=self.chain_id,
            record_id=record_id,
            version=number,
            content=content.data,
            kind=content.kind,
            media_type=content.media_type,
            fhir_version=content.fhir_version,
            resource_type=content.resource_type,
            category=content.category,
            readers=readers,
        )
        cid = self.service.put_blob(sealed.blob)
        if cid != sealed.cid:
            raise Rejected("blob_mismatch", "the node stored the blob under another id")
        payload = sealed.payload(epoch)
        if patient != who.address:
            payload["patient"] = patient
        return payload

    def open_record(self, who: Identity, record_id: str, version: int | None) -> OpenedVersion:
        """Sign a ``record.read`` (the audit event), fetch and open the version."""
        record = self.service.record(record_id)
        if record is None:
            raise NotFoundError(f"record {record_id} does not exist")
        number = int(record["latest"]) if version is None else version
        payload = {"record_id": record_id, "version": number}
        with self._lock(who.address):
            nonce = self.service.next_nonce(who.address)
            tx = txmod.build(
                "record.read", self.chain_id, Address(who.address), nonce, payload, who.signing
            )
            result = self.service.read(tx.to_bytes())
        plaintext = records.open_version(
            chain_id=self.chain_id,
            record_id=record_id,
            version=number,
            blob=bytes(result["blob"]),
            cid=str(result["cid"]),
            commitment=as_bytes(result["commitment"]),
            wrapped_key=bytes(result["wrapped_key"]),
            reader_address=who.address,
            keys=who.all_encryption_keys(),
        )
        return OpenedVersion(record, number, str(result["media_type"]), plaintext, tx.tx_id.hex())

    # -- consent --------------------------------------------------------------

    def _rewraps(
        self, holder: Identity, patient: str, reader: str, scope: Scope
    ) -> list[list[Any]]:
        """Re-wrap every existing version the scope covers, as ``holder``, for ``reader``."""
        reader_key = self.public_key(reader)
        out: list[list[Any]] = []
        for record in self.service.patient_records(patient, 0, 100_000):
            rid = str(record["record_id"])
            if not scope.covers(rid, str(record["category"])):
                continue
            for number in range(1, int(record["latest"]) + 1):
                wrapped = self.wrapped_key(rid, number, holder.address)
                if wrapped is None:
                    continue
                out.append(
                    [
                        rid,
                        number,
                        records.rewrap(
                            chain_id=self.chain_id,
                            record_id=rid,
                            version=number,
                            wrapped_key=wrapped,
                            holder_address=holder.address,
                            holder_keys=holder.all_encryption_keys(),
                            grantee_address=reader,
                            grantee_public_key=reader_key,
                        ),
                    ]
                )
        if len(out) > MAX_REWRAPS:
            raise BadForm("scope", f"covers more than {MAX_REWRAPS} versions; grant by category")
        return out

    def grant(
        self, who: Identity, patient: str, grantee: str, scope: Scope, expires_ms: int
    ) -> str:
        payload: dict[str, Any] = {
            "grantee": grantee,
            "scope": scope.to_value(),
            "expires_ms": expires_ms,
            "rewraps": self._rewraps(who, patient, grantee, scope),
        }
        if patient != who.address:
            payload["patient"] = patient
        return self.submit(who, "access.grant", payload)

    def revoke(self, who: Identity, patient: str, grantee: str) -> str:
        payload: dict[str, Any] = {"grantee": grantee}
        if patient != who.address:
            payload["patient"] = patient
        return self.submit(who, "access.revoke", payload)

    def deny(self, who: Identity, patient: str, provider: str) -> str:
        payload: dict[str, Any] = {"provider": provider}
        if patient != who.address:
            payload["patient"] = patient
        return self.submit(who, "access.deny", payload)

    def delegate(self, who: Identity, caregiver: str) -> str:
        rewraps = self._rewraps(who, who.address, caregiver, Scope(all=True))
        return self.submit(who, "delegate.add", {"caregiver": caregiver, "rewraps": rewraps})

    def undelegate(self, who: Identity, caregiver: str) -> str:
        return self.submit(who, "delegate.remove", {"caregiver": caregiver})

    def consent(self, who: Identity, provider: str, allow: bool) -> str:
        kind = "consent.authorise" if allow else "consent.withdraw"
        return self.submit(who, kind, {"provider": provider})

    def request_access(self, who: Identity, patient: str, scope: Scope) -> str:
        return self.submit(who, "access.request", {"patient": patient, "scope": scope.to_value()})

    def break_glass(self, who: Identity, patient: str, reason_code: str, reason: str) -> str:
        """Emergency access; the free-text reason is encrypted to the patient only."""
        sealed_reason = hpke.wrap(
            self.public_key(patient),
            reason.encode("utf-8"),
            reason_info(self.chain_id, patient, who.address),
        )
        payload = {"patient": patient, "reason_code": reason_code, "reason": sealed_reason}
        return self.submit(who, "access.break_glass", payload)

    def open_reason(self, who: Identity, provider: str, sealed: bytes) -> str:
        """The patient reads a break-glass reason that was encrypted to them."""
        info = reason_info(self.chain_id, who.address, provider)
        for key in who.all_encryption_keys():
            try:
                return hpke.unwrap(key, sealed, info).decode("utf-8", errors="replace")
            except Exception:  # noqa: S112 (try the next key)
                continue
        return ""

    def emergency_rewrap(self, custodian: Identity, patient: str, provider: str) -> str:
        rewraps = self._rewraps(custodian, patient, provider, Scope(all=True))
        payload = {"patient": patient, "grantee": provider, "rewraps": rewraps}
        return self.submit(custodian, "keys.rewrap", payload)

    # -- registration and the consortium -------------------------------------

    def register(self, admin: Identity, person: Identity, licence: str = "") -> str:
        payload: dict[str, Any] = {
            "address": person.address,
            "signing_key": person.signing.public_key,
            "encryption_key": person.encryption.public_key,
        }
        if licence:
            payload["licence"] = licence
        kind = "provider.register" if licence else "patient.register"
        return self.submit(admin, kind, payload)

    def admit_hospital(self, admin: Identity, hospital_id: str, name: str, head: Identity) -> str:
        payload = {
            "hospital_id": hospital_id,
            "name": name,
            "admin": {
                "address": head.address,
                "signing_key": head.signing.public_key,
                "encryption_key": head.encryption.public_key,
            },
        }
        return self.submit(admin, "hospital.admit", payload)

    def verify_provider(self, validator: Identity, provider: str) -> str:
        return self.submit(validator, "provider.verify", {"provider": provider})

    def add_validator(self, admin: Identity, address: str, signing_key: bytes) -> str:
        return self.submit(admin, "validator.add", {"address": address, "signing_key": signing_key})

    def remove_validator(self, admin: Identity, address: str) -> str:
        return self.submit(admin, "validator.remove", {"address": address})


def parse_scope(kind: str, categories: Sequence[str], record_ids: Sequence[str]) -> Scope:
    """A scope from the grant form: everything, some categories, or some records."""
    if kind == "all":
        return Scope(all=True)
    if kind == "categories":
        if not categories:
            raise BadForm("categories", "tick at least one category")
        return Scope(categories=frozenset(categories))
    if kind == "records":
        if not record_ids:
            raise BadForm("records", "tick at least one record")
        return Scope(records=frozenset(record_ids))
    raise BadForm("scope", "choose everything, categories or records")
