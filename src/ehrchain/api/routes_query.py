"""Read-only queries: status, blocks, transactions and proofs, accounts, records, patients.

Everything here is metadata the ledger already holds (ids, addresses, CIDs,
wrapped keys); no query returns a blob. Handlers are plain functions, which
FastAPI runs in its thread pool, because the service takes its lock.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehrchain.api.errors import MalformedRequest, NotFound
from ehrchain.api.routes_ops import RECORD_ID_PATTERN
from ehrchain.api.routes_seed import MAX_PAGE
from ehrchain.api.schemas import b64url_encode, block_json, json_response, jsonable, tx_json
from ehrchain.api.submit import ERROR_RESPONSES
from ehrchain.core.address import parse_address
from ehrchain.core.errors import InvalidAddress
from ehrchain.core.types import Address
from ehrchain.node.service import NodeService

__all__ = ["query_router"]

HEX32: Final = r"^[0-9a-f]{64}$"
_OFFSET = Query(0, ge=0)
_LIMIT = Query(100, ge=1, le=MAX_PAGE)


def query_router(service: NodeService) -> APIRouter:
    """The GET routes under /v1, bound to ``service``."""
    router = APIRouter(tags=["queries"], responses=ERROR_RESPONSES)

    @router.get("/v1/status", summary="Chain id, head, pending count, validators, peers")
    def status() -> Response:
        return json_response(jsonable(service.status()))

    @router.get("/v1/evidence", summary="Recorded validator misbehaviour (double-signing)")
    def evidence(limit: int = _LIMIT) -> Response:
        return json_response(jsonable({"evidence": service.evidence(limit)}))

    @router.get("/v1/blocks/{height}", summary="The block at a height")
    def block(height: int = Path(ge=0), full: bool = True) -> Response:
        found = service.block(height)
        if found is None:
            raise NotFound(f"no block at height {height}")
        return json_response(block_json(found, full=full))

    @router.get("/v1/blocks/by-hash/{block_hash}", summary="The block with a hash")
    def block_by_hash(block_hash: str = Path(pattern=HEX32), full: bool = True) -> Response:
        found = service.block_by_hash(bytes.fromhex(block_hash))
        if found is None:
            raise NotFound("no block with that hash")
        return json_response(block_json(found, full=full))

    @router.get("/v1/txs/{tx_id}", summary="A committed transaction, optionally waiting for it")
    async def tx(
        tx_id: str = Path(pattern=HEX32),
        wait: float = Query(0, ge=0, le=30, description="seconds to wait for its block"),
    ) -> Response:
        raw = bytes.fromhex(tx_id)
        if wait > 0:
            found = await run_in_threadpool(service.wait_for_tx, raw, wait)
        else:
            found = await run_in_threadpool(service.tx, raw)
        if found is None:
            raise NotFound("no committed transaction with that id")
        t, height, index = found
        return json_response(
            {"status": "committed", "height": height, "index": index, "tx": tx_json(t)}
        )

    @router.get("/v1/txs/{tx_id}/proof", summary="RFC 6962 inclusion proof of a transaction")
    def tx_proof(tx_id: str = Path(pattern=HEX32)) -> Response:
        raw = bytes.fromhex(tx_id)
        found = service.tx(raw)
        if found is None:
            raise NotFound("no committed transaction with that id")
        t, height, index = found
        proof = service.tx_proof(raw)
        return json_response(
            {
                "tx_id": tx_id,
                "height": height,
                "index": index,
                "tx_bytes": b64url_encode(t.to_bytes()),
                "proof": proof.to_json(),
            }
        )

    @router.get("/v1/accounts/{address}", summary="An account's role, keys and status")
    def account(address: str) -> Response:
        found = service.account(_address(address))
        if found is None:
            raise NotFound("no account with that address")
        return json_response(jsonable(found))

    @router.get("/v1/accounts/{address}/nonce", summary="The account's next nonce (pending-aware)")
    def nonce(address: str) -> Response:
        parsed = _address(address)
        return json_response({"address": parsed, "next_nonce": service.next_nonce(parsed)})

    @router.get("/v1/records/{record_id}", summary="A record's metadata")
    def record(record_id: str = Path(pattern=RECORD_ID_PATTERN)) -> Response:
        found = service.record(record_id)
        if found is None:
            raise NotFound("no record with that id")
        return json_response(jsonable(found))

    @router.get("/v1/records/{record_id}/versions/{number}", summary="A version's metadata")
    def version(
        record_id: str = Path(pattern=RECORD_ID_PATTERN), number: int = Path(ge=0)
    ) -> Response:
        found = service.version(record_id, number)
        if found is None:
            raise NotFound("no such version of that record")
        return json_response(jsonable(found))

    @router.get("/v1/patients/{address}/records", summary="A patient's records, paged")
    def patient_records(address: str, offset: int = _OFFSET, limit: int = _LIMIT) -> Response:
        patient = _address(address)
        items = service.patient_records(patient, offset, limit)
        return json_response({"offset": offset, "items": jsonable(items)})

    @router.get("/v1/patients/{address}/history", summary="Who did what to a patient's file")
    def history(address: str, offset: int = _OFFSET, limit: int = _LIMIT) -> Response:
        patient = _address(address)
        items = service.history(patient, offset, limit)
        return json_response({"offset": offset, "items": jsonable(items)})

    @router.get("/v1/patients/{address}/requests", summary="Access requests to a patient")
    def requests(address: str) -> Response:
        items = service.access_requests(_address(address))
        return json_response({"items": jsonable(items)})

    @router.get("/v1/patients/{address}/grants", summary="Grants a patient has given")
    def grants(address: str) -> Response:
        items = service.grants(_address(address))
        return json_response({"items": jsonable(items)})

    @router.get(
        "/v1/patients/{address}/readers",
        summary="The exact readers a new version must be wrapped for, and the key epoch",
    )
    def readers(
        address: str,
        category: str = Query(max_length=64),
        author: str = Query(max_length=90),
        record_id: str | None = Query(None, pattern=RECORD_ID_PATTERN),
    ) -> Response:
        patient = _address(address)
        keys = service.readers(patient, record_id, category, _address(author))
        return json_response(
            {
                "patient": patient,
                "epoch": service.epoch(patient),
                "readers": {a: k.hex() for a, k in sorted(keys.items())},
            }
        )

    return router


def _address(text: str) -> Address:
    """A path or query address; the error names the rule, never the text sent."""
    try:
        return parse_address(text)
    except InvalidAddress:
        raise MalformedRequest("not a valid ehr1 address (Bech32, lower case)") from None
