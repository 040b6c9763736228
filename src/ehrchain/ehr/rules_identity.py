"""Identity rules: hospitals, validators, patients, providers, key rotation (C1).

Every new account's address derives from its first signing key (checked when
the payload is parsed), and no signing key ever serves two accounts: the
``signer/{key}`` index remembers every key an account used.
"""

from __future__ import annotations

import base64
import hashlib

from ehrchain.core.address import address_from_public_key
from ehrchain.ehr.errors import AlreadyExists, MalformedPayload, NotAuthorised, NotFound, WrongKey
from ehrchain.ehr.kinds import (
    HospitalAdmit,
    KeyRotate,
    NewAccount,
    PatientRegister,
    ProviderRef,
    ProviderRegister,
    ValidatorAdd,
    ValidatorEvidence,
    ValidatorRemove,
)
from ehrchain.ehr.rules_base import Call, require_role
from ehrchain.ehr.state import (
    VALIDATORS_KEY,
    acct_key,
    epoch_key,
    evidence_key,
    hospital_key,
    licence_key,
    nonce_key,
    patient_key,
    provider_key,
    signer_key,
)
from ehrchain.ehr.values import (
    ROLE_CONSORTIUM_ADMIN,
    ROLE_HOSPITAL_ADMIN,
    ROLE_PATIENT,
    ROLE_PROVIDER,
    ROLE_VALIDATOR,
    Account,
    Hospital,
    Patient,
    Provider,
)


def patient_id_for(tx_id: bytes) -> str:
    """A short, human-friendly patient id derived from the registering transaction's id."""
    digest = hashlib.sha256(tx_id).digest()
    return "P" + base64.b32encode(digest).decode("ascii")[:10]


def _create_account(call: Call, new: NewAccount, role: str, hospital: str) -> None:
    """Write a new active account, its nonce 0 and its signer index entry."""
    if call.state.account(new.address) is not None:
        raise AlreadyExists(f"account {new.address} already exists")
    if call.state.signer(new.signing_key) is not None:
        raise AlreadyExists("signing key is already used by an account")
    account = Account(role, new.signing_key, new.encryption_key, hospital)
    call.out.put(acct_key(new.address), account)
    call.out.put(nonce_key(new.address), 0)
    call.out.put(signer_key(new.signing_key), new.address)


def hospital_admit(call: Call, p: HospitalAdmit) -> None:
    require_role(call, ROLE_CONSORTIUM_ADMIN)
    if call.state.hospital(p.hospital_id) is not None:
        raise AlreadyExists(f"hospital {p.hospital_id} already exists")
    _create_account(call, p.admin, ROLE_HOSPITAL_ADMIN, p.hospital_id)
    call.out.put(hospital_key(p.hospital_id), Hospital(p.name, p.admin.address))
    call.emit(p.admin.address)


def validator_add(call: Call, p: ValidatorAdd) -> None:
    """Add a validator: an existing account with that current key, or a new validator account."""
    require_role(call, ROLE_CONSORTIUM_ADMIN)
    validators = call.state.validators()
    if any(address == p.address for address, _ in validators):
        raise AlreadyExists(f"{p.address} is already a validator")
    account = call.state.account(p.address)
    if account is not None and account.signing_key != p.signing_key:
        raise WrongKey(f"signing_key is not the current key of {p.address}")
    if account is None:
        if address_from_public_key(p.signing_key) != p.address:
            raise MalformedPayload("address", "is not the address of signing_key")
        _create_account(call, NewAccount(p.address, p.signing_key, b""), ROLE_VALIDATOR, "")
    call.out.put(VALIDATORS_KEY, (*validators, (p.address, p.signing_key)))
    call.emit(p.address)


def validator_remove(call: Call, p: ValidatorRemove) -> None:
    require_role(call, ROLE_CONSORTIUM_ADMIN)
    validators = call.state.validators()
    remaining = tuple(v for v in validators if v[0] != p.address)
    if len(remaining) == len(validators):
        raise NotFound(f"{p.address} is not a validator")
    if not remaining:
        raise NotAuthorised("keep_one_validator", "the last validator cannot be removed")
    call.out.put(VALIDATORS_KEY, remaining)
    call.emit(p.address)


def validator_evidence(call: Call, p: ValidatorEvidence) -> None:
    """Record a validator's proven misbehaviour, once per offender and height.

    The consensus engine judges the proof against the current validator set
    (``BlockContext.evidence_check``); the rules only check that it names the
    offender and height the payload states. What to do about the offender
    (``validator.remove``) is the consortium admin's decision.
    """
    if not call.state.is_validator(call.sender):
        raise NotAuthorised("sender_is_validator")
    check = call.ctx.evidence_check
    if check is None:
        raise NotAuthorised("evidence_not_taken", "this chain's engine takes no evidence")
    try:
        offender, height = check(p.proof, dict(call.state.validators()))
    except ValueError as exc:
        raise MalformedPayload("proof", f"proves nothing: {exc}") from None
    if (offender, height) != (p.offender, p.height):
        raise MalformedPayload("proof", "is about another validator or height")
    if call.state.evidence(p.offender, p.height) is not None:
        raise AlreadyExists(f"misbehaviour of {p.offender} at height {p.height} is recorded")
    call.out.put(evidence_key(p.offender, p.height), (call.sender, call.tx.tx_id))
    call.emit(p.offender)


def patient_register(call: Call, p: PatientRegister) -> None:
    require_role(call, ROLE_HOSPITAL_ADMIN)
    address = p.account.address
    _create_account(call, p.account, ROLE_PATIENT, call.account.hospital)
    call.out.put(
        patient_key(address), Patient(patient_id_for(call.tx.tx_id), call.account.hospital)
    )
    call.out.put(epoch_key(address), 0)
    call.emit(address)


def provider_register(call: Call, p: ProviderRegister) -> None:
    require_role(call, ROLE_HOSPITAL_ADMIN)
    if call.state.licence_holder(p.licence) is not None:
        raise AlreadyExists(f"licence {p.licence} is already registered")
    address = p.account.address
    _create_account(call, p.account, ROLE_PROVIDER, call.account.hospital)
    call.out.put(provider_key(address), Provider(p.licence, call.account.hospital))
    call.out.put(licence_key(p.licence), address)
    call.emit(address)


def provider_verify(call: Call, p: ProviderRef) -> None:
    if not call.state.is_validator(call.sender):
        raise NotAuthorised("sender_is_validator")
    provider = call.state.provider(p.provider)
    if provider is None:
        raise NotFound(f"provider {p.provider} is not registered")
    if provider.verified:
        raise AlreadyExists(f"provider {p.provider} is already verified")
    verified = Provider(provider.licence, provider.hospital, True, call.sender)
    call.out.put(provider_key(p.provider), verified)
    call.emit(p.provider)


def key_rotate(call: Call, p: KeyRotate) -> None:
    """New keys for the sender; wraps made from now on use the new encryption key."""
    if call.state.signer(p.signing_key) is not None:
        raise AlreadyExists("signing key is already used by an account")
    account = call.account
    rotated = Account(
        account.role, p.signing_key, p.encryption_key, account.hospital, account.status
    )
    call.out.put(acct_key(call.sender), rotated)
    call.out.put(signer_key(p.signing_key), call.sender)
    validators = call.state.validators()
    if any(address == call.sender for address, _ in validators):
        updated = tuple(
            (address, p.signing_key if address == call.sender else key)
            for address, key in validators
        )
        call.out.put(VALIDATORS_KEY, updated)
    call.emit(call.sender)
