"""The block explorer: chain, block (every header field), transaction, and "verify this record".

The verify page hands the browser the raw transaction bytes, the Merkle
inclusion proof and the raw block header; ``static/verify.js`` recomputes the
leaf hash, walks the proof to the root, decodes the header to compare that
root with its ``tx_root`` and hashes the header itself (Web Crypto SHA-256),
so the check rests on the bytes, not on the node's say-so.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ehrchain.core import tx as txmod
from ehrchain.core.block import HEADER_DOMAIN, Block
from ehrchain.web.app import Web
from ehrchain.web.errors import BadForm

HEX64: Final = re.compile(r"[0-9a-f]{64}")
PAGE: Final = 20


def header_rows(block: Block) -> list[tuple[str, str]]:
    h = block.header
    return [
        ("magic", f"0x{h.magic:08x}"),
        ("version", str(h.version)),
        ("chain_id", h.chain_id),
        ("size", f"{h.size} bytes"),
        ("tx_count", str(h.tx_count)),
        ("height", str(h.height)),
        ("prev_hash", h.prev_hash.hex()),
        ("tx_root", h.tx_root.hex()),
        ("timestamp_ms", str(h.timestamp_ms)),
        ("target", str(h.target)),
        ("nonce", str(h.nonce)),
        ("state_root", h.state_root.hex()),
        ("proposer", h.proposer),
    ]


def _tx_id(value: str) -> bytes:
    text = value.strip().lower()
    if not HEX64.fullmatch(text):
        raise BadForm("transaction", "a transaction id is 64 hex digits")
    return bytes.fromhex(text)


def add_routes(router: APIRouter, web: Web) -> None:
    def block_or_404(height: int) -> Block:
        block = web.service.block(height)
        if block is None:
            raise BadForm("height", f"there is no block {height}")
        return block

    @router.get("/explorer")
    def chain(request: Request, before: int | None = None) -> Response:
        session = web.session_or_none(request)
        status = web.service.status()
        top = (
            int(status["height"]) if before is None else max(0, min(before, int(status["height"])))
        )
        start = max(0, top - PAGE + 1)
        blocks = list(reversed(web.service.blocks(start, top - start + 1)))
        return web.page(
            request,
            "explorer.html",
            session,
            status_info=status,
            blocks=blocks,
            older=start - 1 if start > 0 else None,
        )

    @router.get("/explorer/search")
    def search(q: str = "") -> Response:
        text = q.strip().lower()
        if text.isdigit():
            return RedirectResponse(f"/explorer/blocks/{int(text)}", status_code=303)
        if HEX64.fullmatch(text):
            if web.service.tx(bytes.fromhex(text)) is not None:
                return RedirectResponse(f"/explorer/tx/{text}", status_code=303)
            block = web.service.block_by_hash(bytes.fromhex(text))
            if block is not None:
                return RedirectResponse(f"/explorer/blocks/{block.header.height}", status_code=303)
        raise BadForm("search", "give a block height, a block hash or a transaction id")

    @router.get("/explorer/blocks/{height}")
    def block_page(request: Request, height: int) -> Response:
        block = block_or_404(height)
        return web.page(
            request,
            "block.html",
            web.session_or_none(request),
            block=block,
            rows=header_rows(block),
            head=int(web.service.status()["height"]),
        )

    @router.get("/explorer/tx/{tx_id}")
    def tx_page(request: Request, tx_id: str) -> Response:
        found = web.service.tx(_tx_id(tx_id))
        if found is None:
            raise BadForm("transaction", "no committed transaction has that id")
        tx, height, index = found
        view = txmod.to_json(tx)
        return web.page(
            request,
            "tx.html",
            web.session_or_none(request),
            tx=view,
            height=height,
            index=index,
            payload=json.dumps(view["payload"], indent=2),
        )

    @router.get("/explorer/verify/{tx_id}")
    def verify(request: Request, tx_id: str) -> Response:
        raw_id = _tx_id(tx_id)
        found = web.service.tx(raw_id)
        if found is None:
            raise BadForm("transaction", "no committed transaction has that id")
        tx, height, index = found
        block = block_or_404(height)
        proof = web.service.tx_proof(raw_id)
        data: dict[str, Any] = {
            "tx_id": raw_id.hex(),
            "tx_bytes": tx.to_bytes().hex(),
            "proof": proof.to_json(),
            "header_bytes": block.header.to_bytes().hex(),
            "header_domain": HEADER_DOMAIN,
            "block_hash": block.hash.hex(),
            "height": height,
        }
        return web.page(
            request,
            "verify.html",
            web.session_or_none(request),
            tx=txmod.to_json(tx),
            height=height,
            index=index,
            block=block,
            proof_json=json.dumps(data).replace("<", "\\u003c"),
        )
