"""The one place where exceptions become HTTP status codes and error bodies.

    ApiRequestError            raised by the API layer itself
    ├── MalformedRequest       400 bytes that do not parse (JSON, base64, CBOR)
    ├── InvalidRequest         422 parsed input of the wrong shape or type
    ├── WrongKind              400 a signed transaction sent to another kind's route
    ├── NotFound               404 nothing under that id
    ├── BodyTooLarge           413 the body exceeds the configured limit
    └── UnsupportedMediaType   415 neither JSON nor CBOR (nor octet-stream for blobs)

Every error body is ``{"error": {"code": ..., "message": ...}}``. Typed errors
of ehrchain's own trees keep their message: those messages name ids, heights and
sizes, never request content. Parser and library errors get a fixed message,
because theirs may quote the input. Anything unknown is a 500 whose message is
generic; only the exception's type name is logged.

The rule for 400 against 422: bytes that cannot be parsed, and transactions a
node rule rejects as malformed, are 400; well-formed JSON or parameters of the
wrong shape or type are 422.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ehrchain.consensus import errors as consensus_errors
from ehrchain.core import cid as cidmod
from ehrchain.core import errors as core_errors
from ehrchain.crypto import errors as crypto_errors
from ehrchain.storage import errors as storage_errors

__all__ = [
    "CODE_STATUS",
    "ApiRequestError",
    "BodyTooLarge",
    "InvalidRequest",
    "MalformedRequest",
    "NotFound",
    "Problem",
    "UnsupportedMediaType",
    "WrongKind",
    "error_response",
    "install_error_handlers",
    "problem_for",
]

logger = logging.getLogger("ehrchain.api")

MAX_MESSAGE_LENGTH: Final = 300
GENERIC_MESSAGE: Final = "internal error"


class ApiRequestError(Exception):
    """Base of the errors the API layer raises about a request it cannot take."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "malformed_request"


class MalformedRequest(ApiRequestError):
    """The body or a parameter does not parse (JSON syntax, base64, CBOR)."""


class InvalidRequest(ApiRequestError):
    """The request parsed but has the wrong shape or types."""

    status = 422
    code = "invalid_request"


class WrongKind(ApiRequestError):
    """The signed transaction's kind does not belong to the route it was sent to."""

    code = "wrong_kind"


class NotFound(ApiRequestError):
    """No block, transaction, account or record under the requested id."""

    status = 404
    code = "not_found"


class BodyTooLarge(ApiRequestError):
    """The body is larger than the app's ``max_body_bytes``."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiRequestError):
    """The Content-Type is not one the route accepts."""

    status = 415
    code = "unsupported_media_type"


@dataclass(frozen=True, slots=True)
class Problem:
    """What a client is told about a failed request."""

    status: int
    code: str
    message: str

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


CODE_STATUS: Final[Mapping[str, int]] = {
    # 400: the input is malformed, or a rule finds it malformed
    "malformed_request": 400,
    "malformed_payload": 400,
    "invalid_transaction": 400,
    "invalid_block": 400,
    "invalid_block_tx": 400,
    "invalid_address": 400,
    "invalid_cid": 400,
    "invalid_key": 400,
    "invalid_proof": 400,
    "invalid_fhir": 400,
    "invalid_certificate": 400,
    "insufficient_work": 400,
    "wrong_chain": 400,
    "wrong_kind": 400,
    "unknown_kind": 400,
    "immutable": 400,
    "expired": 400,
    "decryption_failed": 400,
    "record_error": 400,
    "record_integrity": 400,
    "invalid_document": 400,
    # 401: the signature does not prove the sender
    "bad_signature": 401,
    "wrong_key": 401,
    # 403: the sender may not do this
    "not_authorised": 403,
    "not_verified": 403,
    "inactive_account": 403,
    "not_a_validator": 403,
    "not_a_reader": 403,
    # 404
    "not_found": 404,
    "unknown_account": 404,
    "blob_not_found": 404,
    # 409: the request conflicts with the current state (replay, stale view)
    "bad_nonce": 409,
    "duplicate": 409,
    "already_exists": 409,
    "stale_epoch": 409,
    "wrong_readers": 409,
    "bad_version": 409,
    "not_next": 409,
    "ledger_conflict": 409,
    # 413 / 415 / 422
    "payload_too_large": 413,
    "too_large": 413,
    "unsupported_media_type": 415,
    "invalid_request": 422,
    # 5xx
    "internal": 500,
    "blob_corrupt": 500,
    "ledger_corrupt": 500,
    "invalid_genesis": 500,
    "examples_unavailable": 503,
    "unavailable": 503,
    "pool_full": 503,
}
"""Status of every error code a typed error may carry; unknown codes of
ehrchain's rule errors are 400 (a rule rejected the input)."""


_CLASS_TABLE: Final[tuple[tuple[type[BaseException], int, str], ...]] = (
    (crypto_errors.InvalidSignature, 401, "bad_signature"),
    (crypto_errors.InvalidKey, 400, "invalid_key"),
    (crypto_errors.DecryptionError, 400, "decryption_failed"),
    (crypto_errors.KeystoreError, 400, "keystore"),
    (cidmod.InvalidCid, 400, "invalid_cid"),
    (cidmod.BlobCorrupt, 500, "blob_corrupt"),
    (core_errors.EncodingError, 400, "malformed_request"),
    (core_errors.InvalidAddress, 400, "invalid_address"),
    (core_errors.InvalidTransaction, 400, "invalid_transaction"),
    (core_errors.InvalidBlock, 400, "invalid_block"),
    (core_errors.InvalidProof, 400, "invalid_proof"),
    (consensus_errors.InvalidCertificate, 400, "invalid_certificate"),
    (consensus_errors.NotAValidator, 403, "not_a_validator"),
    (consensus_errors.InsufficientWork, 400, "insufficient_work"),
    (storage_errors.BlobNotFound, 404, "blob_not_found"),
    (storage_errors.BlobTooLarge, 413, "payload_too_large"),
    (storage_errors.LedgerCorrupt, 500, "ledger_corrupt"),
    (storage_errors.LedgerError, 409, "ledger_conflict"),
)
"""Typed errors without a ``code`` attribute, most specific first."""

_PUBLIC_5XX: Final = frozenset({503})
"""5xx statuses whose message is safe to show (the node says it is unavailable)."""


def problem_for(exc: BaseException) -> Problem:
    """Map any exception to the status, code and message a client sees."""
    if isinstance(exc, ApiRequestError):
        return Problem(exc.status, exc.code, _message(exc, exc.code))
    code = getattr(exc, "code", None)
    if _is_own(exc) and isinstance(code, str) and code:
        status = CODE_STATUS.get(code, 400)
        return _problem(exc, status, code)
    for cls, status, table_code in _CLASS_TABLE:
        if isinstance(exc, cls):
            return _problem(exc, status, table_code)
    logger.error("unhandled error", extra={"exc_type": type(exc).__name__})
    return Problem(500, "internal", GENERIC_MESSAGE)


def _is_own(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("ehrchain.")


def _problem(exc: BaseException, status: int, code: str) -> Problem:
    if status >= 500 and status not in _PUBLIC_5XX:
        logger.error("server error", extra={"exc_type": type(exc).__name__, "code": code})
        return Problem(status, code, GENERIC_MESSAGE)
    return Problem(status, code, _message(exc, code))


def _message(exc: BaseException, fallback: str) -> str:
    """The exception's own message, on one line and bounded."""
    text = " ".join(str(exc).split())
    if not text:
        return fallback.replace("_", " ")
    if len(text) > MAX_MESSAGE_LENGTH:
        return text[: MAX_MESSAGE_LENGTH - 1] + "…"
    return text


def error_response(exc: BaseException) -> Response:
    """The JSON error response for ``exc``."""
    return problem_response(problem_for(exc))


def problem_response(problem: Problem) -> Response:
    body = json.dumps(problem.body(), separators=(",", ":")).encode()
    return Response(body, status_code=problem.status, media_type="application/json")


_HTTP_CODES: Final[Mapping[int, str]] = {
    400: "malformed_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = {404: "no such route", 405: "method not allowed"}.get(
        exc.status_code, code.replace("_", " ")
    )
    response = problem_response(Problem(exc.status_code, code, message))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    """422 naming where the input is wrong, never what it was."""
    assert isinstance(exc, RequestValidationError)
    places = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()})
    message = "invalid " + ", ".join(places[:5]) if places else "invalid request"
    return problem_response(Problem(422, "invalid_request", message[:MAX_MESSAGE_LENGTH]))


def install_error_handlers(app: FastAPI) -> None:
    """Give the framework's own errors (routing, parameter validation) our body shape.

    Every other exception reaches ``middleware.ErrorMiddleware``, which calls
    ``problem_for``; it is not registered here because Starlette re-raises
    exceptions handled for ``Exception``, and the server would log a traceback.
    """
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
