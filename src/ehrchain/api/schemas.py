"""Wire schemas of the REST API: envelopes, payload documentation, JSON views.

Signed transactions travel as their canonical CBOR bytes, either raw
(``application/cbor``) or base64url inside a small JSON envelope. The node only
ever sees those bytes, so the pydantic models of the decoded payloads below
exist for the OpenAPI document; requests are not parsed through them, which
keeps a batch of thousands of transactions free of per-item model objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.responses import Response

from ehrchain.api.errors import MalformedRequest
from ehrchain.core import tx as txmod
from ehrchain.core.block import Block
from ehrchain.storage.rows import ChainHead

__all__ = [
    "DOC_MODELS",
    "KIND_PAYLOADS",
    "b64url_decode",
    "b64url_encode",
    "block_json",
    "head_json",
    "json_response",
    "jsonable",
    "openapi_components",
    "tx_json",
]

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, name: str = "value") -> bytes:
    """Strict base64url (padding optional); anything else is a MalformedRequest."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise MalformedRequest(f"{name} must be a base64url string")
    body = text.rstrip("=")
    if len(body) % 4 == 1:
        raise MalformedRequest(f"{name} is not valid base64url")
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MalformedRequest(f"{name} is not valid base64url") from None


def jsonable(value: Any) -> Any:
    """Service values as JSON: bytes become hex, tuples become lists."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def json_response(data: Any, status: int = 200) -> Response:
    """A compact JSON response, without FastAPI's generic encoder pass."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json")


def tx_json(tx: txmod.Transaction) -> dict[str, Any]:
    return txmod.to_json(tx)


def head_json(head: ChainHead) -> dict[str, Any]:
    return {
        "height": head.height,
        "hash": head.hash.hex(),
        "state_root": head.state_root.hex(),
        "timestamp_ms": head.timestamp_ms,
    }


def block_json(block: Block, *, full: bool = True) -> dict[str, Any]:
    """A block with hex hashes; ``full`` lists whole transactions, else their ids."""
    h = block.header
    view: dict[str, Any] = {
        "hash": block.hash.hex(),
        "height": h.height,
        "header": {
            "magic": h.magic,
            "version": h.version,
            "chain_id": h.chain_id,
            "size": h.size,
            "height": h.height,
            "prev_hash": h.prev_hash.hex(),
            "tx_root": h.tx_root.hex(),
            "timestamp_ms": h.timestamp_ms,
            "target": h.target,
            "nonce": h.nonce,
            "state_root": h.state_root.hex(),
            "proposer": h.proposer,
        },
        "certificate": {
            "round": block.certificate.round,
            "votes": [
                {"validator": v.validator, "signature": v.signature.hex()}
                for v in block.certificate.votes
            ],
        },
        "tx_count": len(block.txs),
    }
    if full:
        view["txs"] = [txmod.to_json(t) for t in block.txs]
    else:
        view["tx_ids"] = [t.tx_id.hex() for t in block.txs]
    return view


# -- envelopes -----------------------------------------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TxEnvelope(_Doc):
    """One signed transaction: base64url of its canonical CBOR wire bytes."""

    tx: str = Field(description="base64url (padding optional) of the transaction's wire bytes")


class TxBatchEnvelope(_Doc):
    """Many signed transactions; each is admitted or rejected on its own."""

    txs: list[str] = Field(description="base64url wire bytes of each transaction")


class BlockEnvelope(_Doc):
    """One block: base64url of its canonical CBOR bytes."""

    block: str


class UrlBody(_Doc):
    """A peer node's base URL."""

    url: str = Field(max_length=2048, examples=["http://127.0.0.1:8001"])


class Submitted(_Doc):
    """A transaction the node admitted; ``height`` is set once it is committed."""

    tx_id: str
    kind: str
    status: str = Field(description="pending or committed")
    height: int | None = None
    index: int | None = None


class ErrorDetail(_Doc):
    code: str
    message: str


class BatchItem(_Doc):
    """Either ``tx_id``, or the ``status`` and ``error`` the item alone would have got."""

    tx_id: str | None = None
    status: int | None = None
    error: ErrorDetail | None = None


class BatchResult(_Doc):
    accepted: int
    rejected: int
    results: list[BatchItem]


class ErrorBody(_Doc):
    """The body of every error response."""

    error: ErrorDetail


class ReadResult(_Doc):
    """What a committed-to-the-mempool ``record.read`` unlocks for its signer."""

    record_id: str
    version: int
    cid: str
    commitment: str = Field(description="hex HMAC-SHA256(data key, plaintext)")
    blob: str = Field(description="base64url of nonce ‖ AES-256-GCM ciphertext")
    wrapped_key: str = Field(description="base64url of the HPKE-wrapped data key")
    tx_id: str


# -- payloads of each kind (documentation only) -----------------------------------

_BYTES = "a CBOR byte string"


class KeyCard(_Doc):
    address: str
    signing_key: bytes = Field(description=f"Ed25519 public key, {_BYTES}")
    encryption_key: bytes = Field(description=f"X25519 public key, {_BYTES}")


class ScopeDoc(_Doc):
    """Exactly one of the three forms."""

    all: bool | None = None
    categories: list[str] | None = None
    records: list[str] | None = None


Rewrap = tuple[str, int, bytes]


class HospitalAdmit(_Doc):
    hospital_id: str
    name: str
    admin: KeyCard


class ValidatorChange(_Doc):
    address: str
    signing_key: bytes | None = Field(None, description="validator.add only")


class AccountRegister(_Doc):
    address: str
    signing_key: bytes
    encryption_key: bytes
    licence: str | None = Field(None, description="provider.register only (unique)")


class ProviderVerify(_Doc):
    provider: str


class KeyRotate(_Doc):
    signing_key: bytes
    encryption_key: bytes


class ProviderRef(_Doc):
    """consent.authorise, consent.withdraw and access.deny."""

    provider: str


class AccessRequest(_Doc):
    patient: str
    scope: ScopeDoc


class AccessGrant(_Doc):
    grantee: str
    scope: ScopeDoc
    expires_ms: int = Field(0, description="0 means no expiry")
    rewraps: list[Rewrap] = Field(description="[record_id, version, wrapped data key]")


class AccessRevoke(_Doc):
    grantee: str


class Delegation(_Doc):
    caregiver: str
    rewraps: list[Rewrap] | None = Field(None, description="delegate.add only")


class BreakGlass(_Doc):
    patient: str
    reason_code: str = Field(examples=["unconscious", "life-threatening", "other"])
    reason: bytes = Field(description="free-text reason, HPKE-wrapped to the patient")


class KeysRewrap(_Doc):
    patient: str
    grantee: str
    rewraps: list[Rewrap]


class RecordVersion(_Doc):
    """record.create; record.amend adds ``version`` (= latest + 1)."""

    record_id: str
    version: int | None = Field(None, description="record.amend only")
    category: str
    kind: str = Field(examples=["fhir", "document"])
    resource_type: str
    media_type: str
    fhir_version: str
    cid: str
    size: int
    commitment: bytes
    epoch: int
    wrapped: dict[str, bytes] = Field(description="reader address -> HPKE-wrapped data key")


class RecordRead(_Doc):
    record_id: str
    version: int


KIND_PAYLOADS: Final[Mapping[str, type[BaseModel]]] = {
    "hospital.admit": HospitalAdmit,
    "validator.add": ValidatorChange,
    "validator.remove": ValidatorChange,
    "patient.register": AccountRegister,
    "provider.register": AccountRegister,
    "provider.verify": ProviderVerify,
    "key.rotate": KeyRotate,
    "consent.authorise": ProviderRef,
    "consent.withdraw": ProviderRef,
    "access.request": AccessRequest,
    "access.deny": ProviderRef,
    "access.grant": AccessGrant,
    "access.revoke": AccessRevoke,
    "delegate.add": Delegation,
    "delegate.remove": Delegation,
    "access.break_glass": BreakGlass,
    "keys.rewrap": KeysRewrap,
    "record.create": RecordVersion,
    "record.amend": RecordVersion,
    "record.read": RecordRead,
}
"""The decoded payload schema of each transaction kind."""

DOC_MODELS: Final[tuple[type[BaseModel], ...]] = (
    TxEnvelope,
    TxBatchEnvelope,
    BlockEnvelope,
    UrlBody,
    Submitted,
    BatchResult,
    ErrorBody,
    ReadResult,
    *dict.fromkeys(KIND_PAYLOADS.values()),
)


def openapi_components() -> dict[str, Any]:
    """JSON schemas of every documentation model, for ``components.schemas``."""
    _, schema = models_json_schema(
        [(m, "validation") for m in DOC_MODELS], ref_template="#/components/schemas/{model}"
    )
    defs: dict[str, Any] = schema.get("$defs", {})
    return defs
