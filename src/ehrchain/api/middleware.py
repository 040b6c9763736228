"""ASGI middleware: body size limit, catch-all error responses, access log and counts.

Plain ASGI rather than ``BaseHTTPMiddleware`` so a body is counted as it
arrives: a request is refused by its Content-Length before any of it is read,
and a body without one is cut off at the first chunk past the limit. The
access log records the route *template* (``/v1/records/{record_id}``), never
the raw URL or query string, and never a body. Node-to-node traffic that
succeeds (``/p2p/``, ``/consensus/``, ``/add_block``, ``/register_node``: dozens
of requests per block) is logged at DEBUG; it is still counted in the
metrics, and a refused one is logged at INFO like any other request.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ehrchain.api.errors import BodyTooLarge, MalformedRequest, error_response

__all__ = ["AccessLogMiddleware", "BodyLimitMiddleware", "CatchAllMiddleware", "HttpCounts"]

access_logger = logging.getLogger("ehrchain.api.access")
UNMATCHED: Final = "<unmatched>"
PEER_PREFIXES: Final = ("/p2p/", "/consensus/", "/add_block", "/register_node")


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413 before reading them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_error(scope, send, BodyTooLarge(f"body exceeds {self.max_bytes} bytes"))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(f"body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit():
                raise MalformedRequest("Content-Length is not a number")
            return int(text)
    return None


async def _send_error(scope: Scope, send: Send, exc: BaseException) -> None:
    response = error_response(exc)
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class CatchAllMiddleware:
    """Turn any exception a route lets escape into the mapped JSON error response.

    Registered as middleware rather than as an ``Exception`` handler because
    Starlette re-raises exceptions given to such a handler, and the server would
    then log the traceback (and the exception's message) for every bad request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                access_logger.error(
                    "error after response started", extra={"exc_type": type(exc).__name__}
                )
                return
            await _send_error(scope, send, exc)


@dataclass
class HttpCounts:
    """Requests served, by method, route template and status (for /metrics)."""

    counts: Counter[tuple[str, str, int]] = field(default_factory=Counter)


class AccessLogMiddleware:
    """One structured log line per request: method, route template, status, duration."""

    def __init__(self, app: ASGIApp, counts: HttpCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.counts.counts[(method, template, status)] += 1
            quiet = status < 400 and template.startswith(PEER_PREFIXES)
            level = logging.DEBUG if quiet else logging.INFO
            if access_logger.isEnabledFor(level):
                access_logger.log(
                    level,
                    "request",
                    extra={
                        "method": method,
                        "path": template,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    },
                )
