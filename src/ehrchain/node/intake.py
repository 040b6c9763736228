"""Transactions peers gossip, admitted on one background thread.

A peer's gossip lane sends one request at a time, and consensus messages to
that peer wait behind it. If ``POST /p2p/txs`` answered only after verifying
and admitting the whole batch, every vote would queue behind the receiver's
admission work (tens of milliseconds for a batch of hundreds under load) at
each of a height's three message rounds. So the route only queues the batch
here and answers 202; this thread admits batches in arrival order. The queue
is bounded by transactions: when it is full the route answers 503 and the
lane drops that batch (as for any refused gossip, the transactions reach the
proposer through their own node or their sender retries).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["MAX_QUEUED_TXS", "PeerIntake"]

MAX_QUEUED_TXS: Final = 20_000
logger = logging.getLogger("ehrchain.node.intake")


class PeerIntake:
    """A bounded queue of gossiped batches and the thread that admits them."""

    def __init__(
        self, admit: Callable[[Sequence[bytes]], object], max_txs: int = MAX_QUEUED_TXS
    ) -> None:
        self._admit = admit
        self._max_txs = max_txs
        self._batches: collections.deque[Sequence[bytes]] = collections.deque()
        self._queued = 0
        self._ready = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="peer-intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stop = True
            self._ready.notify_all()
        self._thread.join(timeout=10)

    def offer(self, items: Sequence[bytes]) -> bool:
        """Queue a batch; False (nothing queued) when that would pass the bound."""
        with self._ready:
            if self._stop or (self._queued and self._queued + len(items) > self._max_txs):
                return False
            self._batches.append(items)
            self._queued += len(items)
            self._ready.notify_all()
            return True

    def drain(self, timeout_s: float) -> bool:
        """Wait until every queued batch has been admitted; False on timeout."""
        with self._ready:
            return self._ready.wait_for(lambda: not self._batches and not self._busy, timeout_s)

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._stop or bool(self._batches))
                if self._stop:
                    return
                batch = self._batches.popleft()
                self._busy = True
            try:
                self._admit(batch)
            except Exception:  # one bad batch must not stop the intake
                logger.exception("admitting gossiped transactions failed")
            finally:
                with self._ready:
                    self._queued -= len(batch)
                    self._busy = False
                    self._ready.notify_all()
