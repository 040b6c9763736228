"""Who a node talks to, and how it knows a peer is a node the consortium admitted.

Admission is on-chain. A node's identity is its node key (``keys/node.key``);
the node is admitted when that key's address is, in the receiver's committed
state, either a validator (``validator.add`` by the consortium admin, or the
genesis file) or the active admin account of a hospital (``hospital.admit`` by
the consortium admin: each hospital runs a node). Nothing else is trusted:
a peer's URL, its word about heights, or the blocks it sends (those are fully
re-verified by the receiver).

Every node-to-node request carries
``x-ehrchain-peer: v1 <address> <ms> <nonce> <sig>``: an Ed25519 signature by
the node key over the chain id, the method, the path with its query, the
SHA-256 of the body, a timestamp and a random 16-byte nonce. The receiver
checks that the address is admitted, that the signature verifies with the
address's current key, that the timestamp is within ``MAX_SKEW_MS`` of its
clock, and that the same signature was not seen before (replay). The nonce
makes two identical requests in one millisecond (the same page asked twice)
two different signatures: Ed25519 is deterministic, so without it the second
would be refused as a replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from ehrchain.core import encoding
from ehrchain.core.types import Address
from ehrchain.crypto import signing
from ehrchain.crypto.errors import CryptoError
from ehrchain.crypto.keystore import Identity
from ehrchain.crypto.signing import SIGNATURE_SIZE
from ehrchain.ehr.state import State
from ehrchain.ehr.values import ACTIVE, ROLE_HOSPITAL_ADMIN

__all__ = [
    "MAX_PEERS",
    "MAX_SKEW_MS",
    "PEERS_FILE",
    "PEER_HEADER",
    "PeerRefused",
    "PeerSet",
    "RequestChecker",
    "admitted_key",
    "normalise_url",
    "sign_request",
]

PEER_HEADER: Final = "x-ehrchain-peer"
SCHEME: Final = "v1"
DOMAIN: Final = "ehrchain/peer-request/v1"
MAX_SKEW_MS: Final = 60_000
MAX_PEERS: Final = 64
NONCE_SIZE: Final = 16
PEERS_FILE: Final = "peers.json"

Clock = Callable[[], int]
KeyOf = Callable[[Address], bytes | None]


class PeerRefused(Exception):
    """A node-to-node request the receiver refuses; ``status`` is its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def admitted_key(state: State, address: str) -> bytes | None:
    """The current signing key of an admitted node, or None for anyone else.

    Deny by default: a validator, or an active hospital admin account; every
    other address (patients, providers, removed validators, strangers) is None.
    """
    for validator, key in state.validators():
        if validator == address:
            return key
    account = state.account(address)
    if account is None or account.status != ACTIVE or account.role != ROLE_HOSPITAL_ADMIN:
        return None
    return account.signing_key


def request_message(
    chain_id: str, method: str, target: str, body: bytes, timestamp_ms: int, nonce: bytes
) -> bytes:
    """The bytes a node signs for one request (``target`` = path plus ``?query``)."""
    digest = hashlib.sha256(body).digest()
    return encoding.encode([DOMAIN, chain_id, method.upper(), target, digest, timestamp_ms, nonce])


def sign_request(
    identity: Identity,
    chain_id: str,
    method: str,
    target: str,
    body: bytes,
    now_ms: int,
    nonce: bytes | None = None,
) -> dict[str, str]:
    """The header that authenticates this request as coming from ``identity``'s node
    (``nonce`` fresh and random unless given)."""
    nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
    message = request_message(chain_id, method, target, body, now_ms, nonce)
    signature = identity.signing.sign(message)
    return {PEER_HEADER: f"{SCHEME} {identity.address} {now_ms} {_b64(nonce)} {_b64(signature)}"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Unpadded URL-safe base64; b"" for anything that is not."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return b""


@dataclass(frozen=True, slots=True)
class _Credentials:
    address: Address
    timestamp_ms: int
    nonce: bytes
    signature: bytes


def _parse(header: str | None) -> _Credentials:
    if not header:
        raise PeerRefused(403, "not_admitted", "node-to-node requests must be signed by a node key")
    parts = header.split(" ")
    if len(parts) != 5 or parts[0] != SCHEME or not parts[2].isdigit() or len(parts[2]) > 15:
        raise PeerRefused(403, "not_admitted", f"malformed {PEER_HEADER} header")
    nonce, signature = _unb64(parts[3]), _unb64(parts[4])
    if len(nonce) != NONCE_SIZE:
        raise PeerRefused(403, "not_admitted", f"malformed {PEER_HEADER} nonce")
    if len(signature) != SIGNATURE_SIZE:
        raise PeerRefused(403, "not_admitted", f"malformed {PEER_HEADER} signature")
    return _Credentials(Address(parts[1]), int(parts[2]), nonce, signature)


class RequestChecker:
    """Checks the peer header of incoming requests; thread-safe.

    ``key_of`` answers the current key of an admitted address (None = not
    admitted), read from committed state at the time of the request, so a
    node admitted by a block just committed is accepted at once.
    """

    def __init__(self, chain_id: str, key_of: KeyOf, clock: Clock) -> None:
        self._chain_id = chain_id
        self._key_of = key_of
        self._clock = clock
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def precheck(self, header: str | None) -> None:
        """Refuse a request from a node that is not admitted, or with a stale timestamp,
        before its body is read."""
        self._key(_parse(header), self._clock())

    def _key(self, creds: _Credentials, now: int) -> bytes:
        if abs(now - creds.timestamp_ms) > MAX_SKEW_MS:
            raise PeerRefused(401, "stale_request", "request timestamp is too far from now")
        key = self._key_of(creds.address)
        if key is None:
            raise PeerRefused(403, "not_admitted", f"{creds.address} is not an admitted node")
        return key

    def check(self, header: str | None, method: str, target: str, body: bytes) -> Address:
        """The admitted sender's address, or raise PeerRefused."""
        creds = _parse(header)
        now = self._clock()
        key = self._key(creds, now)
        message = request_message(
            self._chain_id, method, target, body, creds.timestamp_ms, creds.nonce
        )
        try:
            signing.verify(key, message, creds.signature)
        except CryptoError:
            raise PeerRefused(401, "bad_signature", "peer signature does not verify") from None
        self._remember(creds.signature, creds.timestamp_ms + MAX_SKEW_MS, now)
        return creds.address

    def _remember(self, signature: bytes, expires_ms: int, now_ms: int) -> None:
        with self._lock:
            if signature in self._seen:
                raise PeerRefused(401, "replayed_request", "this signed request was already used")
            if len(self._seen) > 50_000:
                self._seen = {s: t for s, t in self._seen.items() if t >= now_ms}
            self._seen[signature] = expires_ms


def normalise_url(url: str) -> str:
    """``scheme://host[:port]`` without a trailing slash; ValueError for anything else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a peer URL is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("a peer URL is a base URL without path, query or credentials")
    return f"{parts.scheme}://{parts.netloc}"


class PeerSet:
    """The peers' base URLs, in the order learned, saved to ``peers.json`` on change.

    Never holds the node's own URL, and at most ``MAX_PEERS`` entries, so a
    flood of registrations cannot grow it without bound. The file lets a node
    that restarts find its peers again to catch up.
    """

    def __init__(self, own_url: str, path: Path | None = None) -> None:
        self.own_url = normalise_url(own_url)
        self._path = path
        self._lock = threading.Lock()
        self._urls: list[str] = []
        if path is not None and path.exists():
            self.add_all(_load(path))

    def add(self, url: str) -> bool:
        """Add a peer; True if it was new."""
        return bool(self.add_all([url]))

    def add_all(self, urls: Iterable[str]) -> list[str]:
        """Add peers; return the new ones."""
        added: list[str] = []
        with self._lock:
            for raw in urls:
                url = normalise_url(raw)
                if url == self.own_url or url in self._urls or len(self._urls) >= MAX_PEERS:
                    continue
                self._urls.append(url)
                added.append(url)
            if added:
                self._save()
        return added

    def urls(self) -> list[str]:
        with self._lock:
            return list(self._urls)

    def __len__(self) -> int:
        with self._lock:
            return len(self._urls)

    def _save(self) -> None:
        if self._path is None:
            return
        temp = self._path.with_suffix(".tmp")
        temp.write_text(json.dumps(self._urls, indent=1))
        temp.replace(self._path)


def _load(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [u for u in data if isinstance(u, str)] if isinstance(data, list) else []
