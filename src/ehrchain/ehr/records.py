"""Client-side encryption of record versions: seal for the readers, open as one of them.

A version's plaintext (FHIR JSON exactly as given, or document bytes) is sealed
under a fresh data key with AES-256-GCM bound to ``(chain, record, version)``;
the data key is HPKE-wrapped for each reader with ``info`` bound to
``(chain, record, version, reader address)``; the chain records the blob's CID
and the key commitment HMAC(data key, plaintext). A reader opens a version by
checking the blob against its CID, unwrapping with one of its keys, decrypting
and checking the commitment, so a wrapped key, blob or commitment moved to
another record, version or reader never opens, and a wrong key is never taken
for the right one.

Exception tree (all ``EhrError``s with a ``code``)::

    RecordError
    ├── RecordIntegrityError   blob and CID, AAD or commitment do not match
    ├── NotAReader             none of the reader's keys unwraps the data key
    └── InvalidDocument        document bytes that are not the stated media type
    (InvalidFhir, in ehr.fhir, for FHIR content)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ehrchain.core import encoding
from ehrchain.core.cid import BlobCorrupt, InvalidCid, check_cid, cid_of
from ehrchain.core.types import Address
from ehrchain.crypto import envelope, hpke
from ehrchain.crypto.errors import CryptoError, DecryptionError
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.ehr.errors import EhrError
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE, FhirInfo, validate_fhir
from ehrchain.ehr.values import CATEGORIES, RECORD_KINDS

BLOB_DOMAIN: Final = "ehrchain/blob/v1"
WRAP_DOMAIN: Final = "ehrchain/wrap/v1"
FIRST_VERSION: Final = 1
MAX_DOCUMENT_SIZE: Final = 16 * 1024 * 1024

DOCUMENT_MAGIC: Final[Mapping[str, tuple[bytes, ...]]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
"""The signature every file of the media type starts with (PDF 1.7 §7.5.2, PNG §5.2, JFIF SOI)."""


class RecordError(EhrError):
    """Base of the errors of sealing and opening record versions."""

    code = "record_error"


class RecordIntegrityError(RecordError):
    """The blob does not match its CID, its binding or the committed plaintext."""

    code = "record_integrity"


class NotAReader(RecordError):
    """No key of this reader unwraps the version's data key."""

    code = "not_a_reader"


class InvalidDocument(RecordError):
    """The document is empty, too large, or not of its stated media type."""

    code = "invalid_document"


def blob_aad(chain_id: str, record_id: str, version: int) -> bytes:
    """AAD of a version's blob: a blob moved to another record or version fails to open."""
    return encoding.encode([BLOB_DOMAIN, chain_id, record_id, version])


def wrap_info(chain_id: str, record_id: str, version: int, reader: str) -> bytes:
    """HPKE ``info`` of a wrapped data key, binding it to one version and one reader."""
    return encoding.encode([WRAP_DOMAIN, chain_id, record_id, version, reader])


@dataclass(frozen=True, slots=True)
class SealedVersion:
    """One encrypted record version, ready to upload (``blob``) and announce (``payload``).

    ``size`` is the blob's length, which the node checks on upload;
    ``fhir_version`` is a version number ("4.0.1"); for documents
    ``resource_type`` and ``fhir_version`` are empty strings.
    """

    record_id: str
    version: int
    blob: bytes = field(repr=False)
    cid: str
    commitment: bytes
    size: int
    media_type: str
    fhir_version: str
    resource_type: str
    category: str
    kind: str
    wrapped: Mapping[str, bytes] = field(repr=False)

    def payload(self, epoch: int, patient: str | None = None) -> dict[str, Any]:
        """The ``record.create`` payload, or ``record.amend`` (with ``version``) after the first.

        ``patient`` names the patient when a provider writes for one; a patient
        writing their own record leaves it out.
        """
        body: dict[str, Any] = {
            "record_id": self.record_id,
            "category": self.category,
            "kind": self.kind,
            "resource_type": self.resource_type,
            "media_type": self.media_type,
            "fhir_version": self.fhir_version,
            "cid": self.cid,
            "size": self.size,
            "commitment": self.commitment,
            "epoch": epoch,
            "wrapped": dict(self.wrapped),
        }
        if self.version > FIRST_VERSION:
            body["version"] = self.version
        if patient is not None:
            body["patient"] = patient
        return body


def seal_version(
    *,
    chain_id: str,
    record_id: str,
    version: int,
    content: bytes,
    kind: str,
    media_type: str,
    fhir_version: str,
    resource_type: str,
    category: str,
    readers: Mapping[Address, bytes] | Mapping[str, bytes],
) -> SealedVersion:
    """Encrypt ``content`` under a fresh data key and wrap that key for every reader.

    ``readers`` maps each reader's address to its current X25519 public key.
    """
    if kind not in RECORD_KINDS:
        raise RecordError(f"record kind must be one of {RECORD_KINDS}")
    if category not in CATEGORIES:
        raise RecordError("category is not in the category vocabulary")
    if version < FIRST_VERSION:
        raise RecordError(f"versions start at {FIRST_VERSION}")
    if not readers:
        raise RecordError("a version needs at least one reader")
    data_key = envelope.new_data_key()
    blob = envelope.seal(data_key, content, blob_aad(chain_id, record_id, version))
    wrapped: dict[str, bytes] = {
        reader: hpke.wrap(public_key, data_key, wrap_info(chain_id, record_id, version, reader))
        for reader, public_key in sorted(readers.items())
    }
    return SealedVersion(
        record_id=record_id,
        version=version,
        blob=blob,
        cid=cid_of(blob),
        commitment=envelope.commitment(data_key, content),
        size=len(blob),
        media_type=media_type,
        fhir_version=fhir_version,
        resource_type=resource_type,
        category=category,
        kind=kind,
        wrapped=MappingProxyType(wrapped),
    )


def unwrap_data_key(
    *,
    chain_id: str,
    record_id: str,
    version: int,
    wrapped_key: bytes,
    reader_address: str,
    keys: Sequence[EncryptionKey],
) -> bytes:
    """The data key, unwrapped with the first of the reader's keys that opens it.

    A reader passes its current key and the ones it rotated away from, so
    versions written before a ``key.rotate`` stay readable.
    """
    info = wrap_info(chain_id, record_id, version, reader_address)
    for key in keys:
        try:
            return hpke.unwrap(key, wrapped_key, info)
        except CryptoError:
            continue
    raise NotAReader(f"no key of {reader_address} unwraps {record_id} version {version}")


def open_version(
    *,
    chain_id: str,
    record_id: str,
    version: int,
    blob: bytes,
    cid: str,
    commitment: bytes,
    wrapped_key: bytes,
    reader_address: str,
    keys: Sequence[EncryptionKey],
) -> bytes:
    """Check, unwrap, decrypt and check again; return the plaintext exactly as written.

    1. the blob is the one the chain names (CID);
    2. one of the reader's keys unwraps the data key bound to this version and reader;
    3. the blob opens under that key with this version's AAD;
    4. the plaintext matches the on-chain commitment (GCM alone is not key-committing).
    """
    try:
        check_cid(cid, blob)
    except (BlobCorrupt, InvalidCid):
        raise RecordIntegrityError(f"blob of {record_id} version {version} fails its CID") from None
    data_key = unwrap_data_key(
        chain_id=chain_id,
        record_id=record_id,
        version=version,
        wrapped_key=wrapped_key,
        reader_address=reader_address,
        keys=keys,
    )
    try:
        plaintext = envelope.open_sealed(data_key, blob, blob_aad(chain_id, record_id, version))
    except DecryptionError:
        raise RecordIntegrityError(f"blob of {record_id} version {version} does not open") from None
    try:
        envelope.check_commitment(data_key, plaintext, commitment)
    except DecryptionError:
        raise RecordIntegrityError(
            f"plaintext of {record_id} version {version} fails its commitment"
        ) from None
    return plaintext


def rewrap(
    *,
    chain_id: str,
    record_id: str,
    version: int,
    wrapped_key: bytes,
    holder_address: str,
    holder_keys: Sequence[EncryptionKey],
    grantee_address: str,
    grantee_public_key: bytes,
) -> bytes:
    """Unwrap a version's data key as its holder and wrap it for a grantee.

    Used for grants, delegation and break-glass: the holder (patient or
    custodian) already reads the version; the grantee's copy is bound to the
    grantee's address.
    """
    data_key = unwrap_data_key(
        chain_id=chain_id,
        record_id=record_id,
        version=version,
        wrapped_key=wrapped_key,
        reader_address=holder_address,
        keys=holder_keys,
    )
    info = wrap_info(chain_id, record_id, version, grantee_address)
    return hpke.wrap(grantee_public_key, data_key, info)


def prepare_fhir(json_bytes: bytes, fhir_version: str) -> tuple[bytes, FhirInfo]:
    """Validate FHIR JSON; the content to seal is the very bytes given, so reads return them."""
    info = validate_fhir(json_bytes, fhir_version)
    return bytes(json_bytes), info


def prepare_document(data: bytes, media_type: str) -> bytes:
    """Check a PDF, PNG or JPEG by size and leading signature; return its bytes unchanged."""
    signatures = DOCUMENT_MAGIC.get(media_type)
    if signatures is None:
        raise InvalidDocument(f"media type must be one of {tuple(DOCUMENT_MAGIC)}")
    if not data:
        raise InvalidDocument("document is empty")
    if len(data) > MAX_DOCUMENT_SIZE:
        raise InvalidDocument(f"document exceeds {MAX_DOCUMENT_SIZE} bytes")
    if not data.startswith(signatures):
        raise InvalidDocument(f"document does not start with the {media_type} signature")
    return bytes(data)


__all__ = [
    "BLOB_DOMAIN",
    "DOCUMENT_MAGIC",
    "FHIR_MEDIA_TYPE",
    "FIRST_VERSION",
    "MAX_DOCUMENT_SIZE",
    "WRAP_DOMAIN",
    "InvalidDocument",
    "NotAReader",
    "RecordError",
    "RecordIntegrityError",
    "SealedVersion",
    "blob_aad",
    "open_version",
    "prepare_document",
    "prepare_fhir",
    "rewrap",
    "seal_version",
    "unwrap_data_key",
    "wrap_info",
]
