"""The high-level SDK: one identity acting through a node, end to end.

An ``Actor`` builds, encrypts and signs every transaction in this process
(private keys never leave it) and talks to the node only over HTTP. It keeps a
local nonce counter, seeded from the node's pending-aware next nonce and
forgotten after any failed submit, so a rejected transaction never leaves a gap.
Methods that write wait for the block that commits them unless ``wait=False``.
An Actor is not thread-safe; use one per thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Final

from ehrchain.client.emergency import seal_reason
from ehrchain.client.errors import ApiError, ClientError, MissingData, NotFound, TransportError
from ehrchain.client.http import EhrClient, Submitted
from ehrchain.client.identity import PublicIdentity, public_identity
from ehrchain.client.wrapped import WrappedKeys
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.keystore import Identity
from ehrchain.crypto.signing import SigningKey
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE
from ehrchain.ehr.kinds import MAX_REWRAPS, record_id_for
from ehrchain.ehr.records import (
    open_version,
    prepare_document,
    prepare_fhir,
    rewrap,
    seal_version,
)
from ehrchain.ehr.values import Scope

__all__ = ["DEFAULT_WAIT_S", "FHIR_RELEASES", "Actor"]

DEFAULT_WAIT_S: Final = 30.0
FHIR_RELEASES: Final = {"R4": "4.0.1", "R4B": "4.3.0", "R5": "5.0.0"}
"""FHIR release name (what validation takes) -> version number (what the chain records)."""
_RELEASE_OF: Final = {v: k for k, v in FHIR_RELEASES.items()}
ALL: Final = Scope(all=True)

Card = Identity | PublicIdentity
Rewraps = list[list[Any]]


def _card(who: Card) -> PublicIdentity:
    return who if isinstance(who, PublicIdentity) else public_identity(who)


class Actor:
    """An identity plus a client: the patient story as method calls."""

    def __init__(
        self, identity: Identity, client: EhrClient, *, wait_s: float = DEFAULT_WAIT_S
    ) -> None:
        self.identity = identity
        self.client = client
        self.wait_s = wait_s
        self._nonce: int | None = None

    @property
    def address(self) -> str:
        return self.identity.address

    @property
    def chain_id(self) -> str:
        return self.client.chain_id

    # -- signing and sending -------------------------------------------------

    def _take_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.client.next_nonce(self.address)
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def forget_nonce(self) -> None:
        """Re-read the next nonce from the node before the next transaction."""
        self._nonce = None

    def build(
        self, kind: str, payload: dict[str, Any], nonce: int | None = None
    ) -> txmod.Transaction:
        """Sign a transaction with the next nonce (or the one reserved by the caller)."""
        try:
            n = self._take_nonce() if nonce is None else nonce
            return txmod.build(
                kind, self.chain_id, Address(self.address), n, payload, self.identity.signing
            )
        except Exception:
            self.forget_nonce()
            raise

    def submit(self, tx: txmod.Transaction, *, wait: bool = True) -> Submitted:
        """Send a signed transaction; with ``wait``, return once a block commits it."""
        try:
            submitted = self.client.submit(tx, wait_s=self.wait_s if wait else 0.0)
        except (ApiError, TransportError):
            self.forget_nonce()
            raise
        if not wait or submitted.committed:
            return submitted
        found = self.client.wait_for_tx(submitted.tx_id, self.wait_s)
        return dataclasses.replace(
            submitted, committed=True, height=found["height"], index=found["index"]
        )

    def send(self, kind: str, payload: dict[str, Any], *, wait: bool = True) -> Submitted:
        return self.submit(self.build(kind, payload), wait=wait)

    # -- identity (C1) ---------------------------------------------------------

    def admit_hospital(self, hospital_id: str, name: str, admin: Card) -> Submitted:
        payload = {"hospital_id": hospital_id, "name": name, "admin": _card(admin).to_payload()}
        return self.send("hospital.admit", payload)

    def add_validator(self, validator: Card) -> Submitted:
        card = _card(validator)
        return self.send(
            "validator.add", {"address": card.address, "signing_key": card.signing_key}
        )

    def remove_validator(self, address: str) -> Submitted:
        return self.send("validator.remove", {"address": address})

    def register_patient(self, patient: Card) -> str:
        """Register a patient of this admin's hospital; returns the patient's address."""
        card = _card(patient)
        self.send("patient.register", card.to_payload())
        return card.address

    def register_provider(self, provider: Card, licence: str) -> str:
        card = _card(provider)
        self.send("provider.register", {**card.to_payload(), "licence": licence})
        return card.address

    def verify_provider(self, provider: str) -> Submitted:
        return self.send("provider.verify", {"provider": provider})

    def rotate_keys(
        self, signing: SigningKey | None = None, encryption: EncryptionKey | None = None
    ) -> Identity:
        """Replace this account's keys; old encryption keys stay for old versions."""
        new_signing = signing or SigningKey.generate()
        new_encryption = encryption or EncryptionKey.generate()
        payload = {
            "signing_key": new_signing.public_key,
            "encryption_key": new_encryption.public_key,
        }
        self.send("key.rotate", payload)
        self.identity = self.identity.rotated(new_signing, new_encryption)
        return self.identity

    # -- consent (C6) ----------------------------------------------------------

    def authorise(self, provider: str) -> Submitted:
        return self.send("consent.authorise", {"provider": provider})

    def withdraw_consent(self, provider: str) -> Submitted:
        return self.send("consent.withdraw", {"provider": provider})

    def request_access(self, patient: str, scope: Scope = ALL) -> Submitted:
        return self.send("access.request", {"patient": patient, "scope": scope.to_value()})

    def deny(self, provider: str, *, patient: str | None = None) -> Submitted:
        return self.send("access.deny", self._for({"provider": provider}, patient))

    def grant(
        self,
        grantee: str,
        scope: Scope = ALL,
        expires_ms: int = 0,
        *,
        patient: str | None = None,
    ) -> list[Submitted]:
        """Grant access and re-wrap every in-scope version's key for the grantee.

        More versions than fit one transaction are sent as repeated grants of
        the same scope, each carrying the next batch of re-wrapped keys.
        """
        owner = patient or self.address
        rewraps = self._rewraps_for(owner, grantee, scope.covers)
        sent: list[Submitted] = []
        for chunk in _chunks(rewraps) or [[]]:
            payload = {
                "grantee": grantee,
                "scope": scope.to_value(),
                "expires_ms": expires_ms,
                "rewraps": chunk,
            }
            sent.append(self.send("access.grant", self._for(payload, patient)))
        return sent

    def revoke(self, grantee: str, *, patient: str | None = None) -> Submitted:
        """Revoke a grant; the patient's key epoch moves on, so new versions exclude them."""
        return self.send("access.revoke", self._for({"grantee": grantee}, patient))

    def delegate(self, caregiver: str) -> Submitted:
        rewraps = self._rewraps_for(self.address, caregiver, ALL.covers)
        if len(rewraps) > MAX_REWRAPS:
            raise ClientError(f"a delegation can carry at most {MAX_REWRAPS} re-wrapped keys")
        return self.send("delegate.add", {"caregiver": caregiver, "rewraps": rewraps})

    def undelegate(self, caregiver: str) -> Submitted:
        return self.send("delegate.remove", {"caregiver": caregiver})

    def break_glass(self, patient: str, reason_code: str, reason_text: str) -> Submitted:
        """Emergency access; the reason text is readable by the patient alone."""
        reason = seal_reason(
            self.chain_id, patient, self._encryption_key(patient), self.address, reason_text
        )
        payload = {"patient": patient, "reason_code": reason_code, "reason": reason}
        return self.send("access.break_glass", payload)

    def emergency_rewrap(self, patient: str, provider: str) -> list[Submitted]:
        """As custodian, re-wrap all of a patient's versions for an emergency provider."""
        rewraps = self._rewraps_for(patient, provider, ALL.covers)
        return [
            self.send("keys.rewrap", {"patient": patient, "grantee": provider, "rewraps": chunk})
            for chunk in _chunks(rewraps)
        ]

    def _for(self, payload: dict[str, Any], patient: str | None) -> dict[str, Any]:
        """Name the patient when a delegate acts for one."""
        if patient is not None and patient != self.address:
            payload["patient"] = patient
        return payload

    def _encryption_key(self, address: str) -> bytes:
        account = self.client.account(address)
        if account is None:
            raise NotFound(404, "unknown_account", f"no account {address}")
        return bytes.fromhex(account["encryption_key"])

    def _rewraps_for(
        self, patient: str, grantee: str, covers: Callable[[str | None, str], bool]
    ) -> Rewraps:
        """[record_id, version, wrapped] for every covered version the grantee cannot open yet."""
        grantee_key = self._encryption_key(grantee)
        keys = WrappedKeys(self.client, patient, self.address)
        out: Rewraps = []
        for rec in self.records(patient):
            record_id = str(rec["record_id"])
            if not covers(record_id, str(rec["category"])):
                continue
            for number in range(1, int(rec["latest"]) + 1):
                meta = self.client.version(record_id, number)
                if meta is None:
                    raise MissingData(f"{record_id} version {number} is missing")
                if grantee in meta.get("readers", ()):
                    continue
                wrapped = rewrap(
                    chain_id=self.chain_id,
                    record_id=record_id,
                    version=number,
                    wrapped_key=keys.of(meta, record_id, number),
                    holder_address=self.address,
                    holder_keys=self.identity.all_encryption_keys(),
                    grantee_address=grantee,
                    grantee_public_key=grantee_key,
                )
                out.append([record_id, number, wrapped])
        return out

    # -- records (C5) ----------------------------------------------------------

    def put_fhir(
        self, patient: str, json_bytes: bytes, fhir_version: str = "R4", *, wait: bool = True
    ) -> tuple[str, int]:
        """Validate FHIR locally, encrypt for the exact readers, upload, create the record."""
        content, info = prepare_fhir(json_bytes, fhir_version)
        return self._create(
            patient,
            content,
            kind="fhir",
            media_type=FHIR_MEDIA_TYPE,
            fhir_version=FHIR_RELEASES.get(info.fhir_version, info.fhir_version),
            resource_type=info.resource_type,
            category=info.category,
            wait=wait,
        )

    def put_document(
        self, patient: str, data: bytes, media_type: str, *, wait: bool = True
    ) -> tuple[str, int]:
        content = prepare_document(data, media_type)
        return self._create(
            patient,
            content,
            kind="document",
            media_type=media_type,
            fhir_version="",
            resource_type="",
            category="document",
            wait=wait,
        )

    def _create(self, patient: str, content: bytes, *, wait: bool, **meta: str) -> tuple[str, int]:
        nonce = self._take_nonce()
        try:
            record_id = record_id_for(self.chain_id, self.address, nonce)
            payload = self._sealed_payload(patient, record_id, 1, content, meta)
            if patient != self.address:
                payload["patient"] = patient
            tx = self.build("record.create", payload, nonce)
        except Exception:
            self.forget_nonce()
            raise
        self.submit(tx, wait=wait)
        return record_id, 1

    def amend(
        self,
        record_id: str,
        data: bytes,
        *,
        fhir_version: str | None = None,
        media_type: str | None = None,
        wait: bool = True,
    ) -> int:
        """Write the next version of a record (same category, kind and resource type)."""
        rec = self._record(record_id)
        number = int(rec["latest"]) + 1
        previous = self.client.version(record_id, number - 1) or {}
        meta = {k: str(rec[k]) for k in ("kind", "resource_type", "category")}
        if rec["kind"] == "fhir":
            release = fhir_version or _RELEASE_OF.get(str(previous.get("fhir_version")), "R4")
            content, info = prepare_fhir(data, release)
            meta.update(
                media_type=FHIR_MEDIA_TYPE,
                fhir_version=FHIR_RELEASES.get(info.fhir_version, info.fhir_version),
            )
        else:
            media = media_type or str(previous.get("media_type", ""))
            content = prepare_document(data, media)
            meta.update(media_type=media, fhir_version="")
        payload = self._sealed_payload(str(rec["patient"]), record_id, number, content, meta)
        self.send("record.amend", payload, wait=wait)
        return number

    def _sealed_payload(
        self, patient: str, record_id: str, version: int, content: bytes, meta: dict[str, str]
    ) -> dict[str, Any]:
        """Seal for the node's exact reader set, upload the blob, return the payload."""
        readers = self.client.readers(
            patient, category=meta["category"], author=self.address, record_id=record_id
        )
        sealed = seal_version(
            chain_id=self.chain_id,
            record_id=record_id,
            version=version,
            content=content,
            kind=meta["kind"],
            media_type=meta["media_type"],
            fhir_version=meta["fhir_version"],
            resource_type=meta["resource_type"],
            category=meta["category"],
            readers=readers.keys,
        )
        cid = self.client.put_blob(sealed.blob)
        if cid != sealed.cid:
            raise MissingData("the node stored the blob under another content id")
        return sealed.payload(readers.epoch)

    def get(self, record_id: str, version: int | None = None) -> bytes:
        """Sign a read (the audit event), fetch, then check and decrypt locally."""
        number = version if version is not None else int(self._record(record_id)["latest"])
        tx = self.build("record.read", {"record_id": record_id, "version": number})
        try:
            result = self.client.read(tx)
        except (ApiError, TransportError):
            self.forget_nonce()
            raise
        if (result.record_id, result.version) != (record_id, number):
            raise MissingData("the node answered for another record version")
        return open_version(
            chain_id=self.chain_id,
            record_id=record_id,
            version=number,
            blob=result.blob,
            cid=result.cid,
            commitment=result.commitment,
            wrapped_key=result.wrapped_key,
            reader_address=self.address,
            keys=self.identity.all_encryption_keys(),
        )

    def _record(self, record_id: str) -> dict[str, Any]:
        rec = self.client.record(record_id)
        if rec is None:
            raise NotFound(404, "not_found", f"no record {record_id}")
        return rec

    # -- audit (C7) --------------------------------------------------------------

    def history(self, patient: str | None = None) -> list[dict[str, Any]]:
        """Every event on a patient's file, newest first (as the node lists them)."""
        return list(self.client.iter_history(patient or self.address))

    def records(self, patient: str | None = None) -> list[dict[str, Any]]:
        return list(self.client.iter_patient_records(patient or self.address))


def _chunks(items: Sequence[list[Any]]) -> list[Rewraps]:
    return [list(items[i : i + MAX_REWRAPS]) for i in range(0, len(items), MAX_REWRAPS)]
