"""Consent kinds (C6): create consent, requests, grants, revocation, delegation, break-glass."""

from __future__ import annotations

from typing import Any

from ehr_world import DAY, HOUR, Actor, Clinic, clinic, wrapped

from ehrchain.ehr.errors import (
    AlreadyExists,
    Expired,
    NotAuthorised,
    NotFound,
    NotVerified,
    UnknownAccount,
)
from ehrchain.ehr.values import Scope

ALL = {"all": True}


def _grant(grantee: Actor, **extra: Any) -> dict[str, Any]:
    return {"grantee": grantee.address, "scope": ALL, "expires_ms": 0, "rewraps": [], **extra}


def _last_event(c: Clinic) -> tuple[str, str, str]:
    event = c.world.state.events[-1]
    return event.subject, event.kind, event.actor


# consent.authorise / consent.withdraw --------------------------------------------------


def test_consent_authorise_and_withdraw() -> None:
    c = clinic()
    w = c.world
    w.send(c.patient, "consent.authorise", {"provider": c.doctor.address})
    consent = w.state.consent(c.patient.address, c.doctor.address)
    assert consent is not None
    assert consent.create
    assert _last_event(c) == (c.patient.address, "consent.authorise", c.patient.address)
    w.reject(c.patient, "consent.authorise", {"provider": c.doctor.address}, AlreadyExists)
    w.send(c.patient, "consent.withdraw", {"provider": c.doctor.address})
    consent = w.state.consent(c.patient.address, c.doctor.address)
    assert consent is not None
    assert not consent.create
    w.reject(c.patient, "consent.withdraw", {"provider": c.doctor.address}, NotFound)
    w.send(c.patient, "consent.authorise", {"provider": c.doctor.address})


def test_consent_denials() -> None:
    c = clinic()
    w = c.world
    w.reject(c.doctor, "consent.authorise", {"provider": c.other.address}, NotAuthorised)
    w.reject(c.patient, "consent.authorise", {"provider": c.hospital.address}, NotFound)
    w.reject(c.patient, "consent.withdraw", {"provider": c.other.address}, NotFound)


# access.request / access.deny ---------------------------------------------------------


def test_request_then_deny() -> None:
    c = clinic()
    w = c.world
    scope = {"categories": ["imaging"]}
    w.send(c.doctor, "access.request", {"patient": c.patient.address, "scope": scope})
    request = w.state.request(c.patient.address, c.doctor.address)
    assert request is not None
    assert (request.status, request.scope) == ("pending", Scope(categories=frozenset({"imaging"})))
    assert _last_event(c) == (c.patient.address, "access.request", c.doctor.address)
    w.send(c.patient, "access.deny", {"provider": c.doctor.address})
    request = w.state.request(c.patient.address, c.doctor.address)
    assert request is not None
    assert request.status == "denied"
    w.reject(c.patient, "access.deny", {"provider": c.doctor.address}, NotFound)


def test_request_denials() -> None:
    c = clinic()
    w = c.world
    unverified = w.provider(c.hospital, "LIC-009", verify=False)
    payload = {"patient": c.patient.address, "scope": ALL}
    w.reject(unverified, "access.request", payload, NotVerified)
    w.reject(c.patient, "access.request", payload, NotAuthorised)
    w.reject(c.doctor, "access.request", {"patient": c.other.address, "scope": ALL}, NotFound)
    w.reject(c.doctor, "access.deny", {"provider": c.doctor.address}, NotFound)


# access.grant ---------------------------------------------------------------------


def test_grant_clears_a_pending_request_and_stores_rewraps() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient, "imaging")
    w.send(c.doctor, "access.request", {"patient": c.patient.address, "scope": ALL})
    key = wrapped()
    w.send(
        c.patient, "access.grant", _grant(c.doctor, rewraps=[[rid, 1, key]], expires_ms=w.now + DAY)
    )
    grant = w.state.grant(c.patient.address, c.doctor.address)
    assert grant is not None
    assert (grant.status, grant.expires_ms, grant.scope) == ("active", w.now + DAY, Scope(all=True))
    assert w.state.rewrap(rid, 1, c.doctor.address) == key
    request = w.state.request(c.patient.address, c.doctor.address)
    assert request is not None
    assert request.status == "granted"
    assert w.state.grantees(c.patient.address) == (c.doctor.address,)
    assert _last_event(c) == (c.patient.address, "access.grant", c.patient.address)


def test_grant_rewraps_must_be_this_patients_versions_within_scope() -> None:
    c = clinic()
    w = c.world
    lab = w.create_record(c.patient, c.patient, "laboratory")
    stranger = w.patient(c.hospital)
    theirs = w.create_record(stranger, stranger, "laboratory")
    imaging = {"categories": ["imaging"]}
    w.reject(c.patient, "access.grant", _grant(c.doctor, rewraps=[[theirs, 1, b"k"]]), NotFound)
    w.reject(c.patient, "access.grant", _grant(c.doctor, rewraps=[[lab, 2, b"k"]]), NotFound)
    outside = _grant(c.doctor, scope=imaging, rewraps=[[lab, 1, b"k"]])
    err = w.reject(c.patient, "access.grant", outside, NotAuthorised)
    assert isinstance(err, NotAuthorised)
    assert err.rule == "rewrap_within_scope"
    by_record = _grant(c.doctor, scope={"records": [lab]}, rewraps=[[lab, 1, b"k"]])
    w.send(c.patient, "access.grant", by_record)


def test_grant_denials() -> None:
    c = clinic()
    w = c.world
    w.reject(c.patient, "access.grant", _grant(c.patient), NotAuthorised)
    w.reject(c.patient, "access.grant", _grant(c.hospital), NotAuthorised)
    w.reject(c.patient, "access.grant", _grant(Actor.new()), UnknownAccount)
    w.reject(c.patient, "access.grant", _grant(c.doctor, expires_ms=w.now), Expired)
    w.reject(c.doctor, "access.grant", _grant(c.other), NotFound)  # doctor is not a patient
    other_patient = w.patient(c.hospital)
    err = w.reject(
        other_patient, "access.grant", _grant(c.doctor, patient=c.patient.address), NotAuthorised
    )
    assert isinstance(err, NotAuthorised)
    assert err.rule == "patient_or_delegate"


def test_a_caregiver_patient_can_be_granted() -> None:
    c = clinic()
    w = c.world
    carer = w.patient(c.hospital)
    w.send(c.patient, "access.grant", _grant(carer))
    assert w.state.grantees(c.patient.address) == (carer.address,)


# access.revoke -------------------------------------------------------------------


def test_revoke_sets_status_and_raises_the_epoch() -> None:
    c = clinic()
    w = c.world
    w.send(c.patient, "access.grant", _grant(c.doctor))
    w.send(c.patient, "access.revoke", {"grantee": c.doctor.address})
    grant = w.state.grant(c.patient.address, c.doctor.address)
    assert grant is not None
    assert grant.status == "revoked"
    assert w.state.epoch(c.patient.address) == 1
    w.reject(c.patient, "access.revoke", {"grantee": c.doctor.address}, NotFound)
    w.reject(c.patient, "access.revoke", {"grantee": c.other.address}, NotFound)
    w.send(c.patient, "access.grant", _grant(c.doctor))  # re-granting is allowed
    grant = w.state.grant(c.patient.address, c.doctor.address)
    assert grant is not None
    assert grant.status == "active"
    assert w.state.grantees(c.patient.address) == (c.doctor.address,)


# delegates ----------------------------------------------------------------------


def test_delegate_acts_for_the_patient() -> None:
    c = clinic()
    w = c.world
    carer = w.patient(c.hospital)
    rid = w.create_record(c.patient, c.patient)
    w.send(c.patient, "delegate.add", {"caregiver": carer.address, "rewraps": [[rid, 1, b"k"]]})
    assert w.state.rewrap(rid, 1, carer.address) == b"k"
    assert w.state.delegates(c.patient.address) == (carer.address,)
    w.send(c.doctor, "access.request", {"patient": c.patient.address, "scope": ALL})
    w.send(carer, "access.deny", {"provider": c.doctor.address, "patient": c.patient.address})
    w.send(carer, "access.grant", _grant(c.other, patient=c.patient.address))
    assert _last_event(c) == (c.patient.address, "access.grant", carer.address)
    w.send(carer, "access.revoke", {"grantee": c.other.address, "patient": c.patient.address})
    err = w.reject(carer, "access.grant", _grant(carer, patient=c.patient.address), NotAuthorised)
    assert isinstance(err, NotAuthorised)
    assert err.rule == "grantee_is_not_the_sender"
    w.send(c.patient, "delegate.remove", {"caregiver": carer.address})
    assert w.state.epoch(c.patient.address) == 2
    w.reject(carer, "access.grant", _grant(c.other, patient=c.patient.address), NotAuthorised)
    w.reject(c.patient, "delegate.remove", {"caregiver": carer.address}, NotFound)


def test_delegate_denials() -> None:
    c = clinic()
    w = c.world
    carer = w.patient(c.hospital)
    w.reject(c.doctor, "delegate.add", {"caregiver": carer.address, "rewraps": []}, NotAuthorised)
    w.reject(
        c.patient, "delegate.add", {"caregiver": c.patient.address, "rewraps": []}, NotAuthorised
    )
    w.reject(
        c.patient, "delegate.add", {"caregiver": c.hospital.address, "rewraps": []}, NotAuthorised
    )
    w.send(c.patient, "delegate.add", {"caregiver": carer.address, "rewraps": []})
    w.reject(c.patient, "delegate.add", {"caregiver": carer.address, "rewraps": []}, AlreadyExists)
    w.reject(carer, "delegate.remove", {"caregiver": carer.address}, NotFound)


# break-glass and custodian re-wrap --------------------------------------------------


def test_break_glass_creates_a_24h_emergency_grant_and_is_audited() -> None:
    c = clinic()
    w = c.world
    payload = {"patient": c.patient.address, "reason_code": "unconscious", "reason": b"ct"}
    w.send(c.other, "access.break_glass", payload)
    emergency = w.state.emergency(c.patient.address, c.other.address)
    assert emergency is not None
    assert (emergency.reason_code, emergency.reason, emergency.expires_ms) == (
        "unconscious",
        b"ct",
        w.now + 24 * HOUR,
    )
    assert _last_event(c) == (c.patient.address, "break_glass", c.other.address)


def test_break_glass_denials() -> None:
    c = clinic()
    w = c.world
    payload = {"patient": c.patient.address, "reason_code": "other", "reason": b"ct"}
    unverified = w.provider(c.hospital, "LIC-010", verify=False)
    w.reject(unverified, "access.break_glass", payload, NotVerified)
    w.reject(c.hospital, "access.break_glass", payload, NotAuthorised)
    w.reject(c.doctor, "access.break_glass", {**payload, "patient": c.doctor.address}, NotFound)


def test_custodian_rewraps_only_for_an_active_emergency() -> None:
    c = clinic()
    w = c.world
    rid = w.create_record(c.patient, c.patient)
    rewrap = {"patient": c.patient.address, "grantee": c.other.address, "rewraps": [[rid, 1, b"k"]]}
    err = w.reject(c.hospital, "keys.rewrap", rewrap, NotAuthorised)
    assert isinstance(err, NotAuthorised)
    assert err.rule == "grantee_has_emergency_grant"
    reason = {"patient": c.patient.address, "reason_code": "life-threatening", "reason": b"ct"}
    w.send(c.other, "access.break_glass", reason)
    err = w.reject(c.doctor, "keys.rewrap", rewrap, NotAuthorised)
    assert isinstance(err, NotAuthorised)
    assert err.rule == "sender_is_custodian"
    w.send(c.hospital, "keys.rewrap", rewrap)
    assert w.state.rewrap(rid, 1, c.other.address) == b"k"
    assert _last_event(c) == (c.patient.address, "keys.rewrap", c.hospital.address)
    w.now += 24 * HOUR
    w.reject(c.hospital, "keys.rewrap", rewrap, NotAuthorised)


def test_custodian_of_another_hospital_cannot_rewrap() -> None:
    c = clinic()
    w = c.world
    elsewhere = w.hospital()
    rid = w.create_record(c.patient, c.patient)
    reason = {"patient": c.patient.address, "reason_code": "other", "reason": b"ct"}
    w.send(c.other, "access.break_glass", reason)
    rewrap = {"patient": c.patient.address, "grantee": c.other.address, "rewraps": [[rid, 1, b"k"]]}
    w.reject(elsewhere, "keys.rewrap", rewrap, NotAuthorised)
