"""A signed HTTP client for one peer node: the calls sync, gossip and consensus make.

Every request carries the node-key signature of ``peers.sign_request``; answers
are data to verify, never instructions: blocks go through full verification,
blobs through their content id.

``PeerStream`` is the cheap path for what a node pushes many times a second
(consensus messages, forwarded transactions, decided blocks): one WebSocket to the peer's
``/p2p/stream``, opened with the same signed header as a request, then one
binary frame per batch. A frame costs tens of microseconds at each end where a
POST costs about a millisecond of CPU (``BENCHMARKS.md``).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from ehrchain.core import encoding
from ehrchain.core.errors import CoreError
from ehrchain.crypto.keystore import Identity
from ehrchain.node.peers import sign_request

__all__ = [
    "BLOCK_FRAME",
    "CBOR",
    "CONSENSUS_FRAME",
    "STREAM_PATH",
    "TXS_FRAME",
    "ClientPool",
    "PeerClient",
    "PeerError",
    "PeerStream",
]

STREAM_PATH: Final = "/p2p/stream"
CONSENSUS_FRAME: Final = "consensus"
TXS_FRAME: Final = "txs"
BLOCK_FRAME: Final = "block"
"""The kinds of stream frame; the peer handles each as it would the request
``POST /consensus/messages``, ``POST /p2p/txs`` or ``POST /add_block``."""
STREAM_OPEN_TIMEOUT_S: Final = 3.0
STREAM_CLOSE_TIMEOUT_S: Final = 1.0
CBOR: Final = "application/cbor"
OCTET_STREAM: Final = "application/octet-stream"
JSON: Final = "application/json"


class PeerError(Exception):
    """The peer could not be reached, or answered with an error.

    ``status`` is the HTTP status (0 when there was no answer) and ``code`` the
    error code of the answer's body, when it had one.
    """

    def __init__(self, url: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{url}: {status} {code}: {message}")
        self.url = url
        self.status = status
        self.code = code


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PeerClient:
    """Requests to ``url`` signed by this node's ``identity``; thread-safe."""

    def __init__(
        self,
        url: str,
        identity: Identity,
        chain_id: str,
        *,
        timeout_s: float = 10.0,
        verify: bool | ssl.SSLContext = True,
        clock: Callable[[], int] = _wall_clock_ms,
        proxy: str = "",
    ) -> None:
        self.url = url.rstrip("/")
        self._identity = identity
        self._chain_id = chain_id
        self._clock = clock
        self._verify = verify
        self._proxy = proxy
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout_s, verify=verify, proxy=proxy or None
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        """Send one signed request; raise PeerError unless the answer is 2xx."""
        target = path + (f"?{urlencode(params)}" if params else "")
        headers = sign_request(self._identity, self._chain_id, method, target, body, self._clock())
        if content_type is not None:
            headers["content-type"] = content_type
        extra: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        try:
            answer = self._http.request(method, target, content=body, headers=headers, **extra)
        except httpx.HTTPError as exc:
            raise PeerError(self.url, 0, "unreachable", type(exc).__name__) from None
        if answer.status_code >= 300:
            code, message = _error_of(answer)
            raise PeerError(self.url, answer.status_code, code, message)
        return answer

    # -- queries -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The peer's /v1/status: chain id, height, head hash, validators, peers."""
        return dict(self.request("GET", "/v1/status").json())

    def ancestors(self, block_hash: bytes) -> list[bytes]:
        """Proof of work: the block with this hash and some of its ancestors, newest first,
        from the peer's block tree (empty if it does not hold that block)."""
        answer = self.request("GET", f"/consensus/blocks/{block_hash.hex()}")
        return self._block_list(answer)

    def blocks(self, start: int, limit: int) -> list[bytes]:
        """Up to ``limit`` canonical block encodings from height ``start``, oldest first."""
        answer = self.request("GET", "/p2p/blocks", params={"start": start, "limit": limit})
        return self._block_list(answer)

    def _block_list(self, answer: httpx.Response) -> list[bytes]:
        try:
            items = encoding.decode(answer.content)
        except CoreError:
            raise PeerError(self.url, answer.status_code, "malformed", "blocks page") from None
        if not isinstance(items, tuple) or not all(isinstance(b, bytes) for b in items):
            raise PeerError(self.url, answer.status_code, "malformed", "blocks page")
        return list(items)

    def blob(self, cid: str) -> bytes:
        """The bytes the peer holds under ``cid`` (the caller checks them against it)."""
        return self.request("GET", f"/p2p/blobs/{cid}").content

    # -- pushes --------------------------------------------------------------

    def register_node(self, own_url: str) -> list[str]:
        """Ask the peer to add this node (seed 003's /register_node); its peer list."""
        body = json.dumps({"url": own_url}).encode()
        answer = self.request("POST", "/register_node", body=body, content_type=JSON)
        peers = answer.json().get("peers", [])
        return [p for p in peers if isinstance(p, str)]

    def push_block(self, data: bytes) -> None:
        self.request("POST", "/add_block", body=data, content_type=CBOR)

    def push_txs(self, items: Sequence[bytes]) -> None:
        """Forward signed transactions (the peer queues them and admits them later)."""
        body = encoding.encode(list(items))
        self.request("POST", "/p2p/txs", body=body, content_type=CBOR)

    def push_blob(self, data: bytes) -> None:
        self.request("POST", "/p2p/blobs", body=data, content_type=OCTET_STREAM)

    def push_consensus(self, data: bytes) -> None:
        self.request("POST", "/consensus/message", body=data, content_type=CBOR, timeout_s=3.0)

    def push_consensus_batch(self, items: Sequence[bytes]) -> None:
        """Several consensus messages, in order, as one canonical CBOR list."""
        body = encoding.encode(list(items))
        self.request("POST", "/consensus/messages", body=body, content_type=CBOR, timeout_s=3.0)

    def stream(self) -> PeerStream | None:
        """A new stream to the peer, or None when this node reaches its peers through
        an HTTP proxy (which forwards requests, not streams). Raises PeerError when
        the peer cannot be reached or refuses it."""
        if self._proxy:
            return None
        headers = sign_request(
            self._identity, self._chain_id, "GET", STREAM_PATH, b"", self._clock()
        )
        secure = self.url.startswith("https://")
        # The TLS trust of this node's requests (httpx's own context for ``verify``).
        context = httpx.create_ssl_context(verify=self._verify) if secure else None
        uri = ("wss://" if secure else "ws://") + self.url.split("://", 1)[1] + STREAM_PATH
        try:
            connection = connect(
                uri,
                ssl=context,
                additional_headers=headers,
                proxy=None,
                compression=None,
                open_timeout=STREAM_OPEN_TIMEOUT_S,
                close_timeout=STREAM_CLOSE_TIMEOUT_S,
            )
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise PeerError(self.url, 0, "no_stream", type(exc).__name__) from None
        return PeerStream(self.url, connection)


def _error_of(answer: httpx.Response) -> tuple[str, str]:
    try:
        error = answer.json()["error"]
        return str(error["code"]), str(error["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return "http_error", answer.reason_phrase


class PeerStream:
    """An open stream to one peer; used by one thread at a time.

    Each ``send`` is one frame: a canonical CBOR list of byte strings, the kind
    (``CONSENSUS_FRAME``, ``TXS_FRAME`` or ``BLOCK_FRAME``) and then the items,
    handled by the peer as the matching request would be, without an answer.
    """

    def __init__(self, url: str, connection: ClientConnection) -> None:
        self.url = url
        self._connection = connection

    def send(self, kind: str, items: Sequence[bytes]) -> None:
        """Send a batch; PeerError (status 0) when the stream broke (it is then closed)."""
        try:
            self._connection.send(encoding.encode([kind.encode(), *items]))
        except (OSError, WebSocketException) as exc:
            self.close()
            raise PeerError(self.url, 0, "stream_closed", type(exc).__name__) from None

    def close(self) -> None:
        self._connection.close()


class ClientPool:
    """One ``PeerClient`` per peer URL, kept for connection reuse; thread-safe."""

    def __init__(
        self,
        identity: Identity,
        chain_id: str,
        *,
        timeout_s: float = 10.0,
        verify: bool | ssl.SSLContext = True,
        proxy: str = "",
    ) -> None:
        self._identity = identity
        self._chain_id = chain_id
        self._timeout_s = timeout_s
        self._verify = verify
        self._proxy = proxy
        self._clients: dict[str, PeerClient] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> PeerClient:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = PeerClient(
                    url,
                    self._identity,
                    self._chain_id,
                    timeout_s=self._timeout_s,
                    verify=self._verify,
                    proxy=self._proxy,
                )
                self._clients[url] = client
            return client

    def all(self, urls: Sequence[str]) -> list[PeerClient]:
        return [self.get(url) for url in urls]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
