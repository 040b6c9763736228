"""Typed operations: one route per operation, each taking a signed transaction.

A route accepts only the transaction kinds that belong to it, so a client that
posts a grant to the revocation route gets 400 instead of a surprise. The
transaction itself is exactly what the client signed; the route never builds or
alters one. ``/v1/records/read`` returns what the read unlocks, and
``/v1/blobs`` stores an already-encrypted blob (there is deliberately no
``GET /v1/blobs/{cid}``: blobs are served only through signed reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehrchain.api import bodies
from ehrchain.api.errors import MalformedRequest, WrongKind
from ehrchain.api.schemas import b64url_encode, json_response, jsonable
from ehrchain.api.submit import ERROR_RESPONSES, submit_and_answer, tx_body_doc
from ehrchain.core import tx as txmod
from ehrchain.node.service import NodeService

__all__ = ["OPERATIONS", "RECORD_ID_PATTERN", "ops_router"]

RECORD_ID_PATTERN: Final = r"^r[0-9a-f]{32}$"

OPERATIONS: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    "/v1/hospitals": (("hospital.admit",), "Admit a hospital and its admin"),
    "/v1/validators": (("validator.add", "validator.remove"), "Add or remove a validator"),
    "/v1/patients": (("patient.register",), "Register a patient"),
    "/v1/providers": (("provider.register",), "Register a provider with a licence number"),
    "/v1/providers/verify": (("provider.verify",), "Verify a provider (validators)"),
    "/v1/keys/rotate": (("key.rotate",), "Rotate the sender's signing and encryption keys"),
    "/v1/consents": (
        ("consent.authorise", "consent.withdraw"),
        "Authorise a provider to create records, or withdraw it",
    ),
    "/v1/access/requests": (
        ("access.request", "access.deny"),
        "Request access to a patient's records, or deny a request",
    ),
    "/v1/access/grants": (("access.grant",), "Grant access, re-wrapping keys for the grantee"),
    "/v1/access/revocations": (("access.revoke",), "Revoke a grant (the key epoch moves on)"),
    "/v1/delegations": (("delegate.add", "delegate.remove"), "Add or remove a caregiver"),
    "/v1/break-glass": (("access.break_glass",), "Emergency access with a wrapped reason"),
    "/v1/keys/rewrap": (("keys.rewrap",), "Custodian re-wraps keys for an emergency grantee"),
    "/v1/records": (("record.create",), "Create a record (first version)"),
}
"""Route -> (accepted kinds, summary) of every plain typed operation."""

_WAIT = Query(0, ge=0, le=30, description="seconds to wait for the block that commits it")


def _checked(data: bytes, kinds: tuple[str, ...]) -> txmod.Transaction:
    tx = txmod.from_bytes(data)
    if tx.kind not in kinds:
        raise WrongKind(f"this route takes {list(kinds)}, not {tx.kind!r}")
    return tx


def ops_router(service: NodeService) -> APIRouter:
    """The typed write routes, bound to ``service``."""
    router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)
    for path, (kinds, summary) in OPERATIONS.items():
        _add_operation(router, service, path, kinds, summary)

    @router.post(
        "/v1/records/{record_id}/versions",
        status_code=202,
        summary="Amend a record with a new version",
        openapi_extra=tx_body_doc(("record.amend",)),
    )
    async def amend(
        request: Request,
        record_id: str = Path(pattern=RECORD_ID_PATTERN),
        wait: float = _WAIT,
    ) -> Response:
        data = await bodies.tx_bytes(request)
        tx = _checked(data, ("record.amend",))
        if tx.payload.get("record_id") != record_id:
            raise MalformedRequest("payload record_id does not match the path")
        return await submit_and_answer(service, data, tx.kind, wait)

    @router.post(
        "/v1/records/read",
        summary="Read a record version: the signed read is the audit event",
        openapi_extra=tx_body_doc(("record.read",)),
        responses={200: {"content": _READ_RESULT}},
    )
    async def read(request: Request) -> Response:
        data = await bodies.tx_bytes(request)
        tx = _checked(data, ("record.read",))
        result = await run_in_threadpool(service.read, data)
        return json_response(_read_view(tx, result))

    @router.post(
        "/v1/blobs",
        status_code=201,
        summary="Store an encrypted blob; returns its CIDv1",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    async def put_blob(request: Request) -> Response:
        data = await bodies.blob_bytes(request)
        cid = await run_in_threadpool(service.put_blob, data)
        return json_response({"cid": cid, "size": len(data)}, 201)

    @router.post(
        "/v1/blobs/batch",
        status_code=201,
        summary="Store many encrypted blobs (a canonical CBOR list of byte strings)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/cbor": {"schema": {"type": "string"}}},
            }
        },
    )
    async def put_blobs(request: Request) -> Response:
        items = await bodies.blob_batch(request)
        cids = await run_in_threadpool(service.put_blobs, items)
        return json_response({"cids": cids}, 201)

    return router


_READ_RESULT: Final = {"application/json": {"schema": {"$ref": "#/components/schemas/ReadResult"}}}


def _add_operation(
    router: APIRouter, service: NodeService, path: str, kinds: tuple[str, ...], summary: str
) -> None:
    async def operation(request: Request, wait: float = _WAIT) -> Response:
        data = await bodies.tx_bytes(request)
        tx = _checked(data, kinds)
        return await submit_and_answer(service, data, tx.kind, wait)

    router.add_api_route(
        path,
        operation,
        methods=["POST"],
        status_code=202,
        summary=summary,
        name=path.removeprefix("/v1/").replace("/", "_").replace("-", "_"),
        openapi_extra=tx_body_doc(kinds),
    )


def _read_view(tx: txmod.Transaction, result: Mapping[str, Any]) -> dict[str, Any]:
    """The read result with the blob and wrapped key as base64url, other bytes hex."""
    view = {k: jsonable(v) for k, v in result.items() if k not in ("blob", "wrapped_key")}
    view.setdefault("record_id", tx.payload.get("record_id"))
    view.setdefault("version", tx.payload.get("version"))
    view["blob"] = b64url_encode(bytes(result["blob"]))
    view["wrapped_key"] = b64url_encode(bytes(result["wrapped_key"]))
    return view
