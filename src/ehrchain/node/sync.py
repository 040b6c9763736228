"""Catch-up: fetch the blocks and blobs a node missed from its peers, trusting none of them.

A block fetched from a peer is committed only through ``NodeService.add_block``,
which re-checks the header link, the commit certificate against the validator
set of the node's own replayed state, every transaction signature, the Merkle
root and every state transition (the state root). A blob fetched by CID is
stored only if its bytes hash to that CID. A peer that lies about its height,
sends a block that fails any check, or a blob that does not match is skipped;
the node tries the next one.

``rebuild_from_peer`` is the repair for a data directory whose ledger was
tampered with: it sets the damaged ledger aside, starts again from the genesis
file (the only local file trusted) and re-syncs the whole chain from a peer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ehrchain.consensus.errors import ConsensusError
from ehrchain.core import block as blockmod
from ehrchain.core.cid import check_cid
from ehrchain.core.errors import CoreError
from ehrchain.crypto.errors import CryptoError
from ehrchain.ehr.errors import EhrError
from ehrchain.ehr.genesis import GenesisConfig
from ehrchain.node.errors import Rejected
from ehrchain.node.genesis import commit_genesis
from ehrchain.node.peer_client import PeerClient, PeerError
from ehrchain.node.service import NodeService
from ehrchain.node.verifier import Verdict
from ehrchain.storage.blobs import BlobStore
from ehrchain.storage.errors import BlobCorrupt, StorageError
from ehrchain.storage.ledger import ChainHead, Ledger

__all__ = [
    "PAGE",
    "BlobFetcher",
    "GapGrace",
    "RebuildReport",
    "SyncError",
    "Syncer",
    "catch_up",
    "rebuild_from_peer",
    "record_cids",
]

PAGE: Final = 100
WORKER_BYTES: Final = 64 * 1024
"""A page at least this large is checked in the verifier workers (a few hundred
transactions: below that, starting the tasks costs more than it saves)."""
RECORD_KINDS: Final = frozenset({"record.create", "record.amend"})
logger = logging.getLogger("ehrchain.node.sync")


class SyncError(Exception):
    """A peer's chain could not be followed: it diverges, or a block fails verification."""


def record_cids(block: blockmod.Block) -> list[str]:
    """The blob ids the record versions of ``block`` name."""
    return [str(t.payload["cid"]) for t in block.txs if t.kind in RECORD_KINDS]


class BlobFetcher:
    """Fetches blobs by CID from peers and stores only bytes that match the CID."""

    def __init__(
        self,
        blobs: BlobStore,
        clients: Callable[[], Sequence[PeerClient]],
        max_bytes: int,
    ) -> None:
        self._blobs = blobs
        self._clients = clients
        self._max_bytes = max_bytes

    def missing(self, cids: Iterable[str]) -> list[str]:
        return [cid for cid in dict.fromkeys(cids) if not self._blobs.has(cid)]

    def ensure(self, cids: Iterable[str], prefer: PeerClient | None = None) -> list[str]:
        """Fetch every CID not stored yet; return those no peer could supply."""
        still: list[str] = []
        for cid in self.missing(cids):
            if not self.fetch(cid, prefer):
                still.append(cid)
        return still

    def fetch(self, cid: str, prefer: PeerClient | None = None) -> bool:
        clients = list(self._clients())
        if prefer is not None:
            clients = [prefer, *(c for c in clients if c.url != prefer.url)]
        for client in clients:
            try:
                data = client.blob(cid)
            except PeerError:
                continue
            if len(data) > self._max_bytes:
                continue
            try:
                check_cid(cid, data)
            except CoreError:
                logger.warning(
                    "peer sent a blob that does not match its CID", extra={"peer": client.url}
                )
                continue
            self._blobs.put(data)
            return True
        return False


class GapGrace:
    """How long a BFT validator leaves a one-block gap to its own consensus driver.

    A peer that is one block ahead has usually just decided the height this
    node is deciding too (its last precommits are a few ms away); fetching
    that block as well would check and commit it twice over. A gap of one is
    fetched once it outlives ``grace_s`` at the same height (the node missed
    the decision), a larger gap at once.
    """

    def __init__(self, grace_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._grace_s = grace_s
        self._clock = clock
        self._since: tuple[int, float] | None = None

    def wait(self, mine: int, theirs: int) -> bool:
        """True to leave the peer's next block to the driver for now."""
        if theirs != mine + 1:
            self._since = None
            return False
        now = self._clock()
        if self._since is None or self._since[0] != mine:
            self._since = (mine, now)
        return now - self._since[1] < self._grace_s


def catch_up(
    service: NodeService,
    client: PeerClient,
    fetcher: BlobFetcher | None = None,
    stop: threading.Event | None = None,
    grace: GapGrace | None = None,
) -> int:
    """Fetch, verify and commit the blocks ``client``'s peer has above our head.

    Returns how many blocks were committed. Raises SyncError when the peer's
    next block does not extend our head or fails verification, PeerError when
    the peer cannot be asked. Blobs of each block's record versions are
    fetched (and checked against their CID) before the block commits.

    A large page is checked in the verifier workers (decoding, Merkle root,
    every signature), a block per task, while this thread executes and
    commits the blocks before it in order: the rest of ``add_block``'s
    checks (link, certificate, state transitions) run here as always.
    """
    added = 0
    try:
        while stop is None or not stop.is_set():
            status = client.status()
            if status.get("chain_id") != service.chain_id:
                raise SyncError(f"{client.url} serves another chain")
            theirs = int(status.get("height", -1))
            mine = service.head().height
            if theirs <= mine or (grace is not None and grace.wait(mine, theirs)):
                return added
            service.syncing_to(theirs)
            page = client.blocks(mine + 1, min(PAGE, theirs - mine))
            if not page:
                return added
            for fetched in _decoded(service, client, page):
                if _add_one(service, client, fetcher, fetched):
                    added += 1
        return added
    finally:
        service.syncing_to(-1)


@dataclass(frozen=True, slots=True)
class _Fetched:
    data: bytes
    block: blockmod.Block
    signatures_checked: bool


def _decoded(service: NodeService, client: PeerClient, page: Sequence[bytes]) -> Iterator[_Fetched]:
    """The page's blocks, decoded in order; a large page checked ahead in the workers.

    A block a worker refused is decoded again here, strictly, so that the
    caller skips it if it is already committed and otherwise reports the
    same error ``add_block`` would.
    """
    futures = service.verifier().submit_blocks(page) if sum(map(len, page)) >= WORKER_BYTES else []
    try:
        for i, data in enumerate(page):
            if futures and _passed(futures[i]):
                yield _Fetched(data, blockmod.block_from_checked_bytes(data), True)
                continue
            try:
                block = blockmod.block_from_bytes(data)
            except CoreError as exc:
                raise SyncError(f"{client.url} sent an undecodable block: {exc}") from exc
            yield _Fetched(data, block, False)
    finally:
        for future in futures:
            future.cancel()


def _passed(future: Future[Verdict]) -> bool:
    """The worker accepted the block; False also when the pool broke (checked here then)."""
    try:
        return future.result() is None
    except Exception:
        logger.warning("verifier worker failed; checking the block in-process", exc_info=True)
        return False


def _add_one(
    service: NodeService, client: PeerClient, fetcher: BlobFetcher | None, fetched: _Fetched
) -> bool:
    block = fetched.block
    if block.header.height <= service.head().height:
        return False  # committed meanwhile (gossip); the link check below covers a fork
    if fetcher is not None:
        fetcher.ensure(record_cids(block), prefer=client)
    try:
        service.add_fetched(fetched.data, block, signatures_checked=fetched.signatures_checked)
    except Rejected as exc:
        if exc.code == "not_next" and block.header.height <= service.head().height:
            return False
        raise SyncError(f"block {block.header.height} from {client.url}: {exc}") from exc
    except (ConsensusError, CoreError, CryptoError, EhrError) as exc:
        raise SyncError(
            f"block {block.header.height} from {client.url} fails verification: {exc}"
        ) from exc
    return True


@dataclass(frozen=True, slots=True)
class RebuildReport:
    head: ChainHead
    blocks: int
    set_aside: Path | None
    """Where the replaced ledger was moved (kept for inspection), if there was one."""
    missing_blobs: tuple[str, ...]


def rebuild_from_peer(
    service_factory: Callable[[], NodeService],
    ledger_path: Path,
    genesis_path: Path,
    blob_dir: Path,
    client: PeerClient,
    clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> RebuildReport:
    """Replace the ledger at ``ledger_path`` by the chain re-verified from ``client``'s peer.

    The node must be stopped (the ledger's write lock is taken first, so a
    running node makes this fail before anything moves). The old ledger and any
    blob whose bytes do not match its CID are moved to ``quarantine/``.
    """
    config = GenesisConfig.from_json(genesis_path.read_text())
    quarantine = ledger_path.parent / "quarantine"
    set_aside = _set_aside_ledger(ledger_path, quarantine, clock())
    with contextlib.closing(BlobStore(blob_dir)) as blobs:
        _set_aside_bad_blobs(blobs, quarantine)
    with Ledger.open(ledger_path) as ledger:
        commit_genesis(ledger, config)
    service = service_factory()
    try:
        fetcher = BlobFetcher(service.blobs, lambda: [client], service.settings.max_blob_bytes)
        blocks = catch_up(service, client, fetcher)
        missing = _missing_version_blobs(service, fetcher, client)
        return RebuildReport(service.head(), blocks, set_aside, tuple(missing))
    finally:
        service.close()
        service.ledger.close()


def _set_aside_ledger(ledger_path: Path, quarantine: Path, now_ms: int) -> Path | None:
    if not ledger_path.exists():
        return None
    Ledger.open(ledger_path).close()  # raises while a running node holds the lock
    quarantine.mkdir(exist_ok=True)
    target = quarantine / f"{ledger_path.stem}-{now_ms}{ledger_path.suffix}"
    for suffix in ("-wal", "-shm"):
        side = ledger_path.with_name(ledger_path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    ledger_path.replace(target)
    return target


def _set_aside_bad_blobs(blobs: BlobStore, quarantine: Path) -> None:
    for cid in list(blobs.iter_cids()):
        try:
            blobs.get(cid)
        except BlobCorrupt:
            blobs.set_aside(cid, quarantine)


def _missing_version_blobs(
    service: NodeService, fetcher: BlobFetcher, client: PeerClient
) -> list[str]:
    """Fetch the blob of every version the rebuilt state records; the ones still missing."""
    cids: list[str] = []
    height = 1
    while height <= service.head().height:
        page = service.blocks(height, PAGE)
        if not page:
            break
        for block in page:
            cids.extend(record_cids(block))
        height = page[-1].header.height + 1
    try:
        return fetcher.ensure(cids, prefer=client)
    except StorageError as exc:
        raise SyncError(f"could not store a fetched blob: {exc}") from exc


class Syncer:
    """Background catch-up: asks each peer for its height and pulls what this node lacks.

    Runs a round at start (a node that was down catches up on restart), then
    every ``interval_s`` or when nudged. Each round also retries blobs no
    peer could supply before and, on a node that cannot seal, drops pending
    transactions that no block took within ``pending_max_age_ms``. How one peer
    is caught up from is ``follow`` (default ``catch_up``; proof of work gives
    the fork choice's).
    """

    def __init__(
        self,
        service: NodeService,
        clients: Callable[[], Sequence[PeerClient]],
        fetcher: BlobFetcher,
        *,
        interval_s: float = 2.0,
        pending_max_age_ms: int = 60_000,
        can_seal: Callable[[], bool] = lambda: False,
        follow: Callable[[PeerClient, threading.Event], int] | None = None,
    ) -> None:
        self._service = service
        self._follow = follow or (lambda client, stop: catch_up(service, client, fetcher, stop))
        self._clients = clients
        self._fetcher = fetcher
        self._interval_s = interval_s
        self._pending_max_age_ms = pending_max_age_ms
        self._can_seal = can_seal
        self._missing: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncer", daemon=True)
        self.rounds = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._nudged.set()
        self._thread.join(timeout=10)

    def nudge(self) -> None:
        self._nudged.set()

    def want_blobs(self, cids: Iterable[str]) -> None:
        """Remember blobs to fetch in the background (a block committed without them)."""
        missing = self._fetcher.missing(cids)
        if missing:
            with self._lock:
                self._missing.update(missing)
            self._nudged.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_round()
            except Exception:  # a background thread must outlive any one bad round
                logger.exception("sync round failed")
            self._nudged.wait(self._interval_s)
            self._nudged.clear()

    def sync_round(self) -> int:
        """One pass over the peers; returns the blocks committed."""
        added = 0
        for client in self._clients():
            if self._stop.is_set():
                break
            try:
                added += self._follow(client, self._stop)
            except (PeerError, SyncError) as exc:
                logger.info(
                    "catch-up from a peer failed", extra={"peer": client.url, "why": str(exc)}
                )
        self._retry_blobs()
        if not self._can_seal():
            self._service.expire_pending(self._pending_max_age_ms)
        self.rounds += 1
        return added

    def _retry_blobs(self) -> None:
        with self._lock:
            wanted = list(self._missing)
        if not wanted:
            return
        still = set(self._fetcher.ensure(wanted))
        with self._lock:
            self._missing -= set(wanted) - still
