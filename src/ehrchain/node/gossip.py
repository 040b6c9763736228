"""Gossip: push admitted transactions, sealed blocks and new blobs to every peer.

One lane per peer, each a bounded queue drained by its own thread, so a slow or
dead peer delays nobody else and cannot make the node's memory grow: when a
lane is full its oldest item is dropped (the peer's own catch-up recovers
blocks; a transaction it missed reaches a validator through another peer, or
its sender resubmits). Broadcasting is idempotent: an item already sent is
not queued again. Consensus messages have their own queue and sender thread per
peer, so a vote never waits behind a batch of transactions in flight to that
peer, and the messages queued meanwhile go together in one batch.

Each sender thread keeps a stream to its peer (``PeerStream``) for transaction
and consensus batches and blocks, one frame each, and sends them as requests
while it has none: when a stream cannot be opened (this node uses an HTTP proxy,
the peer is down or refuses it) it tries again ``STREAM_RETRY_S`` later, and a
batch whose frame could not be sent goes as a request.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from ehrchain.node.peer_client import (
    BLOCK_FRAME,
    CONSENSUS_FRAME,
    TXS_FRAME,
    ClientPool,
    PeerClient,
    PeerError,
    PeerStream,
)

__all__ = ["Gossip"]

MAX_QUEUE: Final = 10_000
MAX_TX_BATCH: Final = 500
MAX_CONSENSUS_BATCH: Final = 64
MAX_CONSENSUS_BATCH_BYTES: Final = 4 * 1024 * 1024
"""A proposal carries its block, so a batch is also bounded in bytes."""
MAX_SEEN: Final = 100_000
LAZY_WAIT_S: Final = 0.5
"""Longest a relayed consensus message waits for a message of this node to go with."""
RETRY_PAUSE_S: Final = 0.5
STREAM_RETRY_S: Final = 5.0
"""How long a sender thread sends requests after its stream could not be opened."""

TX, BLOCK, BLOB, CONSENSUS = "tx", "block", "blob", "consensus"
STREAMED: Final = {TX: TXS_FRAME, CONSENSUS: CONSENSUS_FRAME, BLOCK: BLOCK_FRAME}
"""The kinds that go on a stream, and their frame names."""
Item = tuple[str, bytes]
logger = logging.getLogger("ehrchain.node.gossip")


class _Lane:
    """The queues and sender threads of one peer: consensus messages on one thread,
    transactions, blocks and blobs on the other."""

    def __init__(self, client: PeerClient, max_queue: int) -> None:
        self.client = client
        self._items: collections.deque[Item] = collections.deque(maxlen=max_queue)
        self._urgent: collections.deque[Item] = collections.deque(maxlen=max_queue)
        self._lazy: collections.deque[Item] = collections.deque(maxlen=max_queue)
        self._ready = threading.Condition()
        self._stop = False
        self.sent = 0
        self.dropped = 0
        self.streamed = 0
        self._streams: dict[bool, PeerStream | None] = {}
        self._stream_retry: dict[bool, float] = {}
        """By sender thread (``urgent``): its stream, and when to try opening one again."""
        name = f"gossip {client.url}"
        self._threads = [
            threading.Thread(target=self._run, args=(False,), name=name, daemon=True),
            threading.Thread(target=self._run, args=(True,), name=f"{name} votes", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def put(self, items: Sequence[Item], *, lazy: bool = False) -> None:
        """Queue items of one kind, waking the senders once. ``lazy`` consensus relays
        go with the next urgent batch, or alone once they have waited ``LAZY_WAIT_S``
        (the sender wakes now only to time that)."""
        eager = self._urgent if items[0][0] == CONSENSUS else self._items
        queue = self._lazy if lazy else eager
        with self._ready:
            assert queue.maxlen is not None
            self.dropped += max(0, len(queue) + len(items) - queue.maxlen)
            queue.extend(items)
            self._ready.notify_all()

    def stop(self) -> None:
        with self._ready:
            self._stop = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in self._streams.values():
            if stream is not None:
                stream.close()

    def _next(self, urgent: bool) -> list[Item] | None:
        """The consensus messages queued (up to a batch), or the next item, or a run of
        consecutive transactions as one batch."""
        queue = self._urgent if urgent else self._items
        with self._ready:
            due = time.monotonic() + LAZY_WAIT_S
            while not self._stop and not queue:
                if not (urgent and self._lazy):
                    self._ready.wait()
                    due = time.monotonic() + LAZY_WAIT_S  # from the first relay queued
                elif (left := due - time.monotonic()) > 0:
                    self._ready.wait(left)
                else:
                    break  # relays waited long enough: they go alone
            if self._stop:
                return None
            if not queue:
                return self._take(self._lazy, MAX_CONSENSUS_BATCH, [])
            batch = self._take(queue, MAX_CONSENSUS_BATCH if urgent else MAX_TX_BATCH, [])
            if urgent and self._lazy:
                batch = self._take(self._lazy, MAX_CONSENSUS_BATCH, batch)
            return batch

    @staticmethod
    def _take(queue: collections.deque[Item], limit: int, batch: list[Item]) -> list[Item]:
        """Add to ``batch`` the run of items at the head of ``queue`` of the kind of its
        first one (one item unless they are transactions or consensus messages), up to
        ``limit`` items and, for consensus messages, ``MAX_CONSENSUS_BATCH_BYTES``."""
        kind = queue[0][0]
        size = sum(len(data) for _, data in batch)
        while queue and queue[0][0] == kind and len(batch) < limit:
            size += len(queue[0][1])
            if batch and kind == CONSENSUS and size > MAX_CONSENSUS_BATCH_BYTES:
                break
            batch.append(queue.popleft())
            if kind not in (TX, CONSENSUS):
                break
        return batch

    def _run(self, urgent: bool) -> None:
        while (batch := self._next(urgent)) is not None:
            try:
                self._send(batch, urgent)
                with self._ready:
                    self.sent += len(batch)
            except PeerError as exc:
                # Unreachable or refused: the peer recovers blocks by catch-up.
                logger.debug(
                    "gossip to a peer failed", extra={"peer": self.client.url, "why": str(exc)}
                )
                if exc.status == 0:
                    with self._ready:
                        self._ready.wait(RETRY_PAUSE_S)
            except Exception:
                logger.exception("gossip lane error", extra={"peer": self.client.url})

    def _send(self, batch: list[Item], urgent: bool) -> None:
        kind = batch[0][0]
        if kind in STREAMED and self._stream_send(urgent, STREAMED[kind], batch):
            return
        if kind == TX:
            self.client.push_txs([data for _, data in batch])
        elif kind == BLOCK:
            self.client.push_block(batch[0][1])
        elif kind == BLOB:
            self.client.push_blob(batch[0][1])
        elif len(batch) == 1:
            self.client.push_consensus(batch[0][1])
        else:
            self.client.push_consensus_batch([data for _, data in batch])

    def _stream_send(self, urgent: bool, frame: str, batch: list[Item]) -> bool:
        """Send the batch as one frame on this thread's stream; False when it has no
        stream or the stream broke (it is reopened for a later batch)."""
        stream = self._streams.get(urgent)
        if stream is None:
            if time.monotonic() < self._stream_retry.get(urgent, 0.0):
                return False
            try:
                stream = self.client.stream()
            except PeerError as exc:
                logger.debug("no stream", extra={"peer": self.client.url, "why": str(exc)})
            if stream is None:
                self._stream_retry[urgent] = time.monotonic() + STREAM_RETRY_S
                return False
            self._streams[urgent] = stream
        try:
            stream.send(frame, [data for _, data in batch])
        except PeerError:
            self._streams[urgent] = None
            return False
        with self._ready:
            self.streamed += len(batch)
        return True


class Gossip:
    """Fan-out to the peers ``urls()`` names, through ``clients``."""

    def __init__(
        self,
        urls: Callable[[], Sequence[str]],
        clients: ClientPool,
        *,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self._urls = urls
        self._clients = clients
        self._max_queue = max_queue
        self._lanes: dict[str, _Lane] = {}
        self._seen: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._closed = False

    def txs(self, items: Sequence[bytes]) -> None:
        self._broadcast(TX, items)

    def block(self, data: bytes) -> None:
        self._broadcast(BLOCK, [data])

    def blob(self, data: bytes) -> None:
        self._broadcast(BLOB, [data])

    def consensus(
        self, items: Sequence[bytes], to: Sequence[str] | None = None, *, lazy: bool = False
    ) -> None:
        """Consensus messages, in order, to the peers ``to`` (all when None), queued
        together; never deduplicated, because the protocol re-sends on purpose.
        ``lazy`` ones (relays) go with the next other consensus message to the peer,
        or alone after ``LAZY_WAIT_S``."""
        if not items:
            return
        batch = [(CONSENSUS, data) for data in items]
        for lane in self._lanes_for(to):
            lane.put(batch, lazy=lazy)

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                url: {"sent": ln.sent, "streamed": ln.streamed, "dropped": ln.dropped}
                for url, ln in self._lanes.items()
            }

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            lanes = list(self._lanes.values())
        for lane in lanes:
            lane.stop()

    def _broadcast(self, kind: str, items: Sequence[bytes]) -> None:
        """Queue on every lane, at once, the items not sent before."""
        if not items or not self._urls():
            return  # no peers: nothing to send, and nothing worth hashing
        tag = kind.encode()
        digests = [hashlib.sha256(tag + data).digest() for data in items]
        fresh: list[Item] = []
        with self._lock:
            seen = self._seen
            for digest, data in zip(digests, items, strict=True):
                if digest not in seen:
                    seen[digest] = None
                    fresh.append((kind, data))
            while len(seen) > MAX_SEEN:
                seen.popitem(last=False)
        if fresh:
            for lane in self._lanes_for(None):
                lane.put(fresh)

    def _lanes_for(self, urls: Sequence[str] | None) -> list[_Lane]:
        wanted = list(self._urls()) if urls is None else list(urls)
        with self._lock:
            if self._closed:
                return []
            for url in wanted:
                if url not in self._lanes:
                    self._lanes[url] = _Lane(self._clients.get(url), self._max_queue)
            return [self._lanes[url] for url in wanted]
