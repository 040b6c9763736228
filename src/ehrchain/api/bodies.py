"""Request bodies: signed transactions, batches, blocks, blobs, peer URLs.

Bodies are parsed by hand rather than through request models so that the
bytes a client signed reach the node untouched, a batch of thousands of
transactions costs one decode, and every parse failure maps to one typed error
(400 unparseable, 415 wrong media type, 422 wrong shape) whose message never
quotes the body.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.requests import Request

from ehrchain.api.errors import BodyTooLarge, InvalidRequest, MalformedRequest, UnsupportedMediaType
from ehrchain.api.schemas import b64url_decode
from ehrchain.core import encoding
from ehrchain.core.errors import EncodingError

__all__ = [
    "CBOR",
    "JSON",
    "MAX_BATCH",
    "MAX_BLOB_BATCH",
    "OCTET_STREAM",
    "batch_items",
    "blob_batch",
    "blob_bytes",
    "block_bytes",
    "media_type",
    "tx_bytes",
    "url_body",
]

JSON: Final = "application/json"
CBOR: Final = "application/cbor"
OCTET_STREAM: Final = "application/octet-stream"
MAX_BATCH: Final = 20_000
MAX_BLOB_BATCH: Final = 64
MAX_URL_LENGTH: Final = 2048


def media_type(request: Request) -> str:
    """The Content-Type without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def tx_bytes(request: Request) -> bytes:
    """The wire bytes of one signed transaction: raw CBOR or ``{"tx": base64url}``."""
    kind = media_type(request)
    if kind == CBOR:
        return await _nonempty(request)
    if kind == JSON:
        body = _object(await request.body(), ("tx",))
        return b64url_decode(body["tx"], "tx")
    raise UnsupportedMediaType(f"send {JSON} or {CBOR}")


async def blob_batch(request: Request) -> list[bytes]:
    """Encrypted blobs as a canonical CBOR list of byte strings (at most 64)."""
    if media_type(request) != CBOR:
        raise UnsupportedMediaType(f"send the blobs as a {CBOR} list")
    items = _cbor_list(await request.body())
    if not 0 < len(items) <= MAX_BLOB_BATCH:
        raise InvalidRequest(f"a blob batch holds 1 to {MAX_BLOB_BATCH} blobs")
    return items


def _cbor_list(body: bytes) -> list[bytes]:
    if len(body) > encoding.MAX_ENCODED_SIZE:
        raise BodyTooLarge(f"a CBOR batch may hold at most {encoding.MAX_ENCODED_SIZE} bytes")
    try:
        return list(encoding.decode_byte_strings(body))
    except EncodingError:
        pass
    try:  # only to tell a malformed body from a well-formed one of the wrong shape
        encoding.decode(body)
    except EncodingError:
        raise MalformedRequest("body is not a canonical CBOR list") from None
    raise InvalidRequest("body must be a list of byte strings")


async def batch_items(request: Request) -> list[bytes]:
    """A list of transaction wire bytes: a canonical-encoded CBOR list or ``{"txs": [...]}``."""
    kind = media_type(request)
    if kind == CBOR:
        items = _cbor_list(await request.body())
        check_batch_size(len(items))
        return items
    if kind == JSON:
        raw = _object(await request.body(), ("txs",))["txs"]
        if not isinstance(raw, list):
            raise InvalidRequest("txs must be a list of base64url strings")
        check_batch_size(len(raw))
        return [b64url_decode(item, f"txs[{i}]") for i, item in enumerate(raw)]
    raise UnsupportedMediaType(f"send {JSON} or {CBOR}")


def check_batch_size(count: int) -> None:
    if count == 0:
        raise InvalidRequest("a batch must hold at least one transaction")
    if count > MAX_BATCH:
        raise BodyTooLarge(f"a batch may hold at most {MAX_BATCH} transactions")


async def block_bytes(request: Request) -> bytes:
    """The canonical bytes of one block: raw CBOR or ``{"block": base64url}``."""
    kind = media_type(request)
    if kind == CBOR:
        return await _nonempty(request)
    if kind == JSON:
        body = _object(await request.body(), ("block",))
        return b64url_decode(body["block"], "block")
    raise UnsupportedMediaType(f"send {JSON} or {CBOR}")


async def blob_bytes(request: Request) -> bytes:
    """An encrypted blob as ``application/octet-stream``."""
    if media_type(request) != OCTET_STREAM:
        raise UnsupportedMediaType(f"send the encrypted blob as {OCTET_STREAM}")
    return await _nonempty(request)


async def url_body(request: Request) -> str:
    """A peer's base URL from ``{"url": "http(s)://host[:port]"}``."""
    if media_type(request) != JSON:
        raise UnsupportedMediaType(f"send {JSON}")
    url = _object(await request.body(), ("url",))["url"]
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_LENGTH:
        raise InvalidRequest(f"url must be a string of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidRequest("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("url must be an http or https URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidRequest("url must be a base URL without query, fragment or credentials")
    return url.rstrip("/")


async def _nonempty(request: Request) -> bytes:
    body = await request.body()
    if not body:
        raise MalformedRequest("body is empty")
    return body


def _object(body: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON object with exactly ``fields``."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedRequest("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("body must be a JSON object")
    if set(value) != set(fields):
        raise InvalidRequest(f"body must have exactly the fields {list(fields)}")
    return value
