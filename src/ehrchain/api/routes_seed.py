"""The seed-003 endpoints, keeping their names and meaning, plus the batch submit.

``/new_transaction`` takes any signed transaction, ``/mine`` seals the pending
pool now, ``/chain`` and ``/pending_tx`` are paged instead of whole dumps, and
``/register_node``, ``/register_with`` and ``/add_block`` are how nodes join
and exchange blocks. Service calls run in the thread pool: they take the node's
writer lock, which the sealer may hold while it commits a block.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehrchain.api import bodies
from ehrchain.api.errors import problem_for
from ehrchain.api.schemas import block_json, head_json, json_response, jsonable, tx_json
from ehrchain.api.submit import ERROR_RESPONSES, submit_and_answer, tx_body_doc
from ehrchain.core import tx as txmod
from ehrchain.node.service import NodeService

__all__ = ["MAX_PAGE", "seed_router"]

MAX_PAGE: Final = 500

_BATCH_DOC: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "Signed transactions, each admitted or rejected on its own.",
        "content": {
            "application/cbor": {
                "schema": {"type": "string", "format": "binary"},
                "description": "canonical encoding (0x01 ‖ CBOR) of a list of tx wire bytes",
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/TxBatchEnvelope"}},
        },
    }
}

_BLOCK_DOC: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/cbor": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/BlockEnvelope"}},
        },
    }
}

_URL_DOC: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UrlBody"}}},
    }
}


def seed_router(service: NodeService) -> APIRouter:
    """Routes of seed 003 and the batch endpoint, bound to ``service``."""
    router = APIRouter(responses=ERROR_RESPONSES)

    @router.post(
        "/new_transaction",
        status_code=202,
        tags=["seed"],
        summary="Submit one signed transaction of any kind",
        openapi_extra=tx_body_doc(()),
    )
    async def new_transaction(
        request: Request, wait: float = Query(0, ge=0, le=30, description="seconds to wait")
    ) -> Response:
        data = await bodies.tx_bytes(request)
        kind = txmod.from_bytes(data).kind
        return await submit_and_answer(service, data, kind, wait)

    @router.post(
        "/v1/transactions/batch",
        tags=["transactions"],
        summary="Submit many signed transactions in one request",
        openapi_extra=_BATCH_DOC,
    )
    async def submit_batch(request: Request) -> Response:
        items = await bodies.batch_items(request)
        results = await run_in_threadpool(service.submit_many, items)
        out: list[dict[str, Any]] = []
        accepted = 0
        for tx_id, exc in results:
            if tx_id is not None:
                accepted += 1
                out.append({"tx_id": tx_id.hex()})
            else:
                problem = problem_for(exc if exc is not None else RuntimeError())
                error = {"code": problem.code, "message": problem.message}
                out.append({"status": problem.status, "error": error})
        return json_response(
            {"accepted": accepted, "rejected": len(results) - accepted, "results": out}
        )

    @router.post("/mine", tags=["seed"], summary="Seal the pending transactions into a block now")
    async def mine() -> Response:
        block = await run_in_threadpool(service.mine)
        if block is None:
            return json_response({"block": None, "message": "no transactions to mine"})
        return json_response({"block": block_json(block, full=False)})

    @router.get("/chain", tags=["seed"], summary="A page of the chain, oldest first")
    def chain(
        start: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        full: bool = Query(True, description="whole transactions, or only their ids"),
    ) -> Response:
        length = service.head().height + 1
        blocks = service.blocks(start, limit)
        return json_response(
            {
                "length": length,
                "start": start,
                "blocks": [block_json(b, full=full) for b in blocks],
            }
        )

    @router.get("/pending_tx", tags=["seed"], summary="A page of the pending transactions")
    def pending_tx(
        offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=MAX_PAGE)
    ) -> Response:
        txs = service.pending(offset, limit)
        return json_response({"offset": offset, "txs": [tx_json(t) for t in txs]})

    @router.post(
        "/register_node",
        tags=["seed"],
        summary="Add a peer to this node's list",
        openapi_extra=_URL_DOC,
    )
    async def register_node(request: Request) -> Response:
        url = await bodies.url_body(request)
        peers = await run_in_threadpool(service.register_node, url)
        return json_response({"peers": peers})

    @router.post(
        "/register_with",
        tags=["seed"],
        summary="Register this node with a peer and sync its chain",
        openapi_extra=_URL_DOC,
    )
    async def register_with(request: Request) -> Response:
        url = await bodies.url_body(request)
        result = await run_in_threadpool(service.register_with, url)
        return json_response(jsonable(result))

    @router.post(
        "/add_block",
        tags=["seed"],
        summary="Verify a block that extends this node's head and commit it",
        openapi_extra=_BLOCK_DOC,
    )
    async def add_block(request: Request) -> Response:
        data = await bodies.block_bytes(request)
        head = await run_in_threadpool(service.add_block, data)
        return json_response(head_json(head))

    return router
