"""Record kinds and the reading rules (C5-C7): create, amend, read, revoke, expiry, break-glass."""

from __future__ import annotations

from typing import Any

import pytest
from ehr_world import CHAIN, DAY, HOUR, Actor, Clinic, clinic, wrapped

from ehrchain.ehr import policy
from ehrchain.ehr.errors import (
    BadVersion,
    Immutable,
    MalformedPayload,
    NotAuthorised,
    NotFound,
    NotVerified,
    StaleEpoch,
    WrongReaders,
)
from ehrchain.ehr.kinds import record_id_for

ALL = {"all": True}


def _consented(c: Clinic) -> None:
    c.world.send(c.patient, "consent.authorise", {"provider": c.doctor.address})


def _grant(c: Clinic, grantee: Actor, scope: Any = None, expires_ms: int = 0) -> None:
    payload = {"grantee": grantee.address, "scope": scope or ALL, "expires_ms": expires_ms}
    c.world.send(c.patient, "access.grant", {**payload, "rewraps": []})


def _can_read(c: Clinic, reader: Actor, rid: str, version: int = 1) -> bool:
    try:
        policy.can_read(c.world.state, reader.address, rid, version, c.world.now)
    except NotAuthorised:
        return False
    return True


# record.create -------------------------------------------------------------------


def test_patient_creates_own_record() -> None:
    c = clinic()
    w = c.world
    payload = w.record_payload(c.patient, c.patient, "allergy")
    assert set(payload["wrapped"]) == {c.patient.address, c.hospital.address}
    w.send(c.patient, "record.create", payload)
    rid = payload["record_id"]
    record = w.state.record(rid)
    assert record is not None
    assert (record.patient, record.author, record.category, record.latest) == (
        c.patient.address,
        c.patient.address,
        "allergy",
        1,
    )
    version = w.state.version(rid, 1)
    assert version is not None
    assert (version.cid, version.author, version.epoch) == (payload["cid"], c.patient.address, 0)
    assert dict(version.wrapped) == payload["wrapped"]
    event = w.state.events[-1]
    assert (event.subject, event.kind, event.record_id, event.version) == (
        c.patient.address,
        "record.create",
        rid,
        1,
    )


def test_provider_with_consent_creates_and_is_a_reader() -> None:
    c = clinic()
    w = c.world
    _consented(c)
    payload = w.record_payload(c.doctor, c.patient)
    assert set(payload["wrapped"]) == {c.patient.address, c.hospital.address, c.doctor.address}
    w.send(c.doctor, "record.create", payload)
    assert _can_read(c, c.doctor, payload["record_id"])


def test_create_authorisation_denials() -> None:
    c = clinic()
    w = c.world
    err = w.reject(c.doctor, "record.create", w.record_payload(c.doctor, c.patient), NotAuthorised)
    assert isinstance(err, NotAuthorised)
    assert err.rule == "create_consent"
    unverified = w.provider(c.hospital, "LIC-077", verify=False)
    w.send(c.patient, "consent.authorise", {"provider": unverified.address})
    payload = w.record_payload(unverified, c.patient)
    w.reject(unverified, "record.create", payload, NotVerified)
    other_patient = w.patient(c.hospital)
    payload = w.record_payload(other_patient, c.patient)
    w.reject(other_patient, "record.create", payload, NotAuthorised)
    payload = w.record_payload(c.hospital, c.patient)
    w.reject(c.hospital, "record.create", payload, NotAuthorised)
    _consented(c)
    w.send(c.patient, "consent.withdraw", {"provider": c.doctor.address})
    w.reject(c.doctor, "record.create", w.record_payload(c.doctor, c.patient), NotAuthorised)


def test_create_checks_record_id_epoch_and_patient() -> None:
    c = clinic()
    w = c.world
    wrong_id = record_id_for(CHAIN, c.patient.address, c.patient.nonce + 1)
    payload = w.record_payload(c.patient, c.patient, record_id=wrong_id)
    err = w.reject(c.patient, "record.create", payload, MalformedPayload)
    assert isinstance(err, MalformedPayload)
    assert err.field == "record_id"
    payload = w.record_payload(c.patient, c.patient, epoch=1)
    err = w.reject(c.patient, "record.create", payload, StaleEpoch)
    assert isinstance(err, StaleEpoch)
    assert (err.expected, err.got) == (0, 1)
    payload = w.record_payload(c.doctor, c.patient)
    payload["patient"] = c.other.address
    w.reject(c.doctor, "record.create", payload, NotFound)


def test_create_needs_exactly_the_required_readers() -> None:
    c = clinic()
    w = c.world
    readers = {c.patient.address, c.hospital.address}
    missing = w.record_payload(c.patient, c.patient, readers=[c.patient.address])
    err = w.reject(c.patient, "record.create", missing, WrongReaders)
    assert isinstance(err, WrongReaders)
    assert (err.missing, err.extra) == ((c.hospital.address,), ())
    extra = w.record_payload(c.patient, c.patient, readers=[*readers, c.doctor.address])
    err = w.reject(c.patient, "record.create", extra, WrongReaders)
    assert isinstance(err, WrongReaders)
    assert (err.missing, err.extra) == ((), (c.doctor.address,))


def test_readers_include_delegates_and_covering_grantees_only() -> None:
    c = clinic()
    w = c.world
    carer = w.patient(c.hospital)
    w.send(c.patient, "delegate.add", {"caregiver": carer.address, "rewraps": []})
    _grant(c, c.doctor, {"categories": ["imaging"]})
    _grant(c, c.other, ALL, expires_ms=w.now + HOUR)
    base = {c.patient.address, c.hospital.address, carer.address}
    assert w.readers(c.patient, c.patient, "imaging") == base | {c.doctor.address, c.other.address}
    assert w.readers(c.patient, c.patient, "laboratory") == base | {c.other.address}
    w.now += HOUR
    assert w.readers(c.patient, c.patient, "imaging") == base | {c.doctor.address}
    with pytest.raises(NotFound):
        policy.readers_for_new_version(
            w.state, c.doctor.address, None, "imaging", c.doctor.address, 0
        )


def test_a_record_scoped_grant_covers_that_record_id() -> None:
    c = clinic()
    w = c.world
    rid = record_id_for(CHAIN, c.patient.address, c.patient.nonce + 1)
    _grant(c, c.doctor, {"records": [rid]})
    assert c.doctor.address in w.readers(c.patient, c.patient, "general", rid)
    assert c.doctor.address not in w.readers(c.patient, c.patient, "general", None)
    assert w.create_record(c.patient, c.patient, "general") == rid
    assert _can_read(c, c.doctor, rid)


def test_revoked_grantee_is_not_a_reader_of_later_versions() -> None:
    c = clinic()
    w = c.world
    _grant(c, c.doctor)
    rid = w.create_record(c.patient, c.patient)
    version1 = w.state.version(rid, 1)
    assert version1 is not None
    assert c.doctor.address in version1.wrapped
    w.send(c.patient, "access.revoke", {"grantee": c.doctor.address})
    assert c.doctor.address not in w.readers(c.patient, c.patient, "laboratory")
    stale = w.record_payload(c.patient, c.patient, epoch=0)
    w.reject(c.patient, "record.create", stale, StaleEpoch)
    with_revoked = w.record_payload(
        c.patient, c.patient, readers=[c.patient.address, c.hospital.address, c.doctor.address]
    )
    err = w.reject(c.patient, "record.create", with_revoked, WrongReaders)
    assert isinstance(err, WrongReaders)
    assert err.extra == (c.doctor.address,)
    amend = w.amend_payload(
        c.patient, rid, [c.patient.address, c.hospital.address, c.doctor.address]
    )
    w.reject(c.patient, "record.amend", amend, WrongReaders)
    w.send(c.patient, "record.amend", w.amend_payload(c.patient, rid))
    version2 = w.state.version(rid, 2)
    assert version2 is not None
    assert c.doctor.address not in version2.wrapped
    assert version2.epoch == 1
    assert not _can_read(c, c.doctor, rid, 1)
    assert not _can_read(c, c.doctor, rid, 2)


# record.amend ----------------------------------------------------------------------


def test_amend_by_author_patient_and_consented_provider() -> None:
    c = clinic()
    w = c.world
    _consented(c)
    rid = w.create_record(c.doctor, c.patient)
    w.send(c.patient, "consent.withdraw", {"provider": c.doctor.address})
    w.send(c.doctor, "record.amend", w.amend_payload(c.doctor, rid))  # the author, without consent
    w.send(c.patient, "record.amend", w.amend_payload(c.patient, rid))
    w.send(c.patient, "consent.authorise", {"provider": c.other.address})
    w.send(c.other, "record.amend", w.amend_payload(c.other, rid))
    record = w.state.record(rid)
    assert record is not None
    assert (record.latest, record.author) == (4, c.doctor.address)
    authors = [w.state.version(rid, n) for n in range(1, 5)]
    assert [v.author for v in authors if v] == [
        c.doctor.address,
        c.doctor.address,
        c.patient.address,
        c.other.address,
    ]
    # the author of version 3 (the patient) did not wrap for the doctor: a version's readers
    # are its own author's, not the record creator's
    assert _can_read(c, c.doctor, rid, 2)
    assert not _can_read(c, c.doctor, rid, 3)


def test_amend_denials() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient, "imaging")
    w.reject(c.doctor, "record.amend", w.amend_payload(c.doctor, rid), NotAuthorised)
    payload = w.amend_payload(c.patient, rid)
    w.reject(c.patient, "record.amend", {**payload, "version": 3}, BadVersion)
    w.reject(c.patient, "record.amend", {**payload, "category": "laboratory"}, Immutable)
    document = {**payload, "kind": "document", "fhir_version": "", "resource_type": ""}
    err = w.reject(c.patient, "record.amend", document, Immutable)
    assert isinstance(err, Immutable)
    assert err.field == "kind"
    w.reject(c.patient, "record.amend", {**payload, "resource_type": "Condition"}, Immutable)
    w.reject(c.patient, "record.amend", {**payload, "epoch": 7}, StaleEpoch)
    w.reject(c.patient, "record.amend", {**payload, "patient": c.doctor.address}, MalformedPayload)
    missing = record_id_for(CHAIN, c.patient.address, 999)
    w.reject(c.patient, "record.amend", {**payload, "record_id": missing}, NotFound)
    w.send(c.patient, "record.amend", payload)
    w.reject(c.patient, "record.amend", {**payload, "version": 2}, BadVersion)


def test_a_record_id_cannot_be_reused() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    # the id is bound to (chain, sender, nonce): a later nonce cannot name it again
    payload = w.record_payload(c.patient, c.patient, record_id=rid)
    err = w.reject(c.patient, "record.create", payload, MalformedPayload)
    assert isinstance(err, MalformedPayload)
    assert err.field == "record_id"


# record.read ---------------------------------------------------------------------


def test_who_may_read() -> None:
    c = clinic()
    w = c.world
    _consented(c)
    rid = w.create_record(c.doctor, c.patient)
    carer = w.patient(c.hospital)
    stranger = w.patient(c.hospital)
    w.send(c.patient, "delegate.add", {"caregiver": carer.address, "rewraps": [[rid, 1, b"k"]]})
    for reader in (c.patient, c.hospital, c.doctor, carer):
        w.read(reader, rid)
    for outsider in (c.other, stranger, w.validator, w.admin):
        err = w.reject(outsider, "record.read", {"record_id": rid, "version": 1}, NotAuthorised)
        assert isinstance(err, NotAuthorised)
        assert err.rule == "record_read"
    reads = [e for e in w.state.events if e.kind == "read"]
    assert [(e.subject, e.actor, e.record_id, e.version) for e in reads] == [
        (c.patient.address, r.address, rid, 1) for r in (c.patient, c.hospital, c.doctor, carer)
    ]


def test_read_writes_only_the_nonce() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    before = dict(w.state.writes)
    w.read(c.patient, rid)
    changed = {k for k, v in w.state.writes.items() if before.get(k) != v}
    assert changed == {f"nonce/{c.patient.address}"}


def test_read_of_a_missing_version_is_not_found() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    w.reject(c.patient, "record.read", {"record_id": rid, "version": 2}, NotFound)
    missing = record_id_for(CHAIN, c.patient.address, 999)
    w.reject(c.patient, "record.read", {"record_id": missing, "version": 1}, NotFound)


def test_grant_scope_decides_reads() -> None:
    c = clinic()
    w = c.world
    lab = w.create_record(c.patient, c.patient, "laboratory")
    imaging = w.create_record(c.patient, c.patient, "imaging")
    _grant(c, c.doctor, {"categories": ["imaging"]})
    assert _can_read(c, c.doctor, imaging)
    assert not _can_read(c, c.doctor, lab)
    _grant(c, c.other, {"records": [lab]})
    assert _can_read(c, c.other, lab)
    assert not _can_read(c, c.other, imaging)


def test_expired_grant_cannot_read() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    _grant(c, c.doctor, ALL, expires_ms=w.now + HOUR)
    w.read(c.doctor, rid)
    w.now += HOUR
    w.reject(c.doctor, "record.read", {"record_id": rid, "version": 1}, NotAuthorised)
    assert c.doctor.address not in w.readers(c.patient, c.patient, "laboratory")


def test_break_glass_read_then_expiry() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    w.reject(c.other, "record.read", {"record_id": rid, "version": 1}, NotAuthorised)
    reason = {"patient": c.patient.address, "reason_code": "unconscious", "reason": b"ct"}
    w.send(c.other, "access.break_glass", reason)
    w.read(c.other, rid)
    w.now += DAY - 1
    w.read(c.other, rid)
    w.now += 1
    w.reject(c.other, "record.read", {"record_id": rid, "version": 1}, NotAuthorised)
    # an emergency does not make the provider a required reader of new versions
    assert c.other.address not in w.readers(c.patient, c.patient, "laboratory")


# policy helpers --------------------------------------------------------------------


def test_wrapped_key_for_prefers_a_later_rewrap() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    version = w.state.version(rid, 1)
    assert version is not None
    own = version.wrapped[c.patient.address]
    assert policy.wrapped_key_for(w.state, rid, 1, c.patient.address) == own
    assert policy.wrapped_key_for(w.state, rid, 1, c.doctor.address) is None
    assert policy.wrapped_key_for(w.state, rid, 2, c.patient.address) is None
    key = wrapped()
    _grant(c, c.doctor)
    w.send(c.patient, "access.grant", {
        "grantee": c.doctor.address, "scope": ALL, "expires_ms": 0, "rewraps": [[rid, 1, key]],
    })  # fmt: skip
    assert policy.wrapped_key_for(w.state, rid, 1, c.doctor.address) == key


def test_empty_policy_denies() -> None:
    c = clinic()
    access = policy.Access(c.world.state, c.patient.address, c.patient.address, 0)
    with pytest.raises(NotAuthorised):
        policy.AnyOf("nothing", ()).check(access)
    policy.PATIENT_OR_DELEGATE.check(access)
