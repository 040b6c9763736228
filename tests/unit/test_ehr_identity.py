"""The execution checklist and the identity kinds (C1): each rule's happy path and denials."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ehr_world import CHAIN, Actor, World, clinic

from ehrchain.consensus.evidence import double_sign
from ehrchain.consensus.messages import sign_prevote
from ehrchain.consensus.wire import encode_evidence
from ehrchain.core.tx import Transaction
from ehrchain.core.types import BlockHash, ChainId
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.crypto.signing import SigningKey
from ehrchain.ehr import rules
from ehrchain.ehr.errors import (
    AlreadyExists,
    BadNonce,
    BadSignature,
    InactiveAccount,
    MalformedPayload,
    NotAuthorised,
    NotFound,
    UnknownAccount,
    UnknownKind,
    WrongChain,
    WrongKey,
)
from ehrchain.ehr.rules import apply_tx
from ehrchain.ehr.rules_identity import patient_id_for
from ehrchain.ehr.state import State, acct_key
from ehrchain.ehr.values import ROLE_HOSPITAL_ADMIN, ROLE_PATIENT, ROLE_VALIDATOR, Account

# The checklist ----------------------------------------------------------------


def test_wrong_chain_is_rejected() -> None:
    w = World()
    tx = w.tx(w.admin, "validator.remove", {"address": w.validator.address}, chain="other")
    err = w.reject_tx(tx, WrongChain)
    assert err.code == "wrong_chain"


def test_unknown_sender_is_rejected() -> None:
    w = World()
    stranger = Actor.new()
    w.reject(stranger, "key.rotate", {"signing_key": b"", "encryption_key": b""}, UnknownAccount)


def test_inactive_sender_is_rejected() -> None:
    w = World()
    account = w.state.account(w.admin.address)
    assert account is not None
    w.store[acct_key(w.admin.address)] = _encoded(replace(account, status="suspended"))
    w.state = State(w.store)  # a new block over the changed committed store
    w.reject(w.admin, "hospital.admit", {}, InactiveAccount)


def _encoded(account: Account) -> bytes:
    from ehrchain.core.encoding import encode

    return encode(account.to_value())


def test_key_must_be_the_accounts_current_key() -> None:
    w = World()
    impostor = Actor(SigningKey.generate(), w.admin.enc, w.admin.address)
    err = w.reject(impostor, "validator.remove", {"address": w.validator.address}, WrongKey)
    assert err.code == "wrong_key"


def test_replay_and_gap_are_rejected() -> None:
    c = clinic()
    w = c.world
    tx = w.send(c.patient, "consent.authorise", {"provider": c.doctor.address})
    err = w.reject_tx(tx, BadNonce)
    assert isinstance(err, BadNonce)
    assert (err.expected, err.got) == (1, 0)
    assert "replayed" in str(err)
    gap = w.reject(c.patient, "consent.withdraw", {"provider": c.doctor.address}, BadNonce, nonce=5)
    assert isinstance(gap, BadNonce)
    assert (gap.expected, gap.got) == (1, 5)
    w.send(c.patient, "consent.withdraw", {"provider": c.doctor.address})


def test_unknown_kind_is_rejected_after_nonce() -> None:
    w = World()
    err = w.reject(w.admin, "record.delete", {"record_id": "r"}, UnknownKind)
    assert err.code == "unknown_kind"


def test_malformed_payload_is_rejected() -> None:
    w = World()
    err = w.reject(w.admin, "validator.remove", {"address": 5}, MalformedPayload)
    assert isinstance(err, MalformedPayload)
    assert err.field == "address"


def test_the_nonce_moves_by_one_and_the_effects_hold_the_nonce() -> None:
    w = World()
    hospital = w.hospital()
    assert w.state.nonce(w.admin.address) == 1
    assert w.state.nonce(hospital.address) == 0


def test_verify_and_execute_checks_the_signature() -> None:
    w = World()
    good = w.tx(w.admin, "validator.remove", {"address": w.validator.address})
    forged = Transaction(
        good.kind,
        ChainId(CHAIN),
        good.sender,
        good.nonce,
        {"address": w.admin.address},
        good.public_key,
        good.signature,
    )
    with pytest.raises(BadSignature):
        rules.verify_and_execute(w.state, forged, w.ctx())
    with pytest.raises(NotAuthorised):  # signature fine; the last validator stays
        rules.verify_and_execute(w.state, good, w.ctx())


# hospital.admit -------------------------------------------------------------------


def test_hospital_admit() -> None:
    w = World()
    admin = w.hospital("h-north")
    hospital = w.state.hospital("h-north")
    assert hospital is not None
    assert hospital.admin == admin.address
    account = w.state.account(admin.address)
    assert account is not None
    assert (account.role, account.hospital, account.status) == (
        ROLE_HOSPITAL_ADMIN,
        "h-north",
        "active",
    )
    assert w.state.signer(admin.key.public_key) == admin.address
    assert w.state.events[-1].subject == admin.address


def test_hospital_admit_denials() -> None:
    w = World()
    admin = w.hospital("h-north")
    again = {"hospital_id": "h-north", "name": "X", "admin": Actor.new().account_payload()}
    w.reject(w.admin, "hospital.admit", again, AlreadyExists)
    same_admin = {"hospital_id": "h-south", "name": "X", "admin": admin.account_payload()}
    w.reject(w.admin, "hospital.admit", same_admin, AlreadyExists)
    fresh = {"hospital_id": "h-east", "name": "X", "admin": Actor.new().account_payload()}
    err = w.reject(admin, "hospital.admit", fresh, NotAuthorised)
    assert isinstance(err, NotAuthorised)
    assert "consortium_admin" in err.rule


# validators ------------------------------------------------------------------------


def test_validator_add_new_and_existing_account() -> None:
    w = World()
    node = Actor.new()
    w.send(w.admin, "validator.add", {"address": node.address, "signing_key": node.key.public_key})
    assert w.state.is_validator(node.address)
    account = w.state.account(node.address)
    assert account is not None
    assert account.role == ROLE_VALIDATOR
    admin = w.hospital()
    w.send(
        w.admin, "validator.add", {"address": admin.address, "signing_key": admin.key.public_key}
    )
    assert [a for a, _ in w.state.validators()] == [
        w.validator.address,
        node.address,
        admin.address,
    ]


def test_validator_add_denials() -> None:
    w = World()
    node = Actor.new()
    payload = {"address": node.address, "signing_key": node.key.public_key}
    w.reject(w.validator, "validator.add", payload, NotAuthorised)
    existing = {"address": w.validator.address, "signing_key": w.validator.key.public_key}
    w.reject(w.admin, "validator.add", existing, AlreadyExists)
    admin = w.hospital()
    w.reject(
        w.admin,
        "validator.add",
        {"address": admin.address, "signing_key": node.key.public_key},
        WrongKey,
    )
    other = Actor.new()
    mismatch = {"address": node.address, "signing_key": other.key.public_key}
    w.reject(w.admin, "validator.add", mismatch, MalformedPayload)


def test_validator_remove() -> None:
    w = World()
    node = Actor.new()
    w.send(w.admin, "validator.add", {"address": node.address, "signing_key": node.key.public_key})
    w.send(w.admin, "validator.remove", {"address": w.validator.address})
    assert [a for a, _ in w.state.validators()] == [node.address]
    w.reject(w.admin, "validator.remove", {"address": w.validator.address}, NotFound)
    w.reject(w.admin, "validator.remove", {"address": node.address}, NotAuthorised)
    w.reject(node, "validator.remove", {"address": node.address}, NotAuthorised)
    w.reject(node, "provider.verify", {"provider": node.address}, NotFound)
    w.reject(w.validator, "provider.verify", {"provider": node.address}, NotAuthorised)


def _double_prevote(w: World, signer: Actor, height: int = 9) -> bytes:
    """Two prevotes by ``signer`` for different blocks at one height and round."""
    a, b = (
        sign_prevote(signer.key, signer.address, CHAIN, height, 0, BlockHash(bytes([n]) * 32))
        for n in (1, 2)
    )
    return encode_evidence(double_sign(CHAIN, a, b))


def test_validator_evidence_is_recorded_once_and_judged_by_the_engine() -> None:
    w = World()
    node = Actor.new()
    w.send(w.admin, "validator.add", {"address": node.address, "signing_key": node.key.public_key})
    proof = _double_prevote(w, node)
    payload = {"offender": node.address, "height": 9, "proof": proof}
    tx = w.send(w.validator, "validator.evidence", payload)
    assert w.state.evidence(node.address, 9) == (w.validator.address, tx.tx_id)
    # Reported again (by anyone): already recorded.
    w.reject(node, "validator.evidence", payload, AlreadyExists)
    # Only validators report; the payload must match what the proof shows.
    patient = w.patient(w.hospital())
    w.reject(patient, "validator.evidence", payload, NotAuthorised)
    wrong_height = {**payload, "height": 10}
    w.reject(w.validator, "validator.evidence", wrong_height, MalformedPayload)
    # A proof that proves nothing: one vote twice, garbage, or a non-validator's votes.
    vote = sign_prevote(node.key, node.address, CHAIN, 11, 0, BlockHash(bytes(32)))
    same = encode_evidence(double_sign(CHAIN, vote, vote))
    outsider = Actor.new()
    for bad, offender in (
        (same, node.address),
        (b"not evidence", node.address),
        (_double_prevote(w, outsider, 11), outsider.address),
    ):
        err = w.reject(
            w.validator,
            "validator.evidence",
            {"offender": offender, "height": 11, "proof": bad},
            MalformedPayload,
        )
        assert err.field == "proof"
    assert w.state.evidence(node.address, 11) is None


def test_validator_evidence_needs_an_engine_that_takes_it() -> None:
    w = World()
    payload = {
        "offender": w.validator.address,
        "height": 9,
        "proof": _double_prevote(w, w.validator),
    }
    tx = w.tx(w.validator, "validator.evidence", payload)
    ctx = replace(w.ctx(), evidence_check=None)
    with pytest.raises(NotAuthorised):
        apply_tx(w.state, tx, ctx)


# patients and providers ------------------------------------------------------------


def test_patient_register() -> None:
    w = World()
    hospital = w.hospital("h-west")
    patient = Actor.new()
    tx = w.send(hospital, "patient.register", patient.account_payload())
    registered = w.state.patient(patient.address)
    assert registered is not None
    assert registered.hospital == "h-west"
    assert registered.patient_id == patient_id_for(tx.tx_id)
    assert len(registered.patient_id) == 11
    assert registered.patient_id.startswith("P")
    account = w.state.account(patient.address)
    assert account is not None
    assert (account.role, account.hospital) == (ROLE_PATIENT, "h-west")
    assert w.state.epoch(patient.address) == 0
    assert w.state.events[-1].subject == patient.address


def test_patient_register_denials() -> None:
    c = clinic()
    w = c.world
    w.reject(c.hospital, "patient.register", c.patient.account_payload(), AlreadyExists)
    w.reject(c.doctor, "patient.register", Actor.new().account_payload(), NotAuthorised)
    w.reject(w.admin, "patient.register", Actor.new().account_payload(), NotAuthorised)


def test_provider_register_and_verify() -> None:
    w = World()
    hospital = w.hospital()
    doctor = w.provider(hospital, "NPI-1", verify=False)
    provider = w.state.provider(doctor.address)
    assert provider is not None
    assert not provider.verified
    assert w.state.licence_holder("NPI-1") == doctor.address
    w.send(w.validator, "provider.verify", {"provider": doctor.address})
    provider = w.state.provider(doctor.address)
    assert provider is not None
    assert provider.verified
    assert provider.verified_by == w.validator.address
    w.reject(w.validator, "provider.verify", {"provider": doctor.address}, AlreadyExists)


def test_provider_denials() -> None:
    w = World()
    hospital = w.hospital()
    w.provider(hospital, "NPI-1", verify=False)
    dup = {**Actor.new().account_payload(), "licence": "NPI-1"}
    w.reject(hospital, "provider.register", dup, AlreadyExists)
    w.reject(
        w.admin,
        "provider.register",
        {**Actor.new().account_payload(), "licence": "NPI-2"},
        NotAuthorised,
    )
    w.reject(hospital, "provider.verify", {"provider": hospital.address}, NotAuthorised)
    w.reject(w.validator, "provider.verify", {"provider": Actor.new().address}, NotFound)


# key.rotate ------------------------------------------------------------------------


def test_key_rotation_then_old_key_is_wrong() -> None:
    c = clinic()
    w = c.world
    new_key = SigningKey.generate()
    new_enc = EncryptionKey.generate().public_key
    w.send(c.patient, "key.rotate", {"signing_key": new_key.public_key, "encryption_key": new_enc})
    account = w.state.account(c.patient.address)
    assert account is not None
    assert (account.signing_key, account.encryption_key) == (new_key.public_key, new_enc)
    w.reject(c.patient, "consent.authorise", {"provider": c.doctor.address}, WrongKey)
    c.patient.key = new_key
    w.send(c.patient, "consent.authorise", {"provider": c.doctor.address})
    assert w.state.signer(new_key.public_key) == c.patient.address


def test_key_rotation_refuses_a_used_key() -> None:
    c = clinic()
    w = c.world
    enc = EncryptionKey.generate().public_key
    for used in (c.doctor.key.public_key, c.patient.key.public_key, w.admin.key.public_key):
        w.reject(
            c.patient, "key.rotate", {"signing_key": used, "encryption_key": enc}, AlreadyExists
        )
    old = c.patient.key.public_key
    fresh = SigningKey.generate()
    w.send(c.patient, "key.rotate", {"signing_key": fresh.public_key, "encryption_key": enc})
    c.patient.key = fresh
    w.reject(c.patient, "key.rotate", {"signing_key": old, "encryption_key": enc}, AlreadyExists)


def test_validator_rotation_updates_the_validator_list() -> None:
    w = World()
    fresh = SigningKey.generate()
    enc = EncryptionKey.generate().public_key
    w.send(w.validator, "key.rotate", {"signing_key": fresh.public_key, "encryption_key": enc})
    assert w.state.validators() == ((w.validator.address, fresh.public_key),)
