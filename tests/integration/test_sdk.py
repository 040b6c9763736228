"""The whole patient story through the SDK, over HTTP, against a real node process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import pytest

import ehrchain.client as sdk
from ehrchain.client import (
    Actor,
    ApiError,
    Conflict,
    EhrClient,
    Forbidden,
    Scope,
    new_identity,
    open_reason,
)
from ehrchain.crypto.keystore import Identity

pytestmark = pytest.mark.integration


class RunningNode(Protocol):
    """The shape of the ``node_server`` fixture (tests/conftest.py)."""

    url: str
    chain_id: str
    admin: Identity
    validator: Identity
    data_dir: Path


def _observation(value: str) -> bytes:
    return json.dumps(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "HbA1c"},
            "valueQuantity": {"value": float(value), "unit": "%"},
        }
    ).encode()


PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@dataclass
class Cast:
    client: EhrClient
    admin: Actor
    hospital: Actor
    validator: Actor
    patient: Actor
    doctor: Actor
    specialist: Actor
    emergency: Actor
    caregiver: Actor


@pytest.fixture
def cast(node_server: RunningNode) -> Iterator[Cast]:
    """Admin admits a hospital; the hospital registers everyone; a validator verifies."""
    with EhrClient(node_server.url) as client:
        admin = Actor(node_server.admin, client)
        hospital = Actor(new_identity("st-mary admin", "hospital_admin"), client)
        admin.admit_hospital("st-mary", "St Mary", hospital.identity)
        patient, caregiver = (Actor(new_identity(n), client) for n in ("patient", "caregiver"))
        for who in (patient, caregiver):
            assert hospital.register_patient(who.identity) == who.address
        validator = Actor(node_server.validator, client)
        doctors = []
        for i, name in enumerate(("doctor", "specialist", "emergency")):
            actor = Actor(new_identity(name), client)
            hospital.register_provider(actor.identity, f"NPI-{i:07d}")
            validator.verify_provider(actor.address)
            doctors.append(actor)
        doctor, specialist, emergency = doctors
        yield Cast(
            client=client,
            admin=admin,
            hospital=hospital,
            validator=validator,
            patient=patient,
            doctor=doctor,
            specialist=specialist,
            emergency=emergency,
            caregiver=caregiver,
        )


def _settle(client: EhrClient) -> None:
    """Seal whatever is pending (reads are queued as audit events)."""
    client.mine()


def test_the_patient_story(cast: Cast) -> None:
    c, patient, doctor, specialist = cast.client, cast.patient, cast.doctor, cast.specialist
    account = c.account(doctor.address) or {}
    assert (account["role"], account["provider"]["verified"]) == ("provider", True)

    # the patient authorises the doctor, who writes a FHIR record
    patient.authorise(doctor.address)
    v1 = _observation("6.1")
    record_id, version = doctor.put_fhir(patient.address, v1)
    assert version == 1
    record = c.record(record_id) or {}
    assert (record["patient"], record["category"], record["kind"]) == (
        patient.address,
        "laboratory",
        "fhir",
    )
    assert patient.get(record_id) == v1

    # a specialist asks, the patient grants (keys re-wrapped), the specialist reads
    with pytest.raises(Forbidden):
        specialist.get(record_id)
    specialist.request_access(patient.address, Scope(categories=frozenset({"laboratory"})))
    assert [r["status"] for r in c.access_requests(patient.address)] == ["pending"]
    patient.grant(specialist.address, Scope(categories=frozenset({"laboratory"})))
    assert specialist.get(record_id) == v1
    _settle(c)
    reads = [(e["kind"], e["actor"]) for e in patient.history() if e["kind"] == "read"]
    assert ("read", specialist.address) in reads
    assert ("read", patient.address) in reads

    # revocation: the next version uses a key the specialist never gets
    patient.revoke(specialist.address)
    v2 = _observation("5.8")
    assert patient.amend(record_id, v2) == 2
    assert specialist.address not in (c.version(record_id, 2) or {})["readers"]
    with pytest.raises(Forbidden):
        specialist.get(record_id, 2)
    assert cast.hospital.get(record_id, 2) == v2
    with pytest.raises(Forbidden):
        doctor.get(record_id, 2)

    # break glass: audited, reason readable by the patient only, custodian re-wraps
    with pytest.raises(Forbidden):
        cast.emergency.get(record_id, 1)
    cast.emergency.break_glass(patient.address, "unconscious", "found unresponsive in ward 3")
    cast.hospital.emergency_rewrap(patient.address, cast.emergency.address)
    assert cast.emergency.get(record_id, 1) == v1
    assert cast.emergency.get(record_id, 2) == v2
    _settle(c)
    kinds = [e["kind"] for e in patient.history()]
    assert "break_glass" in kinds

    # key rotation: same address, old versions still open, new ones too
    old_key = patient.identity.encryption.public_key
    rotated = patient.rotate_keys()
    assert rotated.address == patient.address
    assert (c.account(patient.address) or {})["encryption_key"] != old_key.hex()
    assert patient.get(record_id, 1) == v1
    assert patient.get(record_id, 2) == v2
    doc_id, _ = patient.put_document(patient.address, PDF, "application/pdf")
    assert patient.get(doc_id) == PDF
    assert {r["record_id"] for r in patient.records()} == {record_id, doc_id}


def test_break_glass_reason_opens_for_the_patient_only(cast: Cast) -> None:
    submitted = cast.emergency.break_glass(cast.patient.address, "other", "suspected overdose")
    found = cast.client.tx(submitted.tx_id) or {}
    sealed = bytes.fromhex(found["tx"]["payload"]["reason"]["hex"])
    assert b"overdose" not in sealed
    text = open_reason(
        cast.client.chain_id,
        cast.patient.address,
        cast.patient.identity.all_encryption_keys(),
        cast.emergency.address,
        sealed,
    )
    assert text == "suspected overdose"


def test_delegate_reads_and_grants_for_the_patient(cast: Cast) -> None:
    content = _observation("7.0")
    record_id, _ = cast.patient.put_fhir(cast.patient.address, content)
    cast.patient.delegate(cast.caregiver.address)
    assert cast.caregiver.get(record_id) == content
    cast.caregiver.grant(cast.specialist.address, patient=cast.patient.address)
    assert cast.specialist.get(record_id) == content


def test_grant_by_record_and_expiry(cast: Cast) -> None:
    first, _ = cast.patient.put_fhir(cast.patient.address, _observation("5.0"))
    second, _ = cast.patient.put_fhir(cast.patient.address, _observation("5.1"))
    cast.patient.grant(cast.specialist.address, Scope(records=frozenset({first})))
    assert cast.specialist.get(first) == _observation("5.0")
    with pytest.raises(Forbidden):
        cast.specialist.get(second)
    with pytest.raises(ApiError) as caught:
        cast.patient.grant(cast.doctor.address, expires_ms=int(time.time() * 1000) - 60_000)
    assert caught.value.code == "expired"


def test_nonce_recovers_after_a_rejected_transaction(cast: Cast) -> None:
    cast.patient.authorise(cast.doctor.address)
    with pytest.raises(Conflict):
        cast.patient.authorise(cast.doctor.address)
    cast.patient.withdraw_consent(cast.doctor.address)
    other = Actor(cast.patient.identity, cast.client)
    other.authorise(cast.doctor.address)
    with pytest.raises(Conflict) as caught:
        cast.patient.withdraw_consent(cast.specialist.address)
    assert caught.value.code in ("bad_nonce", "not_found")
    cast.patient.withdraw_consent(cast.doctor.address)


def test_inclusion_proof_checks_against_the_block(cast: Cast) -> None:
    submitted = cast.patient.authorise(cast.doctor.address)
    height, index = cast.client.verify_inclusion(submitted.tx_id)
    assert (height, index) == (submitted.height, submitted.index)


def test_batch_and_custom_transport(node_server: RunningNode, cast: Cast) -> None:
    txs = [
        cast.patient.build("consent.authorise", {"provider": p.address})
        for p in (cast.doctor, cast.specialist)
    ]
    with EhrClient(node_server.url, transport=httpx.HTTPTransport(retries=1)) as client:
        outcomes = client.submit_batch([*txs, txs[0]])
        assert [o.tx_id for o in outcomes[:2]] == [t.tx_id for t in txs]
        assert outcomes[2].error is not None
        assert outcomes[2].error.status == 409
        for tx in txs:
            assert client.wait_for_tx(tx.tx_id)["status"] == "committed"


def test_public_surface() -> None:
    assert sorted(sdk.__all__) == sorted(
        [
            "DEFAULT_WAIT_S",
            "FHIR_RELEASES",
            "KIND_ROUTES",
            "Actor",
            "ApiError",
            "BadRequest",
            "BatchOutcome",
            "ClientError",
            "Conflict",
            "EhrClient",
            "Forbidden",
            "InvalidRequest",
            "MissingData",
            "NotFound",
            "PayloadTooLarge",
            "PublicIdentity",
            "ReadResult",
            "Readers",
            "Scope",
            "ServerError",
            "Submitted",
            "TransportError",
            "TxTimeout",
            "Unauthenticated",
            "Unavailable",
            "UnsupportedMediaType",
            "new_identity",
            "open_reason",
            "public_identity",
            "seal_reason",
        ]
    )
    assert all(hasattr(sdk, name) for name in sdk.__all__)
