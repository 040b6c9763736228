"""The low-level SDK: one method per REST route, over a pluggable httpx transport.

Nothing here holds a key. Transactions arrive already signed and are sent as
their canonical CBOR bytes to the route of their kind; answers come back as
JSON dicts or small frozen results. Every non-2xx answer becomes a typed
``ApiError``, every network failure a ``TransportError``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from ehrchain.client.errors import (
    ApiError,
    MissingData,
    NotFound,
    TransportError,
    TxTimeout,
    api_error,
)
from ehrchain.core import encoding, merkle
from ehrchain.core import tx as txmod
from ehrchain.core.errors import InvalidProof

__all__ = ["KIND_ROUTES", "BatchOutcome", "EhrClient", "ReadResult", "Readers", "Submitted"]

KIND_ROUTES: Final[Mapping[str, str]] = {
    "hospital.admit": "/v1/hospitals",
    "validator.add": "/v1/validators",
    "validator.remove": "/v1/validators",
    "patient.register": "/v1/patients",
    "provider.register": "/v1/providers",
    "provider.verify": "/v1/providers/verify",
    "key.rotate": "/v1/keys/rotate",
    "consent.authorise": "/v1/consents",
    "consent.withdraw": "/v1/consents",
    "access.request": "/v1/access/requests",
    "access.deny": "/v1/access/requests",
    "access.grant": "/v1/access/grants",
    "access.revoke": "/v1/access/revocations",
    "delegate.add": "/v1/delegations",
    "delegate.remove": "/v1/delegations",
    "access.break_glass": "/v1/break-glass",
    "keys.rewrap": "/v1/keys/rewrap",
    "record.create": "/v1/records",
    "record.amend": "/v1/records/{record_id}/versions",
}
"""The typed route of each kind (``record.read`` goes through ``EhrClient.read``)."""

CBOR: Final = {"content-type": "application/cbor"}
MAX_SERVER_WAIT_S: Final = 30.0
DEFAULT_TIMEOUT_S: Final = 60.0
MAX_PAGE: Final = 500


@dataclass(frozen=True, slots=True)
class Submitted:
    """A transaction the node admitted; ``height`` once committed."""

    tx_id: bytes
    kind: str
    committed: bool
    height: int | None = None
    index: int | None = None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Per-item outcome of a batch: an id, or the error it was refused with."""

    tx_id: bytes | None
    error: ApiError | None


@dataclass(frozen=True, slots=True)
class Readers:
    """The exact readers a new version must be wrapped for, and the key epoch to name."""

    epoch: int
    keys: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a signed read unlocks: the blob, the reader's wrapped key, the checks."""

    record_id: str
    version: int
    cid: str
    commitment: bytes
    blob: bytes
    wrapped_key: bytes
    tx_id: bytes
    meta: Mapping[str, Any]


class EhrClient:
    """A connection to one node. Close it (or use ``with``) to release the pool."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout)
        self._chain_id: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EhrClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TransportError(f"{method} {path}: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise api_error(response.status_code, body)
        if body is None:
            raise TransportError(f"{method} {path}: answer is not JSON")
        return body

    def _maybe(self, path: str, **kwargs: Any) -> Any:
        """GET that returns None on 404."""
        try:
            return self._call("GET", path, **kwargs)
        except NotFound:
            return None

    # -- node --------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/v1/status")
        return result

    def evidence(self, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded validator misbehaviour: offender, height, reporter, tx id (hex)."""
        body = self._call("GET", "/v1/evidence", params={"limit": limit})
        return list(body["evidence"])

    @property
    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self.status()["chain_id"])
        return self._chain_id

    def healthz(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/healthz")
        return result

    def mine(self) -> dict[str, Any] | None:
        block: dict[str, Any] | None = self._call("POST", "/mine")["block"]
        return block

    def chain(self, start: int = 0, limit: int = 100, *, full: bool = True) -> dict[str, Any]:
        params = {"start": start, "limit": limit, "full": full}
        result: dict[str, Any] = self._call("GET", "/chain", params=params)
        return result

    def pending(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        params = {"offset": offset, "limit": limit}
        txs: list[dict[str, Any]] = self._call("GET", "/pending_tx", params=params)["txs"]
        return txs

    def block(self, height: int, *, full: bool = True) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._maybe(f"/v1/blocks/{height}", params={"full": full})
        return found

    def register_node(self, url: str) -> list[str]:
        peers: list[str] = self._call("POST", "/register_node", json={"url": url})["peers"]
        return peers

    def register_with(self, url: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/register_with", json={"url": url})
        return result

    def add_block(self, block_bytes: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/add_block", content=block_bytes, headers=CBOR)
        return result

    # -- transactions ------------------------------------------------------

    def submit(self, tx: txmod.Transaction, *, wait_s: float = 0.0) -> Submitted:
        """Send a signed transaction to its kind's route; wait up to 30 s server-side."""
        route = KIND_ROUTES.get(tx.kind, "/new_transaction")
        path = route.format(record_id=tx.payload.get("record_id", ""))
        params = {"wait": min(wait_s, MAX_SERVER_WAIT_S)} if wait_s > 0 else None
        body = self._call("POST", path, content=tx.to_bytes(), headers=CBOR, params=params)
        return Submitted(
            tx_id=bytes.fromhex(body["tx_id"]),
            kind=str(body["kind"]),
            committed=body.get("status") == "committed",
            height=body.get("height"),
            index=body.get("index"),
        )

    def submit_batch(self, txs: Sequence[txmod.Transaction | bytes]) -> list[BatchOutcome]:
        """Send many signed transactions in one request; each is judged on its own."""
        items = [t if isinstance(t, bytes) else t.to_bytes() for t in txs]
        body = self._call(
            "POST", "/v1/transactions/batch", content=encoding.encode(items), headers=CBOR
        )
        outcomes: list[BatchOutcome] = []
        for item in body["results"]:
            if "tx_id" in item:
                outcomes.append(BatchOutcome(bytes.fromhex(item["tx_id"]), None))
            else:
                error = api_error(int(item["status"]), {"error": item["error"]})
                outcomes.append(BatchOutcome(None, error))
        return outcomes

    def tx(self, tx_id: bytes, *, wait_s: float = 0.0) -> dict[str, Any] | None:
        params = {"wait": min(wait_s, MAX_SERVER_WAIT_S)} if wait_s > 0 else None
        found: dict[str, Any] | None = self._maybe(f"/v1/txs/{tx_id.hex()}", params=params)
        return found

    def wait_for_tx(self, tx_id: bytes, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll ``/v1/txs/{id}?wait=`` until the transaction is committed."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            found = self.tx(tx_id, wait_s=max(min(remaining, MAX_SERVER_WAIT_S), 0.001))
            if found is not None:
                return found
            if deadline - time.monotonic() <= 0:
                raise TxTimeout(tx_id, timeout_s)

    def tx_proof(self, tx_id: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/txs/{tx_id.hex()}/proof")
        return result

    def verify_inclusion(self, tx_id: bytes) -> tuple[int, int]:
        """Check a transaction's Merkle proof against its block header; return (height, index).

        The proof's root must equal the header's ``tx_root`` and the leaf must
        hash to ``tx_id``, so a node cannot pass off another transaction.
        """
        found = self.tx_proof(tx_id)
        leaf = _b64url(found["tx_bytes"])
        if txmod.from_bytes(leaf).tx_id != tx_id:
            raise MissingData("the proof is for another transaction")
        proof = merkle.InclusionProof.from_json(found["proof"])
        block = self.block(int(found["height"]), full=False)
        if block is None:
            raise MissingData(f"block {found['height']} is missing")
        if bytes.fromhex(block["header"]["tx_root"]) != proof.root:
            raise InvalidProof("proof root is not the block's Merkle root")
        proof.verify(leaf)
        return int(found["height"]), proof.leaf_index

    # -- state -------------------------------------------------------------

    def account(self, address: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._maybe(f"/v1/accounts/{address}")
        return found

    def next_nonce(self, address: str) -> int:
        return int(self._call("GET", f"/v1/accounts/{address}/nonce")["next_nonce"])

    def record(self, record_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._maybe(f"/v1/records/{record_id}")
        return found

    def version(self, record_id: str, number: int) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._maybe(f"/v1/records/{record_id}/versions/{number}")
        return found

    def patient_records(
        self, patient: str, offset: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._items(f"/v1/patients/{patient}/records", offset, limit)

    def history(self, patient: str, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self._items(f"/v1/patients/{patient}/history", offset, limit)

    def access_requests(self, patient: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", f"/v1/patients/{patient}/requests")["items"]
        return items

    def grants(self, patient: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", f"/v1/patients/{patient}/grants")["items"]
        return items

    def readers(
        self, patient: str, *, category: str, author: str, record_id: str | None = None
    ) -> Readers:
        params = {"category": category, "author": author}
        if record_id is not None:
            params["record_id"] = record_id
        body = self._call("GET", f"/v1/patients/{patient}/readers", params=params)
        keys = {a: bytes.fromhex(k) for a, k in body["readers"].items()}
        return Readers(epoch=int(body["epoch"]), keys=keys)

    def iter_history(self, patient: str) -> Iterator[dict[str, Any]]:
        """Every event of a patient's file, page by page (newest first)."""
        return _pages(self.history, patient)

    def iter_patient_records(self, patient: str) -> Iterator[dict[str, Any]]:
        return _pages(self.patient_records, patient)

    def _items(self, path: str, offset: int, limit: int) -> list[dict[str, Any]]:
        params = {"offset": offset, "limit": limit}
        items: list[dict[str, Any]] = self._call("GET", path, params=params)["items"]
        return items

    # -- blobs and reads ---------------------------------------------------

    def put_blob(self, blob: bytes) -> str:
        headers = {"content-type": "application/octet-stream"}
        return str(self._call("POST", "/v1/blobs", content=blob, headers=headers)["cid"])

    def put_blobs(self, blobs: Sequence[bytes]) -> list[str]:
        """Upload up to 64 blobs in one request; their CIDs in the same order."""
        body = self._call(
            "POST", "/v1/blobs/batch", content=encoding.encode(list(blobs)), headers=CBOR
        )
        return [str(cid) for cid in body["cids"]]

    def read(self, tx: txmod.Transaction) -> ReadResult:
        """Post a signed ``record.read``; the node queues it as the audit event."""
        body = self._call("POST", "/v1/records/read", content=tx.to_bytes(), headers=CBOR)
        try:
            return ReadResult(
                record_id=str(body["record_id"]),
                version=int(body["version"]),
                cid=str(body["cid"]),
                commitment=bytes.fromhex(body["commitment"]),
                blob=_b64url(body["blob"]),
                wrapped_key=_b64url(body["wrapped_key"]),
                tx_id=bytes.fromhex(body["tx_id"]),
                meta=body,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise MissingData(f"read answer is incomplete: {type(exc).__name__}") from exc


def _pages(
    fetch: Callable[[str, int, int], list[dict[str, Any]]], patient: str
) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = fetch(patient, offset, MAX_PAGE)
        yield from page
        if len(page) < MAX_PAGE:
            return
        offset += len(page)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
