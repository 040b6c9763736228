"""Node-to-node HTTP: the peer-signature gate and the routes only peers use.

``PeerAuthMiddleware`` sits in front of the whole app and lets a request to a
node-to-node route through only if it carries the signature of an admitted
node (``node.peers``): seed 003's ``/register_node`` and ``/add_block``, and
everything under ``/p2p/`` and ``/consensus/``. Client routes (including
``/register_with``, which makes this node reach out, and ``/new_transaction``,
whose transactions carry their own signatures) stay open.

Routes under ``/p2p/``: pages of whole blocks in their canonical encoding (what
catch-up verifies), a blob by CID (blobs are otherwise served only against a
signed read), pushed blobs and forwarded transactions, and ``/p2p/stream``: a
WebSocket a peer opens with a signed handshake (checked here like any request)
and then sends consensus messages, forwarded transactions and blocks on, one
frame per batch (``peer_client.PeerStream``), with no answer per batch.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Path, Query, Request, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect

from ehrchain.api import bodies
from ehrchain.api.errors import problem_for
from ehrchain.api.schemas import json_response
from ehrchain.core import encoding
from ehrchain.core.errors import EncodingError
from ehrchain.crypto.keystore import Identity
from ehrchain.node.bft_driver import consensus_router, deliver_batch
from ehrchain.node.errors import Unavailable
from ehrchain.node.intake import PeerIntake
from ehrchain.node.networked import NetworkedService
from ehrchain.node.p2p import P2P, NetworkSettings, load_network_settings
from ehrchain.node.peer_client import BLOCK_FRAME, CONSENSUS_FRAME, TXS_FRAME
from ehrchain.node.peers import PEER_HEADER, PeerRefused, RequestChecker
from ehrchain.node.pow_driver import pow_router

__all__ = [
    "PROTECTED_PATHS",
    "PROTECTED_PREFIXES",
    "PeerAuthMiddleware",
    "mount_network",
    "p2p_router",
]

PROTECTED_PATHS: Final = frozenset({"/register_node", "/add_block"})
PROTECTED_PREFIXES: Final = ("/p2p/", "/consensus/")
STREAM_FRAMES: Final = {k.encode(): k for k in (CONSENSUS_FRAME, TXS_FRAME, BLOCK_FRAME)}
"""A frame's first item (bytes) -> its kind."""
POLICY_VIOLATION: Final = 1008
"""WebSocket close code for a refused handshake or a frame that is not a batch."""
Deliver = Callable[[Sequence[bytes]], None]
MAX_PAGE_BLOCKS: Final = 100
MAX_PAGE_BYTES: Final = 16 * 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_protected(path: str) -> bool:
    return path in PROTECTED_PATHS or path.startswith(PROTECTED_PREFIXES)


class PeerAuthMiddleware:
    """Refuse node-to-node requests not signed by an admitted node (403/401).

    The sender's admission and timestamp are checked from the header first, so
    a stranger cannot make the node read a body; then the body is read (bounded
    by ``max_body_bytes``), because the signature covers its hash, and replayed
    unchanged to the app. The admitted sender's
    address is left in ``scope["state"]["peer"]``.
    """

    def __init__(self, app: App, checker: RequestChecker, max_body_bytes: int) -> None:
        self.app = app
        self.checker = checker
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = _header(scope, PEER_HEADER)
        if scope["type"] == "websocket":
            await self._stream(scope, receive, send, header)
            return
        # Both checks run on the event loop: the sender's key comes from memory
        # (read from state once per head), and one Ed25519 verification is tens of
        # microseconds, less than handing the request to a worker thread and back.
        try:
            self.checker.precheck(header)
        except PeerRefused as exc:
            await _refuse(send, exc.status, exc.code, str(exc))
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await _refuse(send, 413, "too_large", "request body too large")
            return
        try:
            peer = self.checker.check(header, scope["method"], _target(scope), body)
        except PeerRefused as exc:
            await _refuse(send, exc.status, exc.code, str(exc))
            return
        scope.setdefault("state", {})["peer"] = peer
        await self.app(scope, _replay(body), send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send, header: str | None) -> None:
        """A WebSocket handshake is a GET with no body: checked the same way, and
        closed before it is accepted (HTTP 403 to the peer) when refused."""
        try:
            peer = self.checker.check(header, "GET", _target(scope), b"")
        except PeerRefused as exc:
            await send({"type": "websocket.close", "code": POLICY_VIOLATION, "reason": exc.code})
            return
        scope.setdefault("state", {})["peer"] = peer
        await self.app(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _target(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def p2p_router(service: NetworkedService, intake: PeerIntake, consensus: Deliver) -> APIRouter:
    """The ``/p2p/`` routes, bound to ``service``; callers are admitted nodes only.
    ``consensus`` takes the consensus messages of a stream frame."""
    router = APIRouter(prefix="/p2p", tags=["node-to-node"])

    def queue_txs(items: Sequence[bytes]) -> None:
        if service.is_lagging():
            raise Unavailable("this node is catching up; its peers hold these transactions")
        if not intake.offer(items):
            raise Unavailable("this node's queue of gossiped transactions is full")

    @router.get("/blocks", summary="Whole blocks in canonical encoding, oldest first")
    def blocks(
        start: int = Query(0, ge=0), limit: int = Query(MAX_PAGE_BLOCKS, ge=1, le=MAX_PAGE_BLOCKS)
    ) -> Response:
        out: list[bytes] = []
        size = 0
        for block in service.blocks(start, limit):
            data = block.to_bytes()
            if out and size + len(data) > MAX_PAGE_BYTES:
                break
            out.append(data)
            size += len(data)
        return Response(encoding.encode(out), media_type=bodies.CBOR)

    @router.get("/blobs/{cid}", summary="An encrypted blob by CIDv1 (peers only)")
    def blob(cid: str = Path(min_length=8, max_length=128)) -> Response:
        return Response(service.blobs.get(cid), media_type=bodies.OCTET_STREAM)

    @router.post("/blobs", summary="Store a blob a peer replicates here")
    async def put_blob(request: Request) -> Response:
        data = await bodies.blob_bytes(request)
        cid = await run_in_threadpool(service.store_peer_blob, data)
        return json_response({"cid": cid}, 201)

    @router.post(
        "/txs", status_code=202, summary="Signed transactions a peer forwards (queued, see intake)"
    )
    async def txs(request: Request) -> Response:
        items = await bodies.batch_items(request)
        queue_txs(items)
        return json_response({"queued": len(items)}, 202)

    @router.websocket("/stream")
    async def stream(socket: WebSocket) -> None:
        """Frames from a peer until it closes: each a canonical CBOR list of byte
        strings, ``consensus``, ``txs`` or ``block`` and then the batch (one block).
        Each is handled as its request would be (``/consensus/messages``,
        ``/p2p/txs``, ``/add_block``); one refused there (a full queue, a node
        catching up, a block it has) is dropped, as the sender drops a refused
        request. A frame that is not a batch ends the stream."""
        await socket.accept()
        try:
            while True:
                frame = (await socket.receive()).get("bytes")
                try:
                    head, *items = encoding.decode_byte_strings(frame or b"")
                    kind = STREAM_FRAMES.get(head)
                    if kind is None or not items:
                        raise EncodingError("not a batch")
                except (EncodingError, ValueError):
                    await socket.close(POLICY_VIOLATION, "a frame is a kind and a batch")
                    return
                try:
                    if kind == CONSENSUS_FRAME:
                        consensus(items)
                    elif kind == TXS_FRAME:
                        bodies.check_batch_size(len(items))
                        queue_txs(items)
                    else:
                        for block in items:
                            await run_in_threadpool(service.add_block, block)
                except Exception as exc:  # refused as its request would be; logged if 5xx
                    problem_for(exc)
        except WebSocketDisconnect:
            return

    return router


def mount_network(
    app: FastAPI, service: NetworkedService, identity: Identity
) -> tuple[P2P, NetworkSettings]:
    """Give the node its peers: the ``/p2p/`` routes, the signature gate, and the
    started gossip and catch-up threads (stop them with ``P2P.stop``)."""
    net = load_network_settings(service.settings)
    p2p = P2P(service, identity, net)
    routes = app.router.routes
    before = len(routes)
    app.include_router(
        p2p_router(service, p2p.intake, lambda items: deliver_batch(p2p.driver, items))
    )
    app.include_router(consensus_router(lambda: p2p.driver))
    app.include_router(pow_router(lambda: p2p.pow))
    # Matched first: node-to-node requests are most of what a node serves, and
    # routes are tried in order.
    routes[:] = routes[before:] + routes[:before]
    app.add_middleware(
        PeerAuthMiddleware, checker=p2p.checker, max_body_bytes=service.settings.max_body_bytes
    )
    p2p.start()
    return p2p, net
