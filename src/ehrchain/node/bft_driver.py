"""Run the pure Tendermint handler (``consensus.bft``) for one node over HTTP.

The handler never does I/O; this driver does it, on one thread so the handler
sees one event at a time: messages from peers (``POST /consensus/message``,
signed as node requests like every node-to-node call), timers it asked for,
and ``Start``. Its outputs are carried out in order: broadcasts go through the
gossip lanes' priority queue, timers into a scheduler, a ``Decide`` commits the
block with its certificate through ``commit_decoded`` (``add_block`` without a
second decode: the same verification as any other block, reusing the result
of checking the proposal), and evidence of a double-sign goes on chain as a
``validator.evidence`` transaction.

The application side (``ProposalSource``): a proposer packs the pending pool
with ``propose_block``; every node validates a proposal with ``check_block``
(link, proposer, signatures, every state transition) against its own
committed state. The validator set of height h is the committed state's after
h - 1. When the ledger moves ahead of the handler (catch-up committed blocks),
the handler restarts at the new height.

Idle chains do not spin through rounds: the start of a height (``Start``,
``TimeoutCommit``) is held until this node has pending transactions or a peer
has sent a message for that height.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from ehrchain.consensus import bft
from ehrchain.consensus.bft_types import (
    BftContext,
    Broadcast,
    Decide,
    Output,
    RecordEvidence,
    ScheduleTimeout,
    Send,
    Timeouts,
)
from ehrchain.consensus.errors import ConsensusError
from ehrchain.consensus.evidence import DoubleSign
from ehrchain.consensus.messages import (
    Committed,
    Message,
    Precommit,
    Prevote,
    Proposal,
    SignedMessage,
    Start,
    Status,
    TimeoutCommit,
)
from ehrchain.consensus.wire import decode_message, encode_evidence, encode_message
from ehrchain.core import block as blockmod
from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError, EncodingError
from ehrchain.core.types import Address, ChainId
from ehrchain.crypto.errors import CryptoError
from ehrchain.crypto.keystore import Identity
from ehrchain.ehr.errors import EhrError
from ehrchain.node.errors import NodeError, Rejected
from ehrchain.node.gossip import Gossip
from ehrchain.node.networked import NetworkedService

__all__ = ["BftDriver", "NodeProposals", "SignedLog", "consensus_router", "deliver_batch"]

MAX_INBOX: Final = 10_000
MAX_AHEAD: Final = 4
MAX_EARLY: Final = 1024
MAX_EARLY_BYTES: Final = 32 * 1024 * 1024
"""Messages for the next ``MAX_AHEAD`` heights kept until this node gets there, and
their blocks' bytes."""
MAX_MESSAGE_BATCH: Final = 256
SIGNED_LOG: Final = "bft-signed.log"
IDLE_POLL_S: Final = 0.1
logger = logging.getLogger("ehrchain.node.bft")


class NodeProposals:
    """The application side of BFT for a node: propose from the pool, validate, decode."""

    def __init__(self, service: NetworkedService) -> None:
        self._service = service
        self._headers: OrderedDict[bytes, blockmod.Block | None] = OrderedDict()
        self._verdicts: OrderedDict[tuple[int, bytes], bool] = OrderedDict()

    def propose(self, height: int, round_: int) -> bytes | None:
        block = self._service.propose_block(height)
        if block is None:
            return None
        data = block.to_bytes()
        # Built here from transactions this node checked: the handler's check of its
        # own proposal would only decode it again and wait for the service lock.
        self._keep(data, block)
        self._judged((height, block.hash), True)
        return data

    def block(self, data: bytes) -> blockmod.Block | None:
        if data not in self._headers:
            try:
                decoded: blockmod.Block | None = self._service.decode_block(data)
            except CoreError:
                decoded = None
            self._keep(data, decoded)
        return self._headers[data]

    def _keep(self, data: bytes, block: blockmod.Block | None) -> None:
        self._headers[data] = block
        if len(self._headers) > 64:
            self._headers.popitem(last=False)

    def header(self, block: bytes) -> blockmod.BlockHeader | None:
        decoded = self.block(block)
        return None if decoded is None else decoded.header

    def validate(self, height: int, block: bytes) -> bool:
        decoded = self.block(block)
        if decoded is None or decoded.header.height != height:
            return False
        key = (height, decoded.hash)
        if key not in self._verdicts:
            self._judged(key, self._check(decoded))
        return self._verdicts[key]

    def _judged(self, key: tuple[int, bytes], valid: bool) -> None:
        self._verdicts[key] = valid
        if len(self._verdicts) > 256:
            self._verdicts.popitem(last=False)

    def _check(self, block: blockmod.Block) -> bool:
        try:
            self._service.check_block(block)
        except (NodeError, ConsensusError, CoreError, CryptoError, EhrError) as exc:
            logger.info("proposal refused", extra={"height": block.header.height, "why": str(exc)})
            return False
        return True


class SignedLog:
    """What this node signed at the height it is deciding, on disk before it is sent.

    A validator that restarts replays it into the handler, which then re-sends
    the votes it holds instead of signing new ones: a restart never makes an
    honest validator sign two different votes in one round. Records are
    length-prefixed wire messages, fsynced; a torn last record is ignored.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._height = -1
        self._logged: set[bytes] = set()

    def load(self, height: int) -> list[Proposal | Prevote | Precommit]:
        """The messages this node signed at ``height`` (none for any other height)."""
        found: list[Proposal | Prevote | Precommit] = []
        data = self._path.read_bytes() if self._path.exists() else b""
        offset = 0
        while offset + 4 <= len(data):
            size = int.from_bytes(data[offset : offset + 4], "big")
            record = data[offset + 4 : offset + 4 + size]
            if len(record) < size:
                break
            offset += 4 + size
            try:
                msg = decode_message(record)
            except ConsensusError:
                break
            if isinstance(msg, Proposal | Prevote | Precommit) and msg.height == height:
                found.append(msg)
                self._logged.add(record)
        self._height = height if found else -1
        return found

    def append(self, msg: Proposal | Prevote | Precommit) -> None:
        data = encode_message(msg)
        if msg.height == self._height and data in self._logged:
            return
        mode = "ab" if msg.height == self._height else "wb"
        if mode == "wb":
            self._logged = set()
        with self._path.open(mode) as fh:
            fh.write(len(data).to_bytes(4, "big") + data)
            fh.flush()
            os.fsync(fh.fileno())
        self._height = msg.height
        self._logged.add(data)


class BftDriver:
    """One node's BFT replica: the handler's state, an inbox, timers, one thread."""

    def __init__(
        self,
        service: NetworkedService,
        identity: Identity,
        gossip: Gossip,
        timeouts: Timeouts | None = None,
    ) -> None:
        self._service = service
        self._gossip = gossip
        self._source = NodeProposals(service)
        self.ctx = BftContext(
            chain_id=ChainId(service.chain_id),
            me=Address(identity.address),
            key=identity.signing,
            source=self._source,
            validator_set_at=lambda _height: service.validator_set(),
            timeouts=timeouts or Timeouts(),
        )
        self.state = bft.initial_state(service.head().height + 1, self.ctx)
        self._log = SignedLog(service.settings.data_dir / SIGNED_LOG)
        for mine in self._log.load(self.state.height):
            self.state, _ = bft.on_message(self.state, mine, self.ctx)
        self._inbox: list[Message] = []
        self._timers: list[tuple[float, int, Message]] = []
        self._seq = itertools.count()
        self._held: Message | None = Start()
        self._peer_heights: set[int] = set()
        self._early: dict[SignedMessage, None] = {}
        """Signed messages for the next heights in arrival order, each once, arrived
        while this node finishes the current one (a peer that decided first proposes
        and votes at once); ``_early_bytes`` is their proposals' block bytes."""
        self._early_bytes = 0
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="bft", daemon=True)
        self.decided = 0

    # -- intake ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=10)

    def deliver_many(self, items: Sequence[bytes]) -> None:
        """Messages from a peer, in order; all are refused if one does not decode."""
        messages = peer_messages(items)
        with self._wake:
            if len(self._inbox) + len(messages) > MAX_INBOX:
                raise Rejected("pool_full", "consensus inbox is full")
            self._inbox.extend(messages)
            self._wake.notify()

    def poke(self) -> None:
        """Something changed (a transaction was admitted): re-check a held height start."""
        with self._wake:
            self._wake.notify()

    # -- the loop ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            events = self._next_events()
            if events is None:
                return
            for event in events:
                try:
                    self._step(event)
                except Exception:  # one bad event must not stop consensus
                    logger.exception("bft step failed", extra={"event": type(event).__name__})
            self._follow_ledger()
            self._release_held()

    def _next_events(self) -> list[Message] | None:
        with self._wake:
            while not self._stop and not self._inbox and not self._due():
                wait = IDLE_POLL_S
                if self._timers:
                    wait = min(wait, max(0.0, self._timers[0][0] - time.monotonic()))
                self._wake.wait(wait)
                if self._held is not None and self._has_work():
                    break
            if self._stop:
                return None
            events, self._inbox = self._inbox, []
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                events.append(heapq.heappop(self._timers)[2])
            return events

    def _due(self) -> bool:
        return bool(self._timers) and self._timers[0][0] <= time.monotonic()

    def _has_work(self) -> bool:
        return self._service.pending_count() > 0 or self.state.height in self._peer_heights

    def _step(self, event: Message) -> None:
        if isinstance(event, Start | TimeoutCommit) and not self._has_work():
            self._held = event  # start the height once there is something to decide
            return
        if isinstance(event, Proposal | Prevote | Precommit):
            self._peer_heights = {h for h in self._peer_heights if h >= self.state.height}
            if event.height >= self.state.height:
                self._peer_heights.add(event.height)
            if self.state.height < event.height <= self.state.height + MAX_AHEAD:
                self._keep_early(event)
                return
        height = self.state.height
        self.state, outputs = bft.on_message(self.state, event, self.ctx)
        self._perform(outputs)
        if self.state.height != height:
            self._replay_early()

    def _keep_early(self, msg: SignedMessage) -> None:
        """Hold a message for a coming height (bounded in count and bytes; beyond that
        it is dropped, and the signer's periodic re-send or a relay brings it)."""
        if msg in self._early:
            return  # the same message from another peer (its relay)
        size = len(msg.block) if isinstance(msg, Proposal) else 0
        if len(self._early) < MAX_EARLY and self._early_bytes + size <= MAX_EARLY_BYTES:
            self._early[msg] = None
            self._early_bytes += size

    def _replay_early(self) -> None:
        """Hand the held messages of the height just reached to the handler; keep
        those of later heights, drop those of heights passed."""
        early, self._early, self._early_bytes = self._early, {}, 0
        for msg in early:
            if msg.height >= self.state.height:
                self._step(msg)  # held again if still ahead

    def _release_held(self) -> None:
        if self._held is not None and self._has_work():
            held, self._held = self._held, None
            if isinstance(held, TimeoutCommit) and held.height != self.state.height:
                held = Start()
            self._step(held)

    def _follow_ledger(self) -> None:
        """Blocks committed by catch-up move the handler to the next undecided height."""
        head = self._service.head().height
        if head >= self.state.height:
            self.state = bft.initial_state(head + 1, self.ctx)
            self._held = Start()
            self._replay_early()

    # -- outputs -----------------------------------------------------------------

    def _perform(self, outputs: Sequence[Output]) -> None:
        """Carry out the handler's outputs in order; consecutive broadcasts go to each
        peer's consensus queue together, so they leave as one request, and relays
        (lazy broadcasts) wait to travel with the next of them."""
        outgoing: list[bytes] = []
        relays: list[bytes] = []
        for output in outputs:
            if isinstance(output, Broadcast | Send):
                msg = output.message
                if isinstance(msg, Proposal | Prevote | Precommit) and msg.signer == self.ctx.me:
                    self._log.append(msg)  # on disk before anyone can see it
                # Send goes to everyone too: the peer set is small and Committed self-proving.
                lazy = isinstance(output, Broadcast) and output.lazy
                (relays if lazy else outgoing).append(encode_message(msg))
                continue
            if outgoing:
                self._gossip.consensus(outgoing)
                outgoing = []
            if isinstance(output, ScheduleTimeout):
                due = time.monotonic() + output.delay_ms / 1000
                heapq.heappush(self._timers, (due, next(self._seq), output.event))
            elif isinstance(output, Decide):
                self._commit(output)
            elif isinstance(output, RecordEvidence):
                self._report(output.evidence)
        self._gossip.consensus(outgoing)
        self._gossip.consensus(relays, lazy=True)

    def _report(self, evidence: DoubleSign) -> None:
        """Put a double-sign on chain: a ``validator.evidence`` transaction from this node.

        Every honest validator that sees the pair reports it; the first one in a
        block is recorded and the others are refused as already recorded.
        """
        logger.warning(
            "double-sign evidence", extra={"validator": evidence.offender, "at": evidence.height}
        )
        payload = {
            "offender": evidence.offender,
            "height": evidence.height,
            "proof": encode_evidence(evidence),
        }
        me, key = self.ctx.me, self.ctx.key
        if key is None:
            return  # a node that cannot sign leaves reporting to the validators
        try:
            nonce = self._service.next_nonce(me)
            tx = txmod.build("validator.evidence", self.ctx.chain_id, me, nonce, payload, key)
            self._service.submit(tx.to_bytes())
        except (NodeError, EhrError, CoreError) as exc:
            logger.info("evidence not submitted", extra={"why": str(exc)})

    def _commit(self, decided: Decide) -> None:
        if self._service.head().height >= decided.height:
            return  # catch-up committed it already
        block = self._source.block(decided.block)
        if block is None:
            logger.error("decided block does not decode", extra={"height": decided.height})
            return
        final = blockmod.Block(block.header, block.txs, decided.certificate)
        try:
            self._service.commit_decoded(final)
        except Rejected:
            if self._service.head().height >= decided.height:
                return  # catch-up committed it meanwhile
            raise
        self.decided += 1
        if block.header.proposer == self.ctx.me:
            self._gossip.block(final.to_bytes())  # followers that do not vote


def peer_messages(items: Sequence[bytes]) -> list[Message]:
    """Decode BFT messages a peer sent; Rejected (400) for the first that is not one."""
    messages: list[Message] = []
    for data in items:
        try:
            msg = decode_message(data)
        except ConsensusError as exc:
            raise Rejected("invalid_request", f"not a consensus message: {exc}") from None
        if not isinstance(msg, Proposal | Prevote | Precommit | Status | Committed):
            raise Rejected("invalid_request", "not a BFT message")
        messages.append(msg)
    return messages


def _running(driver: BftDriver | None) -> BftDriver:
    if driver is None:
        raise Rejected("not_authorised", "this node does not run BFT consensus")
    return driver


def deliver_batch(driver: BftDriver | None, items: Sequence[bytes]) -> None:
    """Consensus messages a peer sent together (a request or a stream frame), in
    order; Rejected when this node does not run BFT or the batch is not one."""
    current = _running(driver)
    if not 0 < len(items) <= MAX_MESSAGE_BATCH:
        raise Rejected("invalid_request", f"send 1 to {MAX_MESSAGE_BATCH} messages")
    current.deliver_many(items)


def consensus_router(driver: Callable[[], BftDriver | None]) -> APIRouter:
    """``POST /consensus/message``: one wire-encoded consensus message from a peer;
    ``POST /consensus/messages``: several, as a canonical CBOR list, in order."""
    router = APIRouter(prefix="/consensus", tags=["node-to-node"])

    @router.post("/message", status_code=202, summary="A consensus message from a peer")
    async def message(request: Request) -> Response:
        deliver_batch(driver(), [await request.body()])
        return Response(status_code=202)

    @router.post("/messages", status_code=202, summary="Consensus messages from a peer")
    async def messages(request: Request) -> Response:
        current = _running(driver())
        try:
            items = encoding.decode_byte_strings(await request.body())
        except EncodingError:
            raise Rejected(
                "invalid_request", "body is not a canonical CBOR list of messages"
            ) from None
        deliver_batch(current, items)
        return Response(status_code=202)

    return router
