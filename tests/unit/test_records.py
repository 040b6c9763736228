"""Record version encryption: seal for readers, open only as a reader, detect any tampering."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from ehrchain.core import encoding
from ehrchain.core.address import address_from_public_key
from ehrchain.core.cid import cid_of
from ehrchain.crypto.errors import InvalidKey
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE, InvalidFhir
from ehrchain.ehr.kinds import RecordAmend, RecordCreate, record_id_for
from ehrchain.ehr.records import (
    MAX_DOCUMENT_SIZE,
    InvalidDocument,
    NotAReader,
    RecordError,
    RecordIntegrityError,
    SealedVersion,
    blob_aad,
    open_version,
    prepare_document,
    prepare_fhir,
    rewrap,
    seal_version,
    wrap_info,
)

CHAIN = "ehrchain-test"
RECORD = "r0123456789abcdef0123456789abcdef"
PATIENT = "ehr1patient"
AUTHOR = "ehr1author"
OUTSIDER = "ehr1outsider"
GRANTEE = "ehr1grantee"

# Deliberately odd formatting: a read must return these exact bytes.
FHIR = (
    b'{"resourceType":"Observation",  "id":"w1","status":"final",\n'
    b'"code":{"text":"Body weight"},"valueQuantity":{"value":72.50,"unit":"kg"}}'
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(64)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)


@pytest.fixture(scope="module")
def keys() -> dict[str, EncryptionKey]:
    return {name: EncryptionKey.generate() for name in (PATIENT, AUTHOR, OUTSIDER, GRANTEE)}


def seal(keys: dict[str, EncryptionKey], version: int = 1, content: bytes = FHIR) -> SealedVersion:
    content, info = prepare_fhir(content, "R4")
    return seal_version(
        chain_id=CHAIN,
        record_id=RECORD,
        version=version,
        content=content,
        kind="fhir",
        media_type=FHIR_MEDIA_TYPE,
        fhir_version=info.fhir_version,
        resource_type=info.resource_type,
        category=info.category,
        readers={PATIENT: keys[PATIENT].public_key, AUTHOR: keys[AUTHOR].public_key},
    )


def open_as(
    sealed: SealedVersion,
    reader: str,
    keys: list[EncryptionKey],
    **changes: Any,
) -> bytes:
    arguments: dict[str, Any] = {
        "chain_id": CHAIN,
        "record_id": sealed.record_id,
        "version": sealed.version,
        "blob": sealed.blob,
        "cid": sealed.cid,
        "commitment": sealed.commitment,
        "wrapped_key": sealed.wrapped.get(reader, b""),
        "reader_address": reader,
        "keys": keys,
    }
    arguments.update(changes)
    return open_version(**arguments)


def test_every_reader_reads_the_exact_bytes(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    for reader in (PATIENT, AUTHOR):
        plaintext = open_as(sealed, reader, [keys[reader]])
        assert plaintext == FHIR
        assert json.loads(plaintext) == json.loads(FHIR)


def test_sealed_version_fields(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    assert set(sealed.wrapped) == {PATIENT, AUTHOR}
    assert sealed.cid == cid_of(sealed.blob)
    assert sealed.cid.startswith("bafkrei")
    assert sealed.size == len(sealed.blob)
    assert b"Body weight" not in sealed.blob
    assert (sealed.resource_type, sealed.category, sealed.kind) == (
        "Observation",
        "laboratory",
        "fhir",
    )
    assert "blob" not in repr(sealed)
    assert "wrapped" not in repr(sealed)


def test_every_version_gets_a_fresh_key(keys: dict[str, EncryptionKey]) -> None:
    first, second = seal(keys), seal(keys)
    assert first.blob != second.blob
    assert first.commitment != second.commitment
    with pytest.raises(RecordIntegrityError):
        # Version 1's wrapped key with the other sealing's blob: its key does not open it.
        open_as(first, PATIENT, [keys[PATIENT]], blob=second.blob, cid=second.cid)


def test_create_and_amend_payloads(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    create = sealed.payload(epoch=3)
    assert set(create) == {
        "record_id",
        "category",
        "kind",
        "resource_type",
        "media_type",
        "fhir_version",
        "cid",
        "size",
        "commitment",
        "epoch",
        "wrapped",
    }
    assert create["epoch"] == 3
    assert create["wrapped"] == dict(sealed.wrapped)
    assert (create["cid"], create["size"]) == (sealed.cid, len(sealed.blob))
    amend = seal(keys, version=2).payload(epoch=3, patient=PATIENT)
    assert amend["version"] == 2
    assert amend["patient"] == PATIENT
    assert set(amend) - set(create) == {"version", "patient"}
    # Both must go through the canonical encoding unchanged.
    assert encoding.decode(encoding.encode(amend))["version"] == 2


def test_payloads_parse_as_the_transaction_kinds(keys: dict[str, EncryptionKey]) -> None:
    """The payloads are what ``ehr.kinds`` accepts for record.create and record.amend."""
    patient, author = (address_from_public_key(bytes([n]) * 32) for n in (1, 2))
    record_id = record_id_for(CHAIN, author, 0)
    readers = {patient: keys[PATIENT].public_key, author: keys[AUTHOR].public_key}
    content, info = prepare_fhir(FHIR, "R4")
    for version in (1, 2):
        sealed = seal_version(
            chain_id=CHAIN,
            record_id=record_id,
            version=version,
            content=content,
            kind="fhir",
            media_type=FHIR_MEDIA_TYPE,
            fhir_version=info.fhir_version,
            resource_type=info.resource_type,
            category=info.category,
            readers=readers,
        )
        payload = sealed.payload(epoch=0, patient=patient)
        parsed = (RecordAmend if version > 1 else RecordCreate).from_payload(payload)
        assert parsed.to_payload() == payload
        assert parsed.patient == patient


def test_document_payload_parses_as_record_create(keys: dict[str, EncryptionKey]) -> None:
    patient = address_from_public_key(bytes([1]) * 32)
    document = seal_version(
        chain_id=CHAIN,
        record_id=record_id_for(CHAIN, patient, 0),
        version=1,
        content=prepare_document(PNG, "image/png"),
        kind="document",
        media_type="image/png",
        fhir_version="",
        resource_type="",
        category="document",
        readers={patient: keys[PATIENT].public_key},
    )
    assert RecordCreate.from_payload(document.payload(epoch=1)).kind == "document"


def test_tampered_blob(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    tampered = bytearray(sealed.blob)
    tampered[20] ^= 1
    with pytest.raises(RecordIntegrityError, match="CID"):
        open_as(sealed, PATIENT, [keys[PATIENT]], blob=bytes(tampered))
    # Even with a CID recomputed for the tampered bytes, authentication fails.
    with pytest.raises(RecordIntegrityError, match="does not open"):
        open_as(sealed, PATIENT, [keys[PATIENT]], blob=bytes(tampered), cid=cid_of(bytes(tampered)))


def test_malformed_cid(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    with pytest.raises(RecordIntegrityError):
        open_as(sealed, PATIENT, [keys[PATIENT]], cid="not-a-cid")


def test_wrong_commitment(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    other = seal(keys)
    with pytest.raises(RecordIntegrityError, match="commitment"):
        open_as(sealed, PATIENT, [keys[PATIENT]], commitment=other.commitment)


def test_blob_bound_to_its_version(keys: dict[str, EncryptionKey]) -> None:
    # A wrapped key re-made for version 2 still cannot open version 1's blob (AAD).
    sealed = seal(keys)
    moved = rewrap(
        chain_id=CHAIN,
        record_id=RECORD,
        version=1,
        wrapped_key=sealed.wrapped[PATIENT],
        holder_address=PATIENT,
        holder_keys=[keys[PATIENT]],
        grantee_address=PATIENT,
        grantee_public_key=keys[PATIENT].public_key,
    )
    assert open_as(sealed, PATIENT, [keys[PATIENT]], wrapped_key=moved) == FHIR
    with pytest.raises(NotAReader):
        open_as(sealed, PATIENT, [keys[PATIENT]], wrapped_key=moved, version=2)


def test_outsider_is_not_a_reader(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    with pytest.raises(NotAReader) as caught:
        open_as(sealed, PATIENT, [keys[OUTSIDER]])
    assert caught.value.code == "not_a_reader"
    with pytest.raises(NotAReader):
        open_as(sealed, PATIENT, [])


def test_reader_cannot_use_anothers_wrapped_key(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    # The author holds the patient's wrapped key: it is bound to the patient.
    with pytest.raises(NotAReader):
        open_as(sealed, AUTHOR, [keys[AUTHOR]], wrapped_key=sealed.wrapped[PATIENT])
    # Claiming the patient's address does not help without the patient's key.
    with pytest.raises(NotAReader):
        open_as(sealed, PATIENT, [keys[AUTHOR]])


def test_rotated_keys_still_open_old_versions(keys: dict[str, EncryptionKey]) -> None:
    old_version = seal(keys)
    new_key = EncryptionKey.generate()
    assert open_as(old_version, PATIENT, [new_key, keys[PATIENT]]) == FHIR
    with pytest.raises(NotAReader):
        open_as(old_version, PATIENT, [new_key])
    rotated = dict(keys, **{PATIENT: new_key})
    new_version = seal(rotated, version=2)
    assert open_as(new_version, PATIENT, [new_key, keys[PATIENT]]) == FHIR
    with pytest.raises(NotAReader):
        open_as(new_version, PATIENT, [keys[PATIENT]])


def test_rewrap_for_a_grantee(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    granted = rewrap(
        chain_id=CHAIN,
        record_id=RECORD,
        version=1,
        wrapped_key=sealed.wrapped[PATIENT],
        holder_address=PATIENT,
        holder_keys=[keys[PATIENT]],
        grantee_address=GRANTEE,
        grantee_public_key=keys[GRANTEE].public_key,
    )
    assert open_as(sealed, GRANTEE, [keys[GRANTEE]], wrapped_key=granted) == FHIR
    with pytest.raises(NotAReader):  # bound to the grantee's address
        open_as(sealed, OUTSIDER, [keys[GRANTEE]], wrapped_key=granted)
    with pytest.raises(NotAReader):  # only the grantee's key opens it
        open_as(sealed, GRANTEE, [keys[PATIENT]], wrapped_key=granted)


def test_only_a_holder_can_rewrap(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    with pytest.raises(NotAReader):
        rewrap(
            chain_id=CHAIN,
            record_id=RECORD,
            version=1,
            wrapped_key=sealed.wrapped[PATIENT],
            holder_address=PATIENT,
            holder_keys=[keys[OUTSIDER]],
            grantee_address=OUTSIDER,
            grantee_public_key=keys[OUTSIDER].public_key,
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "image"}, "record kind"),
        ({"category": "gossip"}, "category"),
        ({"version": 0}, "versions start"),
        ({"readers": {}}, "at least one reader"),
    ],
)
def test_seal_version_checks_its_arguments(
    keys: dict[str, EncryptionKey], change: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "chain_id": CHAIN,
        "record_id": RECORD,
        "version": 1,
        "content": FHIR,
        "kind": "fhir",
        "media_type": FHIR_MEDIA_TYPE,
        "fhir_version": "R4",
        "resource_type": "Observation",
        "category": "laboratory",
        "readers": {PATIENT: keys[PATIENT].public_key},
    }
    arguments.update(change)
    with pytest.raises(RecordError, match=message):
        seal_version(**arguments)


def test_seal_refuses_a_small_order_reader_key() -> None:
    with pytest.raises(InvalidKey):
        seal_version(
            chain_id=CHAIN,
            record_id=RECORD,
            version=1,
            content=PNG,
            kind="document",
            media_type="image/png",
            fhir_version="",
            resource_type="",
            category="document",
            readers={PATIENT: bytes(32)},
        )


def test_bindings_are_the_canonical_encodings() -> None:
    assert blob_aad(CHAIN, RECORD, 1) == encoding.encode(["ehrchain/blob/v1", CHAIN, RECORD, 1])
    assert wrap_info(CHAIN, RECORD, 1, PATIENT) == encoding.encode(
        ["ehrchain/wrap/v1", CHAIN, RECORD, 1, PATIENT]
    )
    assert wrap_info(CHAIN, RECORD, 1, PATIENT) != wrap_info(CHAIN, RECORD, 2, PATIENT)
    assert blob_aad(CHAIN, RECORD, 1) != blob_aad(CHAIN + "x", RECORD, 1)


def test_prepare_fhir_keeps_the_exact_bytes() -> None:
    content, info = prepare_fhir(FHIR, "R4")
    assert content == FHIR
    assert info.resource_id == "w1"
    with pytest.raises(InvalidFhir):
        prepare_fhir(b'{"resourceType": "Observation"}', "R4")


@pytest.mark.parametrize(
    ("data", "media_type"), [(PDF, "application/pdf"), (PNG, "image/png"), (JPEG, "image/jpeg")]
)
def test_documents_of_the_right_type(data: bytes, media_type: str) -> None:
    assert prepare_document(data, media_type) == data


@pytest.mark.parametrize(
    ("data", "media_type", "message"),
    [
        (PNG, "application/pdf", "signature"),
        (PDF, "image/png", "signature"),
        (PNG, "image/jpeg", "signature"),
        (b"%PD", "application/pdf", "signature"),
        (b"", "image/png", "empty"),
        (b"hello", "text/plain", "media type"),
        (FHIR, FHIR_MEDIA_TYPE, "media type"),
    ],
)
def test_documents_of_the_wrong_type(data: bytes, media_type: str, message: str) -> None:
    with pytest.raises(InvalidDocument, match=message):
        prepare_document(data, media_type)


def test_oversized_document() -> None:
    data = PDF + bytes(MAX_DOCUMENT_SIZE)
    with pytest.raises(InvalidDocument, match="exceeds"):
        prepare_document(data, "application/pdf")


def test_document_round_trip(keys: dict[str, EncryptionKey]) -> None:
    content = prepare_document(PDF, "application/pdf")
    sealed = seal_version(
        chain_id=CHAIN,
        record_id=RECORD,
        version=1,
        content=content,
        kind="document",
        media_type="application/pdf",
        fhir_version="",
        resource_type="",
        category="document",
        readers={PATIENT: keys[PATIENT].public_key},
    )
    assert open_as(sealed, PATIENT, [keys[PATIENT]]) == PDF
    assert sealed.payload(epoch=0)["kind"] == "document"


def test_sealed_version_is_immutable(keys: dict[str, EncryptionKey]) -> None:
    sealed = seal(keys)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.version = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        sealed.wrapped[OUTSIDER] = b""  # type: ignore[index]
