"""A node's egress proxy that the test can cut: a network partition between live processes.

Each node process is configured (``[network] proxy``) to send every request
to its peers through its own ``Egress``, an HTTP forward proxy on loopback.
``Egress.cut(ports)`` makes it refuse requests to those nodes with 502, as a
dropped link would; ``heal()`` restores them. Both halves of a partition keep
running, accept clients and talk among themselves: only links across the cut
fail, in both directions, because every node's egress is cut toward the other
side.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)


class Egress:
    """One node's forward proxy on 127.0.0.1; thread-safe ``cut``/``heal``."""

    def __init__(self) -> None:
        egress = self
        self._cut: frozenset[int] = frozenset()
        self._lock = threading.Lock()
        self.refused = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                egress._forward(self)

            def do_POST(self) -> None:
                egress._forward(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Egress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def cut(self, ports: Iterable[int]) -> None:
        with self._lock:
            self._cut = frozenset(ports)

    def heal(self) -> None:
        self.cut(())

    def _is_cut(self, port: int) -> bool:
        with self._lock:
            return port in self._cut

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        target = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        port = target.port or 80
        if target.hostname != "127.0.0.1" or self._is_cut(port):
            with self._lock:
                self.refused += 1
            _answer(handler, 502, b"partitioned")
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        path = target.path + (f"?{target.query}" if target.query else "")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(handler.command, path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            _answer(
                handler,
                answer.status,
                data,
                [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP],
            )
        except OSError:
            _answer(handler, 502, b"unreachable")
        finally:
            connection.close()


def _answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    handler.send_response(status)
    for key, value in headers:
        if key.lower() not in {"content-length", "transfer-encoding", "date", "server"}:
            handler.send_header(key, value)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
