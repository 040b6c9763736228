"""Run the pure proof-of-work block tree (``consensus.pow_chain``) for one node.

The handler never does I/O; this driver feeds it one event at a time (under
one lock) and carries out its outputs in order. Events: blocks received on
``/add_block`` or by catch-up, blocks this node's miner found
(``node.pow_miner``), a peer asking for blocks, and the handler's own tick.

- ``Extend``: commit the block through ``NetworkedService.commit_block``, the
  full verification every block gets (link, work and seal, every signature,
  every state transition to the state root).
- ``Reorg``: roll the ledger back to the fork point with its undo log
  (``NodeService.roll_back_to``), then commit the new branch block by block with
  the same verification, all under the service's writer lock, so clients see
  one step. A block that fails to apply is reported back with ``Invalid``: the
  handler drops it and its descendants and says where to go instead.
- ``ReturnToPool``: once the event is done, the transactions of the undone
  blocks, then those that were pending, are admitted again against the new
  head; those already on the new chain, or that no longer apply, are left out.
- ``Gossip``: a block goes to every peer's ``/add_block``; a request for a
  missing parent is asked of the peers (``GET /consensus/blocks/{hash}``) on the
  driver's own thread, never while holding the lock.

Blocks are checked for work (the chain's fixed target, from genesis) and seal
before the handler sees them, so ``/add_block`` refuses a bad one with the
reason and nothing changes. The tree starts from the last ``keep_depth``
committed blocks, so a restarted node can still leave a branch that deep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Final

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehrchain.api import bodies
from ehrchain.consensus import pow_chain
from ehrchain.consensus.bft_types import ScheduleTimeout
from ehrchain.consensus.errors import ConsensusError
from ehrchain.consensus.messages import Start, Tick
from ehrchain.consensus.pow import check_seal, check_work
from ehrchain.consensus.pow_chain import (
    BlockMsg,
    Extend,
    GetBlock,
    Gossip,
    Invalid,
    PowContext,
    PowMessage,
    PowOutput,
    PowState,
    Reorg,
    Reply,
    ReturnToPool,
)
from ehrchain.core import block as blockmod
from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError
from ehrchain.core.types import Address, BlockHash, ChainId, TxId
from ehrchain.crypto.errors import CryptoError
from ehrchain.crypto.keystore import Identity
from ehrchain.ehr.errors import EhrError
from ehrchain.node.errors import NodeError, Rejected, Unavailable
from ehrchain.node.gossip import Gossip as GossipLanes
from ehrchain.node.networked import NetworkedService
from ehrchain.node.peer_client import PeerClient, PeerError
from ehrchain.node.pow_miner import Miner
from ehrchain.node.sync import record_cids
from ehrchain.storage.errors import StorageError
from ehrchain.storage.ledger import ChainHead

__all__ = ["PowDriver", "pow_router"]

TICK_MS: Final = 1000
KEEP_DEPTH: Final = 100
MAX_FAILURES: Final = 256
APPLY_ERRORS: Final = (NodeError, ConsensusError, CoreError, CryptoError, EhrError, StorageError)
logger = logging.getLogger("ehrchain.node.pow")


class _OutOfStep(Exception):
    """The ledger's head is not where the handler's tree says (a bug, or a foreign write)."""


@dataclass
class _Displaced:
    """Transactions a reorganisation took off the chain or out of the pool."""

    undone: dict[TxId, txmod.Transaction] = field(default_factory=dict)
    returned: list[txmod.Transaction] = field(default_factory=list)
    pending: list[txmod.Transaction] = field(default_factory=list)

    def rolled_back(
        self, blocks: Sequence[blockmod.Block], pending: Sequence[txmod.Transaction]
    ) -> None:
        for block in reversed(blocks):  # oldest first, so nonces come back in order
            for tx in block.txs:
                self.undone[tx.tx_id] = tx
        self.pending.extend(pending)

    def return_to_pool(self, tx_ids: Sequence[TxId]) -> None:
        """In chain order (the handler lists the newest block first), so each sender's
        sequence numbers come back in the order they were committed."""
        wanted = set(tx_ids)
        self.returned.extend(tx for tx_id, tx in self.undone.items() if tx_id in wanted)

    def in_order(self) -> list[txmod.Transaction]:
        return [*self.returned, *self.pending]


class PowDriver:
    """One node's view of the proof-of-work block tree, its miner and its outputs."""

    def __init__(
        self,
        service: NetworkedService,
        identity: Identity,
        gossip: GossipLanes,
        clients: Callable[[], Sequence[PeerClient]],
        target: int,
        *,
        tick_ms: int = TICK_MS,
        keep_depth: int = KEEP_DEPTH,
    ) -> None:
        self._service = service
        self._gossip = gossip
        self._clients = clients
        self.ctx = PowContext(
            chain_id=ChainId(service.chain_id),
            me=Address(identity.address),
            target=target,
            validator_set_at=lambda _height: service.validator_set(),
            tick_ms=tick_ms,
            keep_depth=keep_depth,
        )
        self._lock = threading.Lock()
        self.state = self._tree_from_ledger()
        self._failures: OrderedDict[BlockHash, str] = OrderedDict()
        self._wanted: list[BlockHash] = []
        self._tick_at: float | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="pow", daemon=True)
        self.miner = Miner(service, target, self._mined)
        self.reorgs = 0

    @property
    def keep_depth(self) -> int:
        return self.ctx.keep_depth

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._handle(Start())
        self._thread.start()
        self.miner.start()

    def stop(self) -> None:
        self.miner.stop()
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=10)

    # -- intake ------------------------------------------------------------------

    def receive_block(self, data: bytes) -> ChainHead:
        """A block from a peer or catch-up: checked, then given to the fork choice.

        Refused, with nothing changed, when it does not decode, is for another
        chain, lacks the chain's work or is not sealed by a validator. Refused
        too when it (or its parent) turned out not to apply, once the node is
        back on its best valid chain. Accepted otherwise, tip or not.
        """
        try:
            block = blockmod.block_from_bytes(data)
        except CoreError as exc:
            raise Rejected("invalid_block", str(exc)) from exc
        if block.header.chain_id != self.ctx.chain_id:
            raise Rejected("wrong_chain", "block is for another chain")
        check_work(block.header, self.ctx.target)
        check_seal(block, self._service.validator_set())
        with self._lock:
            self._handle(BlockMsg(block))
            dropped = {block.hash, block.header.prev_hash} & self.state.invalid
            failure = self._failures.get(block.hash)
        if dropped:
            why = failure or "it builds on a block that does not apply"
            raise Rejected("invalid_block", f"block {block.header.height} refused: {why}")
        return self._service.head()

    def answer(self, block_hash: BlockHash, sender: Address) -> list[bytes]:
        """A peer's ``GetBlock``: the block and some of its ancestors, newest first."""
        with self._lock:
            _, outputs = pow_chain.on_message(self.state, GetBlock(block_hash, sender), self.ctx)
        return [
            o.message.block.to_bytes()
            for o in outputs
            if isinstance(o, Reply) and isinstance(o.message, BlockMsg)
        ]

    def knows(self, block_hash: bytes) -> bool:
        with self._lock:
            return BlockHash(block_hash) in self.state.work

    def mine_now(self, timeout_s: float) -> blockmod.Block | None:
        """``/mine``: mine what is pending now and wait until it is on the chain.

        Returns the block holding the last of those transactions (None if nothing
        was pending or none of it still applies).
        """
        service = self._service
        ids = service.pending_ids()
        if not ids:
            return None
        self.miner.force()
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = [i for i in ids if service.tx(i) is None]
            if not waiting or not set(waiting) & set(service.pending_ids()):
                break
            if time.monotonic() >= deadline:
                raise Unavailable(f"{len(waiting)} pending transactions not mined in {timeout_s} s")
            service.wait_for_tx(waiting[0], min(0.5, deadline - time.monotonic()))
        committed = [found for i in ids if (found := service.tx(i)) is not None]
        return service.block(max(found[1] for found in committed)) if committed else None

    def _mined(self, block: blockmod.Block) -> None:
        with self._lock:
            self._handle(BlockMsg(block))

    # -- the handler -------------------------------------------------------------

    def _handle(self, msg: PowMessage) -> None:
        """One event through the handler, and everything it leads to; caller holds the lock."""
        self.state, outputs = pow_chain.on_message(self.state, msg, self.ctx)
        displaced = _Displaced()
        with ExitStack() as writer_lock:
            locked = False
            try:
                while True:
                    if not locked and _has_reorg(outputs):
                        self._fetch_blobs(outputs)
                        writer_lock.enter_context(self._service.exclusive())
                        locked = True
                    failed = self._perform(outputs, displaced)
                    if failed is None:
                        break
                    self.state, outputs = pow_chain.on_message(
                        self.state, Invalid(failed), self.ctx
                    )
            except _OutOfStep as exc:
                logger.error("block tree out of step with the ledger", extra={"why": str(exc)})
                self.state = self._tree_from_ledger()
            if displaced.in_order():
                self._service.readmit(displaced.in_order())

    def _perform(self, outputs: Sequence[PowOutput], displaced: _Displaced) -> BlockHash | None:
        """Carry out outputs in order; stop applying at a block that fails (returned)."""
        failed: BlockHash | None = None
        for output in outputs:
            if isinstance(output, Gossip):
                self._send(output.message)
            elif isinstance(output, ScheduleTimeout):
                with self._wake:
                    self._tick_at = time.monotonic() + output.delay_ms / 1000
            elif isinstance(output, ReturnToPool):
                displaced.return_to_pool(output.tx_ids)
            elif isinstance(output, Reply) or failed is not None:
                continue  # replies are answered by ``answer``; nothing applies after a failure
            elif isinstance(output, Extend):
                failed = self._apply(output.block)
            elif isinstance(output, Reorg):
                failed = self._reorganise(output, displaced)
        return failed

    def _apply(self, block: blockmod.Block) -> BlockHash | None:
        head = self._service.head()
        if block.header.prev_hash != head.hash:
            raise _OutOfStep(f"block {block.header.height} does not extend head {head.height}")
        try:
            self._service.commit_block(block.to_bytes())
        except APPLY_ERRORS as exc:
            logger.warning(
                "block does not apply", extra={"height": block.header.height, "why": str(exc)}
            )
            self._failures[block.hash] = str(exc)
            if len(self._failures) > MAX_FAILURES:
                self._failures.popitem(last=False)
            return block.hash
        return None

    def _reorganise(self, reorg: Reorg, displaced: _Displaced) -> BlockHash | None:
        head = self._service.head()
        if not reorg.undo or reorg.undo[0] != head.hash:
            raise _OutOfStep(f"reorganisation does not start at head {head.height}")
        removed, pending = self._service.roll_back_to(head.height - len(reorg.undo))
        if tuple(b.hash for b in removed) != reorg.undo:
            raise _OutOfStep("the ledger undid other blocks than the tree's")
        displaced.rolled_back(removed, pending)
        self.reorgs += 1
        logger.info(
            "reorganisation",
            extra={"undone": len(reorg.undo), "applied": len(reorg.apply), "height": head.height},
        )
        for block in reorg.apply:
            failed = self._apply(block)
            if failed is not None:
                return failed
        return None

    def _fetch_blobs(self, outputs: Sequence[PowOutput]) -> None:
        """Blobs of a new branch, fetched before the writer lock is taken for it."""
        links = self._service.links
        if links is None:
            return
        for output in outputs:
            if isinstance(output, Reorg):
                links.ensure_blobs([cid for b in output.apply for cid in record_cids(b)])

    def _send(self, message: BlockMsg | GetBlock) -> None:
        if isinstance(message, BlockMsg):
            self._gossip.block(message.block.to_bytes())
            return
        with self._wake:
            if message.block_hash not in self._wanted:
                self._wanted.append(message.block_hash)
            self._wake.notify()

    def _tree_from_ledger(self) -> PowState:
        """The handler's tree over the last ``keep_depth`` committed blocks."""
        head = self._service.head().height
        root_height = max(0, head - self.ctx.keep_depth)
        root = self._service.block(root_height)
        if root is None:
            raise Unavailable(f"block {root_height} is missing from the ledger")
        chain: list[blockmod.Block] = []
        while len(chain) < head - root_height:
            page = self._service.blocks(root_height + 1 + len(chain), head - root_height)
            if not page:
                break
            chain.extend(page)
        return pow_chain.state_from_chain(root.hash, root_height, chain)

    # -- the driver's thread: ticks and missing parents ------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stop and not self._wanted and not self._tick_due():
                    timeout = 1.0 if self._tick_at is None else self._tick_at - time.monotonic()
                    self._wake.wait(max(0.0, min(timeout, 1.0)))
                if self._stop:
                    return
                wanted, self._wanted = self._wanted, []
                tick = self._tick_due()
                if tick:
                    self._tick_at = None
            try:
                for block_hash in wanted:
                    self._fetch_ancestors(block_hash)
                if tick:
                    with self._lock:
                        self._handle(Tick())
            except Exception:  # the driver's thread must outlive one bad round
                logger.exception("pow driver round failed")

    def _tick_due(self) -> bool:
        return self._tick_at is not None and self._tick_at <= time.monotonic()

    def _fetch_ancestors(self, block_hash: BlockHash) -> None:
        """Ask the peers in turn for a missing block; the first that has it sends ancestors too."""
        for client in self._clients():
            try:
                found = client.ancestors(block_hash)
            except PeerError as exc:
                logger.debug(
                    "peer could not send a block", extra={"peer": client.url, "why": str(exc)}
                )
                continue
            if not found:
                continue
            for data in reversed(found):  # oldest first
                try:
                    self.receive_block(data)
                except APPLY_ERRORS as exc:
                    logger.info(
                        "peer sent a bad block", extra={"peer": client.url, "why": str(exc)}
                    )
                    break
            return


def _has_reorg(outputs: Sequence[PowOutput]) -> bool:
    return any(isinstance(o, Reorg) for o in outputs)


def pow_router(driver: Callable[[], PowDriver | None]) -> APIRouter:
    """``GET /consensus/blocks/{hash}``: a block of this node's tree and its ancestors."""
    router = APIRouter(prefix="/consensus", tags=["node-to-node"])

    @router.get("/blocks/{block_hash}", summary="A block and some ancestors (proof of work)")
    async def blocks(
        request: Request, block_hash: str = Path(pattern="^[0-9a-f]{64}$")
    ) -> Response:
        current = driver()
        if current is None:
            raise Rejected("not_authorised", "this node does not run proof of work")
        sender = Address(str(request.scope.get("state", {}).get("peer", "")))
        found = await run_in_threadpool(
            current.answer, BlockHash(bytes.fromhex(block_hash)), sender
        )
        return Response(encoding.encode(found), media_type=bodies.CBOR)

    return router
