"""The FastAPI application around one node service.

The app holds no state of its own beyond request counts: every route is bound
to the service passed in, so tests and the node process build it the same way.
Middleware, outermost first: access log, catch-all error mapping, body limit.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import ehrchain
from ehrchain.api.errors import install_error_handlers
from ehrchain.api.middleware import (
    AccessLogMiddleware,
    BodyLimitMiddleware,
    CatchAllMiddleware,
    HttpCounts,
)
from ehrchain.api.routes_ops import ops_router
from ehrchain.api.routes_query import query_router
from ehrchain.api.routes_seed import seed_router
from ehrchain.api.routes_system import system_router
from ehrchain.api.schemas import openapi_components
from ehrchain.node.service import NodeService

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

DEFAULT_MAX_BODY_BYTES: Final = 48 * 1024 * 1024

_DESCRIPTION: Final = """\
REST API of an ehrchain node. Transactions are built, encrypted and signed by
clients and sent as canonical CBOR (`application/cbor`), or base64url inside
`{"tx": ...}` JSON. Errors are `{"error": {"code", "message"}}`: 400 malformed,
401 bad signature, 403 not allowed, 404 not found, 409 replay or stale state,
413 too large, 415 wrong media type, 422 wrong shape.
"""


def create_app(service: NodeService, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """Build the API for ``service``; bodies over ``max_body_bytes`` get 413."""
    app = FastAPI(
        title="ehrchain",
        version=ehrchain.__version__,
        description=_DESCRIPTION,
    )
    http = HttpCounts()
    install_error_handlers(app)
    app.include_router(system_router(service, http))
    app.include_router(seed_router(service))
    app.include_router(ops_router(service))
    app.include_router(query_router(service))
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(AccessLogMiddleware, counts=http)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                openapi_components()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
