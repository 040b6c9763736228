"""Errors the SDK raises on its own account.

    ClientError
    ├── TransportError              the node could not be reached or answered garbage
    ├── TxTimeout                   a transaction was not committed in time
    ├── MissingData                 the node's answer lacks something the SDK needs
    └── ApiError(status, code, message)   the node refused the request
        ├── BadRequest              400 malformed input, or a rule found it malformed
        ├── Unauthenticated         401 the signature does not prove the sender
        ├── Forbidden               403 the sender may not do this
        ├── NotFound                404
        ├── Conflict                409 replayed nonce, duplicate, stale epoch or readers
        ├── PayloadTooLarge         413
        ├── UnsupportedMediaType    415
        ├── InvalidRequest          422
        └── ServerError             5xx
            └── Unavailable         503 retry later

Errors raised while preparing data locally (invalid FHIR, a document of the
wrong type, a blob that fails its CID or commitment) are the EHR layer's own
typed errors from ``ehrchain.ehr`` and pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

__all__ = [
    "ApiError",
    "BadRequest",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "MissingData",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "TransportError",
    "TxTimeout",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "api_error",
]


class ClientError(Exception):
    """Base of every error the SDK raises itself."""


class TransportError(ClientError):
    """The node could not be reached, timed out, or sent an unreadable answer."""


class TxTimeout(ClientError):
    """A submitted transaction was not committed before the deadline.

    It may still commit later: the node keeps it in its pending pool.
    """

    def __init__(self, tx_id: bytes, waited_s: float) -> None:
        self.tx_id = tx_id
        super().__init__(f"transaction {tx_id.hex()} not committed after {waited_s:.1f}s")


class MissingData(ClientError):
    """The node's answer lacks a field the SDK needs (an older or different node)."""


class ApiError(ClientError):
    """The node answered with an error status; ``code`` is its machine-readable reason."""

    status_code: ClassVar[int] = 0

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


class BadRequest(ApiError):
    status_code = 400


class Unauthenticated(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class UnsupportedMediaType(ApiError):
    status_code = 415


class InvalidRequest(ApiError):
    status_code = 422


class ServerError(ApiError):
    status_code = 500


class Unavailable(ServerError):
    status_code = 503


_BY_STATUS: Final[Mapping[int, type[ApiError]]] = {
    cls.status_code: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidRequest,
        ServerError,
        Unavailable,
    )
}


def api_error(status: int, body: Any) -> ApiError:
    """The typed error for an error response, tolerating a body that is not ours."""
    code, message = "http_error", f"HTTP {status}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code", code))
        message = str(error.get("message", message))
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    return cls(status, code, message)
