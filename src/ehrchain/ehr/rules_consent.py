"""Consent rules: create consent, requests, grants, revocation, delegation, break-glass (C6).

Every transaction here emits an event whose subject is the patient, so the
patient's access history is one query. A revocation (access.revoke,
delegate.remove) raises the patient's key epoch: writers must name the new
epoch, and the revoked party is no longer among the readers a new version
must be wrapped for.
"""

from __future__ import annotations

from ehrchain.ehr import policy
from ehrchain.ehr.errors import AlreadyExists, Expired, NotAuthorised, NotFound
from ehrchain.ehr.kinds import (
    AccessDeny,
    AccessGrant,
    AccessRequest,
    AccessRevoke,
    BreakGlass,
    DelegateAdd,
    DelegateRemove,
    KeysRewrap,
    ProviderRef,
)
from ehrchain.ehr.rules_base import (
    Call,
    acting_for,
    put_rewraps,
    require_account,
    require_patient,
    require_role,
    require_verified_provider,
    with_appended,
)
from ehrchain.ehr.state import (
    consent_key,
    delegate_key,
    delegates_key,
    emergency_key,
    epoch_key,
    grant_key,
    grantees_key,
    request_key,
)
from ehrchain.ehr.values import (
    ACTIVE,
    DENIED,
    EMERGENCY_DURATION_MS,
    GRANTED,
    PENDING,
    REMOVED,
    REVOKED,
    ROLE_PATIENT,
    ROLE_PROVIDER,
    Consent,
    Delegate,
    Emergency,
    Grant,
    Request,
)


def consent_authorise(call: Call, p: ProviderRef) -> None:
    require_role(call, ROLE_PATIENT)
    if call.state.provider(p.provider) is None:
        raise NotFound(f"provider {p.provider} is not registered")
    consent = call.state.consent(call.sender, p.provider)
    if consent is not None and consent.create:
        raise AlreadyExists(f"provider {p.provider} already has create consent")
    call.out.put(consent_key(call.sender, p.provider), Consent(True))
    call.emit(call.sender)


def consent_withdraw(call: Call, p: ProviderRef) -> None:
    require_role(call, ROLE_PATIENT)
    consent = call.state.consent(call.sender, p.provider)
    if consent is None or not consent.create:
        raise NotFound(f"provider {p.provider} has no create consent")
    call.out.put(consent_key(call.sender, p.provider), Consent(False))
    call.emit(call.sender)


def access_request(call: Call, p: AccessRequest) -> None:
    require_verified_provider(call)
    require_patient(call.state, p.patient)
    call.out.put(request_key(p.patient, call.sender), Request(p.scope, PENDING))
    call.emit(p.patient)


def access_deny(call: Call, p: AccessDeny) -> None:
    patient = acting_for(call, p.patient)
    request = call.state.request(patient, p.provider)
    if request is None or request.status != PENDING:
        raise NotFound(f"no pending access request from {p.provider}")
    call.out.put(request_key(patient, p.provider), Request(request.scope, DENIED))
    call.emit(patient)


def _check_grantee(call: Call, patient: str, grantee: str) -> None:
    """Providers and caregivers (who are patients themselves) can be granted; not oneself."""
    if grantee == patient:
        raise NotAuthorised("grantee_is_not_the_patient")
    if require_account(call.state, grantee).role not in (ROLE_PROVIDER, ROLE_PATIENT):
        raise NotAuthorised("grantee_is_provider_or_patient")


def access_grant(call: Call, p: AccessGrant) -> None:
    """Grant (or replace a grant) with a scope and expiry; re-wrap covered versions."""
    patient = acting_for(call, p.patient)
    _check_grantee(call, patient, p.grantee)
    if p.grantee == call.sender:
        # a delegate's self-grant would outlive the delegation
        raise NotAuthorised("grantee_is_not_the_sender")
    if p.expires_ms != 0 and p.expires_ms <= call.ctx.timestamp_ms:
        raise Expired(f"expires_ms {p.expires_ms} is not after the block time")
    put_rewraps(
        call, patient, p.grantee, p.rewraps, lambda rid, rec: p.scope.covers(rid, rec.category)
    )
    call.out.put(grant_key(patient, p.grantee), Grant(p.scope, p.expires_ms, ACTIVE))
    grantees = with_appended(call.state.grantees(patient), p.grantee)
    if grantees is not None:
        call.out.put(grantees_key(patient), grantees)
    request = call.state.request(patient, p.grantee)
    if request is not None and request.status == PENDING:
        call.out.put(request_key(patient, p.grantee), Request(request.scope, GRANTED))
    call.emit(patient)


def access_revoke(call: Call, p: AccessRevoke) -> None:
    patient = acting_for(call, p.patient)
    grant = call.state.grant(patient, p.grantee)
    if grant is None or grant.status != ACTIVE:
        raise NotFound(f"{p.grantee} holds no active grant")
    call.out.put(grant_key(patient, p.grantee), Grant(grant.scope, grant.expires_ms, REVOKED))
    call.out.put(epoch_key(patient), call.state.epoch(patient) + 1)
    call.emit(patient)


def delegate_add(call: Call, p: DelegateAdd) -> None:
    require_role(call, ROLE_PATIENT)
    _check_grantee(call, call.sender, p.caregiver)
    delegate = call.state.delegate(call.sender, p.caregiver)
    if delegate is not None and delegate.status == ACTIVE:
        raise AlreadyExists(f"{p.caregiver} is already a delegate")
    put_rewraps(call, call.sender, p.caregiver, p.rewraps)
    call.out.put(delegate_key(call.sender, p.caregiver), Delegate(ACTIVE))
    delegates = with_appended(call.state.delegates(call.sender), p.caregiver)
    if delegates is not None:
        call.out.put(delegates_key(call.sender), delegates)
    call.emit(call.sender)


def delegate_remove(call: Call, p: DelegateRemove) -> None:
    require_role(call, ROLE_PATIENT)
    delegate = call.state.delegate(call.sender, p.caregiver)
    if delegate is None or delegate.status != ACTIVE:
        raise NotFound(f"{p.caregiver} is not an active delegate")
    call.out.put(delegate_key(call.sender, p.caregiver), Delegate(REMOVED))
    call.out.put(epoch_key(call.sender), call.state.epoch(call.sender) + 1)
    call.emit(call.sender)


def break_glass(call: Call, p: BreakGlass) -> None:
    """Emergency access for 24 hours from the block time; always an audited event."""
    require_verified_provider(call)
    require_patient(call.state, p.patient)
    expires = call.ctx.timestamp_ms + EMERGENCY_DURATION_MS
    call.out.put(emergency_key(p.patient, call.sender), Emergency(p.reason_code, p.reason, expires))
    call.emit(p.patient, "break_glass")


def keys_rewrap(call: Call, p: KeysRewrap) -> None:
    """The custodian re-wraps data keys for a provider holding an active emergency grant."""
    require_patient(call.state, p.patient)
    if policy.custodian_of(call.state, p.patient) != call.sender:
        raise NotAuthorised("sender_is_custodian")
    emergency = call.state.emergency(p.patient, p.grantee)
    if emergency is None or not emergency.active_at(call.ctx.timestamp_ms):
        raise NotAuthorised("grantee_has_emergency_grant")
    put_rewraps(call, p.patient, p.grantee, p.rewraps)
    call.emit(p.patient)
