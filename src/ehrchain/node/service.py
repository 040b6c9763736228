"""The node service: admits transactions, seals blocks, answers queries.

Invariants:
- A transaction enters the pool only after its signature verifies and it
  executes cleanly against committed state plus the pool ahead of it, so a
  rejected input leaves no trace.
- A block and its state writes commit in one SQLite transaction.
- Reads of record blobs are served only against a signed ``record.read``
  transaction, which becomes the audit event on the ledger.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ehrchain.consensus.base import Engine
from ehrchain.consensus.wire import evidence_check
from ehrchain.core import block as blockmod
from ehrchain.core import encoding, merkle
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError
from ehrchain.core.types import Address, BlockHash, ChainId, TxId
from ehrchain.crypto.errors import CryptoError, InvalidSignature
from ehrchain.ehr import policy
from ehrchain.ehr.errors import BadNonce, EhrError
from ehrchain.ehr.executor import BlockResult, execute_block, select_txs
from ehrchain.ehr.rules import execute
from ehrchain.ehr.state import BlockContext, LedgerReader, State
from ehrchain.node import verifier, views
from ehrchain.node.errors import NotFoundError, PayloadTooLarge, Rejected, Unavailable
from ehrchain.node.mempool import Mempool
from ehrchain.node.peers import admitted_key
from ehrchain.node.settings import Settings
from ehrchain.storage.blobs import BlobStore
from ehrchain.storage.ledger import ChainHead, Ledger

Clock = Callable[[], int]
CHECKED_KEEP = 8


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Committed:
    """Where a committed transaction sits."""

    tx: txmod.Transaction
    height: int
    index: int


VERIFIED_KEEP = 50_000
"""Worker-verified proposal transactions remembered, at most this many (ten blocks)."""
RECENT_KEEP = 100_000
"""Ids of the latest committed transactions remembered, at most this many (twenty
blocks of 5,000): a peer's gossip of a transaction often arrives after the proposal
that held it, and is then dropped for the price of a hash instead of a decode."""
PEER_KEYS_KEEP = 1_024
"""Admission answers (address -> key or None) cached per head, at most this many."""


class NodeService:
    """One node: mempool, sealing, queries. Thread-safe; one writer lock."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        blobs: BlobStore,
        engine: Engine,
        validators: Callable[[], dict[Address, bytes]],
        node_address: Address,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.settings = settings
        self.chain_id = ChainId(settings.chain_id)
        self.ledger = ledger
        self.blobs = blobs
        self.engine = engine
        self.node_address = node_address
        self._read_validators = validators
        self._cached_at = b""
        self._cached_validators: dict[Address, bytes] = {}
        self._peer_keys: dict[str, bytes | None] = {}
        self._clock = clock
        self._lock = threading.RLock()
        self._commits = 0
        self._committed = threading.Condition()
        """Signalled after every commit; its own lock, so a long-poll waiting for a
        commit never takes the service lock (nor wakes on admissions)."""
        self._reader = LedgerReader(ledger)
        self._pool = Mempool(self._reader)
        self._peers: list[str] = []
        self._head = self._load_head()
        self._open: BlockContext | None = None
        self._checked: OrderedDict[bytes, tuple[bytes, BlockResult]] = OrderedDict()
        """Block hash -> (parent hash, result) of blocks checked or proposed here."""
        self._workers: verifier.VerifierPool | None = None
        self._syncing_to = -1
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        """Ids of transactions a verifier worker checked (strict decode, signature) in
        a proposal: their bytes hash to the id, so the check holds for these bytes."""
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        """Ids of the transactions of the latest blocks committed (``RECENT_KEEP``)."""
        self.counters = {"tx_accepted": 0, "tx_rejected": 0, "blocks": 0, "reads": 0}

    # -- admission ---------------------------------------------------------

    def _context(self) -> BlockContext:
        """The context of the block now collecting transactions.

        It is fixed when the block opens (first admission after a commit), so
        every transaction admitted for it executes exactly as it will in the
        block, and sealing can reuse admission's results without re-executing.
        """
        if self._open is None:
            head = self.head()
            self._open = BlockContext(
                chain_id=self.chain_id,
                height=head.height + 1,
                timestamp_ms=max(self._clock(), head.timestamp_ms),
                proposer=self.node_address,
                evidence_check=evidence_check,
            )
        return self._open

    def _decode(self, data: bytes) -> txmod.Transaction:
        try:
            return txmod.verified_from_bytes(data, self.chain_id)
        except (CoreError, CryptoError):
            self.counters["tx_rejected"] += 1
            raise

    def _decode_each(self, items: Sequence[bytes]) -> list[txmod.Transaction | Exception]:
        """Strict decode, shape and chain id of each item (not its signature)."""
        decoded: list[txmod.Transaction | Exception] = []
        for data in items:
            try:
                tx = txmod.from_bytes(data)
                txmod.check_chain(tx, self.chain_id)
                decoded.append(tx)
            except CoreError as exc:
                self.counters["tx_rejected"] += 1
                decoded.append(exc)
        return decoded

    def verifier(self) -> verifier.VerifierPool:
        """The verifier worker processes (started on first use)."""
        if self._workers is None:
            self._workers = verifier.VerifierPool()
        return self._workers

    def _signature_errors(self, txs: Sequence[txmod.Transaction]) -> list[str | None]:
        """None for each transaction whose signature verifies, else why not: in the
        verifier workers for a large batch, here for a small one."""
        if len(txs) >= verifier.MIN_PARALLEL:
            return self.verifier().signatures(txs)
        return verifier.check_signatures([verifier.signed(t) for t in txs])

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()

    def _admit(self, tx: txmod.Transaction) -> None:
        """Execute against committed + pending state and queue; caller holds the lock."""
        if self._pool.contains(tx.tx_id):
            raise Rejected("duplicate", "transaction is already pending")
        if len(self._pool) >= self.settings.max_pending:
            raise Rejected("pool_full", "the pending pool is full; retry later")
        try:
            effects = execute(self._pool.state(), tx, self._context())
        except EhrError:
            self.counters["tx_rejected"] += 1
            raise
        self._pool.add(tx, effects, self._clock(), self._context())
        self.counters["tx_accepted"] += 1

    def submit(self, data: bytes) -> bytes:
        """Verify and queue one signed transaction; return its id."""
        tx = self._decode(data)
        with self._lock:
            self._admit(tx)
        return tx.tx_id

    def submit_many(
        self, items: Sequence[bytes], *, drop_stale: bool = False
    ) -> list[tuple[bytes | None, Exception | None]]:
        """Verify and queue many; each item succeeds or fails on its own.

        ``drop_stale`` (transactions a peer gossiped): an item whose sender's
        next nonce here is already past it is refused as ``BadNonce`` before its
        signature is checked. A node back from downtime is sent thousands that
        its catch-up has committed meanwhile.
        """
        if drop_stale:
            decoded = self._decode_unknown(items)
            self._drop_stale(decoded)
        else:
            decoded = self._decode_each(items)
        fresh = [t for t in decoded if isinstance(t, txmod.Transaction)]
        errors = iter(self._signature_errors(fresh))
        for i, item in enumerate(decoded):
            if isinstance(item, txmod.Transaction) and (error := next(errors)) is not None:
                self.counters["tx_rejected"] += 1
                decoded[i] = InvalidSignature(error)
        results: list[tuple[bytes | None, Exception | None]] = []
        with self._lock:
            for item in decoded:
                if isinstance(item, Exception):
                    results.append((None, item))
                    continue
                try:
                    self._admit(item)
                    results.append((item.tx_id, None))
                except (EhrError, Rejected) as exc:
                    results.append((None, exc))
        return results

    def _decode_unknown(self, items: Sequence[bytes]) -> list[txmod.Transaction | Exception]:
        """``_decode_each`` for the items that are neither pending here nor in a recent
        block (by the hash of their bytes, which is their id); the others are refused
        as duplicates without being decoded."""
        digests = [hashlib.sha256(data).digest() for data in items]
        with self._lock:
            known = [self._pool.contains(TxId(d)) or d in self._recent for d in digests]
        fresh = iter(self._decode_each([d for d, k in zip(items, known, strict=True) if not k]))
        return [
            Rejected("duplicate", "transaction is already pending or committed")
            if k
            else next(fresh)
            for k in known
        ]

    def _note_committed(self, block: blockmod.Block) -> None:
        """Remember the ids of a block just committed; caller holds the lock."""
        recent = self._recent
        for t in block.txs:
            recent[t.tx_id] = None
        while len(recent) > RECENT_KEEP:
            recent.popitem(last=False)

    def _drop_stale(self, decoded: list[txmod.Transaction | Exception]) -> None:
        """Replace by BadNonce each transaction whose nonce is below its sender's next
        one in the pending state (committed or already pending here). Only a filter
        before the signature checks: nothing here is trusted."""
        senders: dict[str, int] = {}
        with self._lock:
            state = self._pool.state()
            for i, tx in enumerate(decoded):
                if not isinstance(tx, txmod.Transaction):
                    continue
                expected = senders.get(tx.sender)
                if expected is None:
                    expected = senders[tx.sender] = state.nonce(tx.sender)
                if tx.nonce < expected:
                    decoded[i] = BadNonce(expected, tx.nonce)

    # -- sealing -----------------------------------------------------------

    def should_seal(self) -> bool:
        with self._lock:
            return self.engine.seal_decision(
                len(self._pool),
                self._pool.size_bytes,
                self._pool.oldest_ms,
                self._clock(),
                False,
            )

    def mine(self) -> blockmod.Block | None:
        """Seal the pending pool into a block now (seed 003's /mine)."""
        with self._lock:
            if not len(self._pool):
                return None
            return self._seal()

    def _assemble(
        self,
    ) -> tuple[blockmod.Block | None, BlockResult, list[tuple[txmod.Transaction, EhrError]]]:
        """The next block from the pool (no certificate yet), its result and the
        transactions that no longer apply; changes nothing. Caller holds the lock."""
        head = self.head()
        ctx = self._context()
        candidates = self._pool.take(self.settings.max_block_txs, self.settings.max_block_bytes)
        reused = self._pool.block_result(candidates, ctx, head.state_root)
        rejected: list[tuple[txmod.Transaction, EhrError]] = []
        if reused is not None:
            accepted, result = candidates, reused
        else:
            accepted, rejected, result = select_txs(
                self._reader, candidates, ctx, len(candidates), prev_root=head.state_root
            )
        if not accepted:
            return None, result, rejected
        txs = tuple(accepted)
        header = blockmod.header_for(
            chain_id=self.chain_id,
            height=ctx.height,
            prev_hash=head.hash,
            txs=txs,
            timestamp_ms=ctx.timestamp_ms,
            state_root=result.state_root,
            proposer=self.node_address,
        )
        return blockmod.Block(header, txs), result, rejected

    def _drop(self, rejected: list[tuple[txmod.Transaction, EhrError]]) -> None:
        """Remove transactions that no longer apply and re-derive the pool's state."""
        self._pool.remove([t for t, _ in rejected])
        self._open = None
        self._pool.rebuild(self._context())

    def _seal(self) -> blockmod.Block | None:
        unsigned, result, rejected = self._assemble()
        if unsigned is None:
            self._drop(rejected)
            return None
        header, txs = unsigned.header, unsigned.txs
        block = blockmod.Block(header, txs, self.engine.certify(header))
        self.ledger.commit_block(block, result.writes, result.events)
        self._note_committed(block)
        self._head = self._load_head()
        self._open = None
        if rejected:
            self._pool.remove(list(txs) + [t for t, _ in rejected])
            self._pool.rebuild(self._context())
        else:  # the block is the pool's oldest transactions: the rest keep their results
            self._pool.committed(list(txs), result.writes)
        self.counters["blocks"] += 1
        self._signal_commit()
        return block

    def seal_if_due(self) -> blockmod.Block | None:
        with self._lock:
            if not self.engine.seal_decision(
                len(self._pool), self._pool.size_bytes, self._pool.oldest_ms, self._clock(), False
            ):
                return None
            return self._seal()

    def add_block(self, data: bytes) -> ChainHead:
        """Fully verify a block that extends our head and commit it."""
        try:
            block = blockmod.block_from_bytes(data)
        except CoreError as exc:
            raise Rejected("invalid_block", str(exc)) from exc
        return self.add_decoded(block)

    def add_decoded(self, block: blockmod.Block, *, signatures_checked: bool = False) -> ChainHead:
        """``add_block`` for a block already decoded (body checked against its header);
        ``signatures_checked`` when a verifier worker checked every transaction's
        signature on the bytes it was decoded from."""
        with self._lock:
            head = self.head()
            self._check_link(block, head)
            self.engine.check(block.header, block.certificate, self._validators())
            result = self._execute_checked(block, head, signatures_checked)
            self.ledger.commit_block(block, result.writes, result.events)
            self._note_committed(block)
            self._head = self._load_head()
            self._open = None
            self._settle_pool(block, result)
            self._signal_commit()
            return self.head()

    def _settle_pool(self, block: blockmod.Block, result: BlockResult) -> None:
        """Take a committed block's transactions out of the pool (``Mempool.settle``).

        What was pending here keeps its admission results where the block cannot
        have changed them: each sender's remaining transactions follow the ones
        committed, and none conflicts with them (a second transaction with a
        committed one's nonce was refused at admission). Admission stays
        advisory either way: the next proposal executes its transactions again.
        """
        self._pool.settle(list(block.txs), result.writes, self._context())

    def _check_link(self, block: blockmod.Block, head: ChainHead) -> None:
        """The block extends our head, on our chain, without going back in time."""
        header = block.header
        if header.height != head.height + 1 or header.prev_hash != head.hash:
            raise Rejected("not_next", "block does not extend this node's head")
        if header.chain_id != self.chain_id:
            raise Rejected("wrong_chain", "block is for another chain")
        if header.timestamp_ms < head.timestamp_ms:
            raise Rejected("invalid_block", "block timestamp goes backwards")

    def add_fetched(
        self, data: bytes, block: blockmod.Block, *, signatures_checked: bool
    ) -> ChainHead:
        """A block catch-up fetched, decoded from ``data`` (see ``add_decoded``)."""
        return self.add_decoded(block, signatures_checked=signatures_checked)

    def _execute_checked(
        self, block: blockmod.Block, head: ChainHead, signatures_checked: bool = False
    ) -> BlockResult:
        """Every signature verified and the transactions re-executed to the header's
        state root; nothing is trusted from the block but its bytes.

        Done once per block and parent: a block this node proposed or already
        checked (a BFT proposal, then the same block decided) reuses that result,
        and a transaction in this node's pool had its signature checked on
        admission (its id hashes the signed bytes).
        """
        header = block.header
        known = self._checked.get(header.hash)
        if known is not None and known[0] == head.hash:
            return known[1]
        if not signatures_checked:
            for t in block.txs:
                if not self._pool.contains(t.tx_id) and t.tx_id not in self._verified:
                    t.verify_signature()
        ctx = BlockContext(
            self.chain_id, header.height, header.timestamp_ms, header.proposer, evidence_check
        )
        result = execute_block(self._reader, block.txs, ctx, prev_root=head.state_root)
        if result.state_root != header.state_root:
            raise Rejected("invalid_block", "state root does not match the transactions")
        self._remember(header.hash, head.hash, result)
        return result

    def _remember(self, block_hash: bytes, parent: bytes, result: BlockResult) -> None:
        self._checked[block_hash] = (parent, result)
        while len(self._checked) > CHECKED_KEEP:
            self._checked.popitem(last=False)

    # -- queries -----------------------------------------------------------

    def head(self) -> ChainHead:
        """The last committed block (cached; refreshed by every commit)."""
        return self._head

    def _load_head(self) -> ChainHead:
        head = self.ledger.head()
        if head is None:
            raise NotFoundError("the ledger has no genesis block")
        return head

    def status(self) -> dict[str, Any]:
        head = self.head()
        return {
            "chain_id": self.chain_id,
            "height": head.height,
            "head_hash": head.hash.hex(),
            "state_root": head.state_root.hex(),
            "timestamp_ms": head.timestamp_ms,
            "pending": len(self._pool),
            "validators": sorted(self._validators()),
            "node_address": self.node_address,
            "peers": list(self._peers),
            "consensus": self.settings.consensus,
        }

    def block(self, height: int) -> blockmod.Block | None:
        return self.ledger.block_at(height)

    def block_by_hash(self, block_hash: bytes) -> blockmod.Block | None:
        return self.ledger.block_by_hash(BlockHash(block_hash))

    def blocks(self, start: int, limit: int) -> list[blockmod.Block]:
        return self.ledger.blocks(start, min(limit, 500))

    def tx(self, tx_id: bytes) -> tuple[txmod.Transaction, int, int] | None:
        return self.ledger.tx(tx_id)

    def _signal_commit(self) -> None:
        with self._committed:
            self._commits += 1
            self._committed.notify_all()

    def wait_for_tx(
        self, tx_id: bytes, timeout_s: float
    ) -> tuple[txmod.Transaction, int, int] | None:
        """The committed transaction, waiting up to ``timeout_s`` (at most 30 s) for it.

        Looked up on a pooled read connection after each commit, without the
        service lock: long-polls do not queue behind admission or sealing."""
        deadline = time.monotonic() + min(timeout_s, 30.0)
        while True:
            with self._committed:
                seen = self._commits
            with self.ledger.reader() as view:
                found = view.tx(tx_id)
            remaining = deadline - time.monotonic()
            if found is not None or remaining <= 0:
                return found
            with self._committed:
                if self._commits == seen:
                    self._committed.wait(min(remaining, 0.5))

    def tx_proof(self, tx_id: bytes) -> merkle.InclusionProof:
        found = self.ledger.tx(tx_id)
        if found is None:
            raise NotFoundError("no committed transaction with that id")
        _, height, index = found
        ids = self.ledger.tx_ids_of_block(height)
        block = self.ledger.block_at(height)
        assert block is not None
        leaves = [t.to_bytes() for t in block.txs]
        del ids
        return merkle.InclusionProof(
            leaf_index=index,
            tree_size=len(leaves),
            hashes=merkle.inclusion_proof(leaves, index),
            root=block.header.tx_root,
        )

    def pending(self, offset: int, limit: int) -> list[txmod.Transaction]:
        with self._lock:
            return self._pool.page(offset, min(limit, 500))

    def next_nonce(self, address: str) -> int:
        with self._lock:
            return self._pool.state().nonce(Address(address))

    def account(self, address: str) -> dict[str, Any] | None:
        with self._lock:
            return views.account(self._pool.state(), Address(address))

    def record(self, record_id: str) -> dict[str, Any] | None:
        return views.record(self._committed_state(), record_id)

    def version(self, record_id: str, number: int) -> dict[str, Any] | None:
        return views.version(self._committed_state(), record_id, number)

    def patient_records(self, patient: str, offset: int, limit: int) -> list[dict[str, Any]]:
        return views.patient_records(self.ledger, self._committed_state(), patient, offset, limit)

    def readers(
        self, patient: str, record_id: str | None, category: str, author: str
    ) -> dict[str, bytes]:
        with self._lock:
            state = self._pool.state()
            addresses = policy.readers_for_new_version(
                state, Address(patient), record_id, category, Address(author), self._clock()
            )
            return views.encryption_keys(state, addresses)

    def wrapped_key(self, record_id: str, number: int, reader: str) -> bytes | None:
        """The reader's wrapped data key for a version (a lookup, not a permission)."""
        return policy.wrapped_key_for(self._committed_state(), record_id, number, reader)

    def epoch(self, patient: str) -> int:
        with self._lock:
            return self._pool.state().epoch(Address(patient))

    def history(self, patient: str, offset: int, limit: int) -> list[dict[str, Any]]:
        return views.history(self.ledger, patient, offset, min(limit, 500))

    def access_requests(self, patient: str) -> list[dict[str, Any]]:
        actors = {
            e["actor"] for e in self.history(patient, 0, 500) if e["kind"] == "access.request"
        }
        return views.requests(self._committed_state(), patient, sorted(actors))

    def grants(self, patient: str) -> list[dict[str, Any]]:
        return views.grants(self._committed_state(), patient)

    def evidence(self, limit: int) -> list[dict[str, Any]]:
        """Recorded validator misbehaviour (``validator.evidence``), oldest offender first."""
        with self.ledger.reader() as view:
            rows = view.scan_prefix("evidence/", limit)
        out = []
        for key, raw in rows:
            _, offender, height = key.split("/")
            reporter, tx_id = encoding.decode(raw)
            out.append(
                {"offender": offender, "height": int(height), "reporter": reporter, "tx_id": tx_id}
            )
        return out

    def _committed_state(self) -> State:
        return State(reader=self._reader)

    # -- blobs and reads ---------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        return self.put_blobs([data])[0]

    def put_blobs(self, items: Sequence[bytes]) -> list[str]:
        """Store a batch of blobs with one index commit; their CIDs in order."""
        for data in items:
            if len(data) > self.settings.max_blob_bytes:
                raise PayloadTooLarge(f"blob exceeds {self.settings.max_blob_bytes} bytes")
        return [str(cid) for cid in self.blobs.put_many(items)]

    def read(self, data: bytes) -> dict[str, Any]:
        """Admit a signed record.read (the audit event) and return what it unlocks."""
        tx = self._decode(data)
        if tx.kind != "record.read":
            raise Rejected("wrong_kind", "a read must be a record.read transaction")
        with self._lock:
            self._admit(tx)
            state = self._pool.state()
            record_id = str(tx.payload["record_id"])
            number = int(tx.payload["version"])
            meta = views.version(state, record_id, number)
            wrapped = policy.wrapped_key_for(state, record_id, number, tx.sender)
        if meta is None or wrapped is None:
            raise NotFoundError("no wrapped key for this reader and version")
        blob = self.blobs.get(meta["cid"])
        self.counters["reads"] += 1
        return {**meta, "blob": blob, "wrapped_key": wrapped, "tx_id": tx.tx_id.hex()}

    # -- peers (seed 003) --------------------------------------------------

    def register_node(self, url: str) -> list[str]:
        with self._lock:
            if url not in self._peers:
                self._peers.append(url)
            return list(self._peers)

    def peers(self) -> list[str]:
        return list(self._peers)

    # -- network (helper) --------------------------------------------------
    # Additions for multi-node operation; node.networked.NetworkedService
    # overrides register_with and adds gossip around the entry points above.

    def register_with(self, url: str) -> dict[str, Any]:
        """Seed 003's /register_with: join through the peer at ``url`` and sync."""
        raise Unavailable("this node runs without networking")

    def validator_set(self) -> dict[Address, bytes]:
        """The validators (address -> current key) of committed state."""
        return dict(self._validators())

    def seals_alone(self) -> bool:
        """Whether this node is the only validator, so its own vote finalises a block."""
        return set(self._validators()) == {self.node_address}

    def peer_key(self, address: str) -> bytes | None:
        """The key of an admitted node (see node.peers.admitted_key), else None.

        Asked for every node-to-node request; answered from memory until the
        head moves (admission changes only with a block)."""
        self._fresh_cache()
        keys = self._peer_keys  # this head's: an answer read meanwhile goes to it, not a newer one
        if address not in keys:
            if len(keys) >= PEER_KEYS_KEEP:
                keys.clear()
            keys[address] = admitted_key(self._committed_state(), address)
        return keys[address]

    def _validators(self) -> dict[Address, bytes]:
        """The committed validator set, read once per head (do not mutate it)."""
        self._fresh_cache()
        return self._cached_validators

    def _fresh_cache(self) -> None:
        """Drop what was cached from the state of an older head."""
        head = self._head.hash
        if head != self._cached_at:
            validators = self._read_validators()
            self._peer_keys = {}
            self._cached_validators = validators
            self._cached_at = head

    def add_blocks(self, items: Sequence[bytes]) -> ChainHead:
        """Verify and commit consecutive blocks, in order; stops at the first refused."""
        for data in items:
            self.add_block(data)
        return self.head()

    def expire_pending(self, max_age_ms: int) -> int:
        """Drop pending transactions older than ``max_age_ms``; how many were dropped.

        For a node that cannot seal: a transaction it forwarded that no block
        took in that time was refused elsewhere and would otherwise block the
        sender's later sequence numbers here.
        """
        cutoff = self._clock() - max_age_ms
        with self._lock:
            dropped = 0
            while (oldest := self._pool.oldest_ms) is not None and oldest < cutoff:
                self._pool.remove(self._pool.page(0, 1))
                dropped += 1
            if dropped:
                self._open = None
                self._pool.rebuild(self._context())
            return dropped

    def forget_pending(self, tx_ids: Sequence[bytes]) -> int:
        """Drop the named pending transactions (a validator refused them)."""
        with self._lock:
            wanted = set(tx_ids)
            gone = [t for t in self._pool.page(0, len(self._pool)) if t.tx_id in wanted]
            if gone:
                self._pool.remove(gone)
                self._open = None
                self._pool.rebuild(self._context())
            return len(gone)

    def syncing_to(self, height: int) -> None:
        """Catch-up is fetching blocks up to ``height`` from a peer (-1: it stopped)."""
        self._syncing_to = height

    def is_lagging(self) -> bool:
        """Catch-up is under way and more than one block behind."""
        return self._syncing_to > self.head().height + 1

    def pending_count(self) -> int:
        return len(self._pool)

    def propose_block(self, height: int) -> blockmod.Block | None:
        """A block of pending transactions for ``height`` by this node, not committed.

        For consensus engines that decide before committing (BFT): built exactly
        as ``_seal`` builds one, without a certificate. None when the head is not
        at ``height - 1`` or nothing pending executes.
        """
        with self._lock:
            if height != self.head().height + 1 or not len(self._pool):
                return None
            block, result, rejected = self._assemble()
            if rejected:
                self._drop(rejected)
            if block is not None:
                self._remember(block.hash, block.header.prev_hash, result)
            return block

    def decode_block(self, data: bytes) -> blockmod.Block:
        """``block_from_bytes``, reusing the pending pool's decoded transactions
        (a proposal is mostly transactions this node admitted already); the rest,
        when there are many, are decoded and signature-checked in the verifier
        workers, so the consensus thread does not verify them under the GIL."""
        return blockmod.block_from_bytes(data, self._pooled, self._decode_foreign)

    def _pooled(self, data: bytes) -> txmod.Transaction | None:
        return self._pool.get(hashlib.sha256(data).digest())

    def _decode_foreign(self, items: Sequence[bytes]) -> list[txmod.Transaction]:
        """Strict decodes of a block's transactions that are not pending here. When
        there are many, their signatures are checked in the verifier workers and
        those that verify are remembered by id, so checking the block does not
        verify them again; the others are checked there (and refused)."""
        txs = [txmod.from_bytes(data) for data in items]
        if len(txs) < verifier.MIN_PARALLEL:
            return txs
        for tx, error in zip(txs, self.verifier().signatures(txs), strict=True):
            if error is None:
                self._verified[tx.tx_id] = None
        while len(self._verified) > VERIFIED_KEEP:
            self._verified.popitem(last=False)
        return txs

    def check_block(self, block: blockmod.Block) -> None:
        """Every check of ``add_block`` except the certificate, without committing.

        For a proposed block that has no certificate yet; raises what
        ``add_block`` would raise.
        """
        with self._lock:
            head = self.head()
            self._check_link(block, head)
            if block.header.proposer not in self._validators():
                raise Rejected("not_a_validator", "block proposer is not a validator")
            self._execute_checked(block, head)

    # -- reorganisation (proof of work) --------------------------------------

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the writer lock across several calls, so that a reorganisation (roll
        back, apply the new branch, readmit) is one step to every other caller."""
        with self._lock:
            yield

    def roll_back_to(self, height: int) -> tuple[list[blockmod.Block], list[txmod.Transaction]]:
        """Undo every block above ``height``; the undone blocks (newest first) and the
        transactions that were pending, which leave the pool: they were admitted
        against the state being undone. The caller readmits what still applies."""
        with self._lock:
            removed = self.ledger.rollback_to(height)
            self._recent.clear()  # undone blocks' transactions may be gossiped again
            pending = self._pool.page(0, len(self._pool))
            self._pool.remove(pending)
            self._head = self._load_head()
            self._open = None
            self._pool.rebuild(self._context())
            self._signal_commit()
            return removed, pending

    def readmit(self, txs: Sequence[txmod.Transaction]) -> list[txmod.Transaction]:
        """Admit again, in order, transactions a reorganisation displaced; those already
        committed or pending, or that no longer apply, are left out. Returns the admitted."""
        admitted: list[txmod.Transaction] = []
        with self._lock:
            for tx in txs:
                if self._pool.contains(tx.tx_id) or self.ledger.tx(tx.tx_id) is not None:
                    continue
                try:
                    self._admit(tx)
                except (EhrError, Rejected):
                    continue
                admitted.append(tx)
        return admitted

    def pending_ids(self) -> list[bytes]:
        with self._lock:
            return [t.tx_id for t in self._pool.page(0, len(self._pool))]

    def is_validator(self) -> bool:
        return self.node_address in self._validators()

    def wait_for_height(self, height: int, timeout_s: float) -> ChainHead:
        """The head once it reaches ``height``, or the head when the timeout passes."""
        deadline = time.monotonic() + min(timeout_s, 30.0)
        with self._committed:
            while self.head().height < height:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._committed.wait(min(remaining, 0.5))
        return self.head()
