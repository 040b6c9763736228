"""Payload parsing: every kind round-trips, and every malformed field is named."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from ehr_world import Actor

from ehrchain.core.cid import cid_of
from ehrchain.ehr import kinds
from ehrchain.ehr.errors import MalformedPayload
from ehrchain.ehr.kinds import PAYLOADS, record_id_for
from ehrchain.ehr.rules import KINDS
from ehrchain.ehr.values import Scope

A = Actor.new()
B = Actor.new()
RID = record_id_for("ehr-test", A.address, 3)
SMALL_ORDER_ED25519 = bytes([1]) + bytes(31)  # the identity point
SMALL_ORDER_X25519 = bytes(32)


def _record() -> dict[str, Any]:
    return {
        "record_id": RID,
        "category": "laboratory",
        "kind": "fhir",
        "resource_type": "Observation",
        "media_type": "application/fhir+json",
        "fhir_version": "4.0.1",
        "cid": cid_of(b"blob"),
        "size": 10,
        "commitment": bytes(32),
        "epoch": 0,
        "wrapped": {A.address: os.urandom(80), B.address: os.urandom(80)},
        "patient": B.address,
    }


SAMPLES: dict[str, dict[str, Any]] = {
    "hospital.admit": {"hospital_id": "h-1", "name": "St Mary", "admin": A.account_payload()},
    "validator.add": {"address": A.address, "signing_key": A.key.public_key},
    "validator.remove": {"address": A.address},
    "validator.evidence": {"offender": A.address, "height": 7, "proof": b"two signed votes"},
    "patient.register": A.account_payload(),
    "provider.register": {**A.account_payload(), "licence": "NPI-1234567890"},
    "provider.verify": {"provider": A.address},
    "key.rotate": {"signing_key": A.key.public_key, "encryption_key": A.enc},
    "consent.authorise": {"provider": A.address},
    "consent.withdraw": {"provider": A.address},
    "access.request": {"patient": A.address, "scope": {"categories": ["imaging", "laboratory"]}},
    "access.deny": {"provider": A.address, "patient": B.address},
    "access.grant": {
        "grantee": A.address,
        "scope": {"records": [RID]},
        "expires_ms": 5,
        "rewraps": [[RID, 1, os.urandom(80)]],
        "patient": B.address,
    },
    "access.revoke": {"grantee": A.address},
    "delegate.add": {"caregiver": A.address, "rewraps": []},
    "delegate.remove": {"caregiver": A.address},
    "access.break_glass": {"patient": A.address, "reason_code": "unconscious", "reason": b"ct"},
    "keys.rewrap": {"patient": A.address, "grantee": B.address, "rewraps": [[RID, 2, b"w"]]},
    "record.create": _record(),
    "record.amend": {**_record(), "version": 2},
    "record.read": {"record_id": RID, "version": 1},
}


def test_every_kind_has_a_sample_a_payload_class_and_a_handler() -> None:
    assert set(SAMPLES) == set(PAYLOADS) == set(KINDS) == set(kinds.SENDERS)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_round_trip(kind: str) -> None:
    parsed = PAYLOADS[kind].from_payload(SAMPLES[kind])
    assert parsed.to_payload() == SAMPLES[kind]
    assert PAYLOADS[kind].from_payload(parsed.to_payload()) == parsed


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_missing_field_is_named(kind: str) -> None:
    optional = (
        {"patient"}
        if kind not in ("access.request", "access.break_glass", "keys.rewrap")
        else set()
    )
    for name in SAMPLES[kind]:
        if name in optional:
            continue
        payload = {k: v for k, v in SAMPLES[kind].items() if k != name}
        with pytest.raises(MalformedPayload) as caught:
            PAYLOADS[kind].from_payload(payload)
        assert caught.value.field == name
        assert caught.value.code == "malformed_payload"


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_unknown_field_is_refused(kind: str) -> None:
    with pytest.raises(MalformedPayload) as caught:
        PAYLOADS[kind].from_payload({**SAMPLES[kind], "extra": 1})
    assert caught.value.field == "extra"


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("bad", [None, 3.5, True, -1, "x" * 5000, b"\x00" * 5000, [], {}])
def test_wrong_value_in_any_field_is_named(kind: str, bad: Any) -> None:
    for name, good in SAMPLES[kind].items():
        if type(bad) is type(good) and bad == good:
            continue
        if name == "rewraps" and bad == []:
            continue
        payload = {**SAMPLES[kind], name: bad}
        with pytest.raises(MalformedPayload) as caught:
            PAYLOADS[kind].from_payload(payload)
        assert caught.value.field.split(".")[0] == name


@pytest.mark.parametrize("kind", sorted(SAMPLES))
@pytest.mark.parametrize("bad", [None, [], "payload", 7])
def test_payload_must_be_a_map(kind: str, bad: Any) -> None:
    with pytest.raises(MalformedPayload):
        PAYLOADS[kind].from_payload(bad)


def _malformed(tx_kind: str, field: str, **changes: Any) -> MalformedPayload:
    with pytest.raises(MalformedPayload) as caught:
        PAYLOADS[tx_kind].from_payload({**SAMPLES[tx_kind], **changes})
    assert caught.value.field.split(".")[0] == field
    return caught.value


def test_addresses_are_checked() -> None:
    typo = A.address[:-1] + ("q" if A.address[-1] != "q" else "p")
    _malformed("provider.verify", "provider", provider=typo)
    _malformed("provider.verify", "provider", provider=A.address.upper())
    _malformed("access.request", "patient", patient="btc1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")


def test_new_account_address_must_derive_from_its_key() -> None:
    _malformed("patient.register", "address", address=B.address)
    admin = {**A.account_payload(), "address": B.address}
    _malformed("hospital.admit", "admin", admin=admin)


def test_public_keys_are_checked() -> None:
    _malformed("key.rotate", "signing_key", signing_key=SMALL_ORDER_ED25519)
    _malformed("key.rotate", "signing_key", signing_key=bytes(31))
    _malformed("key.rotate", "encryption_key", encryption_key=SMALL_ORDER_X25519)
    _malformed("key.rotate", "encryption_key", encryption_key=bytes(33))


def test_text_bounds_and_vocabularies() -> None:
    _malformed("provider.register", "licence", licence="AB")
    _malformed("provider.register", "licence", licence="A" * 33)
    _malformed("provider.register", "licence", licence="NPI 123")
    _malformed("hospital.admit", "hospital_id", hospital_id="-bad")
    _malformed("hospital.admit", "name", name="")
    _malformed("hospital.admit", "name", name="x" * 129)
    _malformed("hospital.admit", "name", name="line\nbreak")
    _malformed("access.break_glass", "reason_code", reason_code="curious")
    _malformed("access.break_glass", "reason", reason=b"")
    _malformed("access.break_glass", "reason", reason=b"x" * 4097)
    assert kinds.BreakGlass.from_payload({**SAMPLES["access.break_glass"], "reason": b"x" * 4096})
    _malformed("record.create", "category", category="gossip")
    _malformed("record.create", "kind", kind="video")
    _malformed("record.create", "media_type", media_type="not a media type")
    _malformed("record.create", "fhir_version", fhir_version="four")
    _malformed("record.create", "resource_type", resource_type="Obs3rvation")
    _malformed("record.create", "resource_type", resource_type="")
    _malformed("record.create", "fhir_version", kind="document", fhir_version="4.0.1")


def test_document_records_need_no_fhir_fields() -> None:
    payload = {**SAMPLES["record.create"], "kind": "document", "fhir_version": ""}
    payload["resource_type"] = ""
    payload["media_type"] = "application/pdf"
    assert kinds.RecordCreate.from_payload(payload).kind == "document"


def test_record_fields() -> None:
    _malformed("record.create", "record_id", record_id="r" + "A" * 32)
    _malformed("record.create", "record_id", record_id=RID[:-1])
    _malformed("record.create", "cid", cid=str(cid_of(b"x")).upper())
    _malformed("record.create", "cid", cid="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
    _malformed("record.create", "commitment", commitment=bytes(31))
    _malformed("record.create", "size", size=2**41)
    _malformed("record.create", "epoch", epoch=-1)
    _malformed("record.amend", "version", version=1)
    _malformed("record.read", "version", version=0)


def test_wrapped_key_bounds() -> None:
    _malformed("record.create", "wrapped", wrapped={})
    _malformed("record.create", "wrapped", wrapped={A.address: b"x" * 257})
    _malformed("record.create", "wrapped", wrapped={A.address: b""})
    _malformed("record.create", "wrapped", wrapped={"ehr1nope": b"x"})
    many = {Actor.new().address: b"k" for _ in range(257)}
    _malformed("record.create", "wrapped", wrapped=many)


def test_rewraps() -> None:
    _malformed("delegate.add", "rewraps", rewraps=[[RID, 1]])
    _malformed("delegate.add", "rewraps", rewraps=[[RID, 1, b"a"], [RID, 1, b"b"]])
    _malformed("delegate.add", "rewraps", rewraps=[[RID, 0, b"a"]])
    _malformed("delegate.add", "rewraps", rewraps=[[RID, 1, b"a" * 257]])
    _malformed("delegate.add", "rewraps", rewraps=[[RID, v, b"a"] for v in range(1, 1026)])
    ok = kinds.DelegateAdd.from_payload({**SAMPLES["delegate.add"], "rewraps": [(RID, 1, b"a")]})
    assert ok.rewraps == (kinds.Rewrap(RID, 1, b"a"),)


def test_scopes() -> None:
    parse = kinds.AccessRequest.from_payload
    base = SAMPLES["access.request"]
    assert parse({**base, "scope": {"all": True}}).scope == Scope(all=True)
    assert parse({**base, "scope": {"records": [RID]}}).scope == Scope(records=frozenset({RID}))
    bads: tuple[dict[str, Any], ...] = (
        {"all": False},
        {"all": True, "categories": ["imaging"]},
        {"categories": []},
        {"categories": ["imaging", "imaging"]},
        {"categories": ["gossip"]},
        {"records": ["nope"]},
        {"records": [RID] * 2},
        {"everything": True},
        {},
    )
    for bad in bads:
        _malformed("access.request", "scope", scope=bad)


def test_expiry_is_a_non_negative_integer() -> None:
    _malformed("access.grant", "expires_ms", expires_ms=-5)
    _malformed("access.grant", "expires_ms", expires_ms=False)
    _malformed("access.grant", "expires_ms", expires_ms=2**63)


def test_errors_never_echo_values() -> None:
    secret = "HIV positive " * 3
    for kind in ("record.create", "hospital.admit", "access.break_glass"):
        for name in SAMPLES[kind]:
            if name == "name":  # a hospital name is free text
                continue
            with pytest.raises(MalformedPayload) as caught:
                PAYLOADS[kind].from_payload({**SAMPLES[kind], name: secret})
            assert "HIV" not in str(caught.value)
    with pytest.raises(MalformedPayload) as caught:
        PAYLOADS["record.read"].from_payload({**SAMPLES["record.read"], secret: 1})
    assert "HIV" not in str(caught.value)
    assert caught.value.field == "<unknown>"


def test_record_id_for_is_the_contract_derivation() -> None:
    # encode(["ehrchain/record-id/v1", "ehr-test", <address>, 7]), written out by hand
    encoded = bytes.fromhex(
        "018475656872636861696e2f7265636f72642d69642f7631686568722d74657374782a"
        "6568723171717171717171717171717171717171717171717171717171717171717171"
        "716d7a3570336a07"
    )
    expected = "r" + hashlib.sha256(encoded).digest()[:16].hex()
    assert expected == "rad257faf42cf2ed9e2eeb340bea5c9e7"
    assert record_id_for("ehr-test", "ehr1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqmz5p3j", 7) == expected
    one = record_id_for("c", A.address, 0)
    assert len(one) == 33
    assert one.startswith("r")
    assert one != record_id_for("c", A.address, 1)
    assert one != record_id_for("d", A.address, 0)
    assert one != record_id_for("c", B.address, 0)
