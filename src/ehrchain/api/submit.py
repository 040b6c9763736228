"""Submitting one signed transaction and answering for it, shared by every write route.

A submit either queues the transaction (202, ``status: pending``) or raises
the node's typed error, which the error middleware maps. With ``wait`` the
route also waits, in the thread pool, for the block that commits it and then
answers 200 with its height and index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehrchain.api.schemas import KIND_PAYLOADS, json_response
from ehrchain.node.service import NodeService

__all__ = ["ERROR_RESPONSES", "submit_and_answer", "tx_body_doc"]

_ERROR_REF: Final = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    status: {"description": text, "content": _ERROR_REF}
    for status, text in (
        (400, "malformed body, transaction or payload; wrong chain or kind"),
        (401, "the signature does not verify or is not the account's key"),
        (403, "the sender is not allowed to do this"),
        (404, "nothing under that id"),
        (409, "replayed nonce, duplicate, stale epoch or reader set"),
        (413, "body too large"),
        (415, "unsupported media type"),
        (422, "well-formed input of the wrong shape"),
    )
}


def tx_body_doc(kinds: Sequence[str]) -> dict[str, Any]:
    """OpenAPI request body of a signed-transaction route accepting ``kinds`` (all if empty)."""
    names = sorted({KIND_PAYLOADS[k].__name__ for k in kinds})
    payload: dict[str, Any] = (
        {"oneOf": [{"$ref": f"#/components/schemas/{n}"} for n in names]} if names else {}
    )
    accepted = ", ".join(f"`{k}`" for k in kinds) if kinds else "any kind"
    return {
        "requestBody": {
            "required": True,
            "description": (
                f"A transaction of {accepted}, built and signed by the client, as its "
                "canonical CBOR wire bytes. The decoded payload schema is in "
                "`x-ehrchain-payload`."
            ),
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/TxEnvelope"}},
                "application/cbor": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "x-ehrchain-kinds": list(kinds),
        "x-ehrchain-payload": payload,
    }


async def submit_and_answer(service: NodeService, data: bytes, kind: str, wait: float) -> Response:
    """Queue the transaction; optionally wait up to ``wait`` seconds for its block."""
    tx_id = await run_in_threadpool(service.submit, data)
    answer: dict[str, Any] = {"tx_id": tx_id.hex(), "kind": kind, "status": "pending"}
    if wait > 0:
        found = await run_in_threadpool(service.wait_for_tx, tx_id, wait)
        if found is not None:
            _, height, index = found
            answer.update(status="committed", height=height, index=index)
            return json_response(answer, 200)
    return json_response(answer, 202)
