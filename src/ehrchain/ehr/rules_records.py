"""Record rules: create, amend and read record versions (C5, C7).

A version is wrapped for exactly the readers the reading rules require at the
block time — no reader missing, nobody extra — and names the patient's current
key epoch, so a version written after a revocation never carries a key for the
revoked party. Versions are only ever added; nothing is deleted.
"""

from __future__ import annotations

from ehrchain.core.types import Address
from ehrchain.ehr import policy
from ehrchain.ehr.errors import (
    AlreadyExists,
    BadVersion,
    Immutable,
    MalformedPayload,
    NotAuthorised,
    NotFound,
    StaleEpoch,
    WrongReaders,
)
from ehrchain.ehr.kinds import RecordAmend, RecordCreate, RecordRead, record_id_for
from ehrchain.ehr.rules_base import Call, require_patient, require_verified_provider
from ehrchain.ehr.state import record_key, version_key
from ehrchain.ehr.values import Record, Version


def _authorise_writer(call: Call, patient: Address, record: Record | None) -> None:
    """The patient, the record's author (amend), or a verified provider with create consent."""
    if call.sender == patient:
        return
    if record is not None and record.author == call.sender:
        return
    require_verified_provider(call)
    consent = call.state.consent(patient, call.sender)
    if consent is None or not consent.create:
        raise NotAuthorised("create_consent", f"{call.sender} for patient {patient}")


def _check_keys(call: Call, patient: Address, p: RecordCreate) -> None:
    """Current epoch, and wrapped keys for exactly the required readers."""
    epoch = call.state.epoch(patient)
    if p.epoch != epoch:
        raise StaleEpoch(epoch, p.epoch)
    required = policy.readers_for_new_version(
        call.state, patient, p.record_id, p.category, call.sender, call.ctx.timestamp_ms
    )
    given = frozenset(p.wrapped)
    if given != required:
        raise WrongReaders(required - given, given - required)


def _version(call: Call, p: RecordCreate) -> Version:
    return Version(
        p.cid, p.commitment, p.size, p.media_type, p.fhir_version, call.sender, p.epoch, p.wrapped
    )


def record_create(call: Call, p: RecordCreate) -> None:
    """Version 1 of a new record whose id is record_id_for(chain, sender, nonce)."""
    patient = p.patient if p.patient is not None else call.sender
    require_patient(call.state, patient)
    if p.record_id != record_id_for(call.tx.chain_id, call.sender, call.tx.nonce):
        raise MalformedPayload("record_id", "must be record_id_for(chain_id, sender, nonce)")
    if call.state.record(p.record_id) is not None:
        raise AlreadyExists(f"record {p.record_id} already exists")
    _authorise_writer(call, patient, None)
    _check_keys(call, patient, p)
    record = Record(patient, call.sender, p.category, p.kind, p.resource_type, 1)
    call.out.put(record_key(p.record_id), record)
    call.out.put(version_key(p.record_id, 1), _version(call, p))
    call.emit(patient, record_id=p.record_id, version=1)


def record_amend(call: Call, p: RecordAmend) -> None:
    """Version latest + 1; category, kind and resource type stay as created."""
    record = call.state.record(p.record_id)
    if record is None:
        raise NotFound(f"record {p.record_id} does not exist")
    if p.patient is not None and p.patient != record.patient:
        raise MalformedPayload("patient", "is not the record's patient")
    _authorise_writer(call, record.patient, record)
    if p.version != record.latest + 1:
        raise BadVersion(record.latest + 1, p.version)
    for name in ("category", "kind", "resource_type"):
        if getattr(p, name) != getattr(record, name):
            raise Immutable(name)
    _check_keys(call, record.patient, p)
    amended = Record(
        record.patient, record.author, record.category, record.kind, record.resource_type, p.version
    )
    call.out.put(record_key(p.record_id), amended)
    call.out.put(version_key(p.record_id, p.version), _version(call, p))
    call.emit(record.patient, record_id=p.record_id, version=p.version)


def record_read(call: Call, p: RecordRead) -> None:
    """An authorised read: writes nothing but the nonce, and is the audit event."""
    policy.can_read(call.state, call.sender, p.record_id, p.version, call.ctx.timestamp_ms)
    record = call.state.record(p.record_id)
    if record is None:  # pragma: no cover (can_read found it)
        raise NotFound(f"record {p.record_id} does not exist")
    call.emit(record.patient, "read", p.record_id, p.version)
