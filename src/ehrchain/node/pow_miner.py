"""The nonce search of a proof-of-work node, on its own thread.

When this node is a validator and the pending pool is due (full, waited
``max_wait_ms``, or ``/mine`` forced it), the miner takes a block of pending
transactions over the head (``NodeService.propose_block``: every transaction
executed, the state root computed) and searches nonces with
``consensus.pow.mine`` in slices of ``slice_nonces``. Between slices it looks at
the head: when another block has been committed there, the search is
abandoned and a new block is built on the new head, so a better block never
waits for a search that can no longer win. A header found is sealed with this
node's one-vote certificate and handed to ``found`` (the driver, which puts it
through the fork choice like any received block).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

from ehrchain.consensus.pow import mine
from ehrchain.core import block as blockmod
from ehrchain.node.service import NodeService

__all__ = ["Miner"]

SLICE_NONCES: Final = 256
"""A few milliseconds of hashing: how stale a search may run after a new head."""
IDLE_POLL_S: Final = 0.05
logger = logging.getLogger("ehrchain.node.pow")


class Miner:
    """Mines blocks of pending transactions at ``target`` bits while started."""

    def __init__(
        self,
        service: NodeService,
        target: int,
        found: Callable[[blockmod.Block], None],
        *,
        slice_nonces: int = SLICE_NONCES,
    ) -> None:
        self._service = service
        self._target = target
        self._found = found
        self._slice = slice_nonces
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._forced = False
        self._thread = threading.Thread(target=self._run, name="pow-miner", daemon=True)
        self.mined = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def poke(self) -> None:
        """Transactions arrived: look at the pool now rather than at the next poll."""
        self._wake.set()

    def force(self) -> None:
        """Mine what is pending without waiting for the sealing limits (``/mine``)."""
        self._forced = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                candidate = self._candidate()
                sealed = None if candidate is None else self._search(candidate)
            except Exception:  # the miner must outlive one bad block
                logger.exception("mining failed")
                candidate = sealed = None
            if sealed is not None:
                self.mined += 1
                self._found(sealed)
            elif candidate is None:
                self._wake.wait(IDLE_POLL_S)
                self._wake.clear()

    def _candidate(self) -> blockmod.Block | None:
        """A block of pending transactions over the head, when this node should mine one."""
        service = self._service
        if not service.is_validator():
            return None
        if not (self._forced or service.should_seal()):
            return None
        self._forced = False
        return service.propose_block(service.head().height + 1)

    def _search(self, block: blockmod.Block) -> blockmod.Block | None:
        """The block sealed with a nonce that meets the target, or None if the head moved."""
        header = block.header
        nonce = 0
        while not self._stop.is_set():
            if self._service.head().hash != header.prev_hash:
                return None
            found = mine(header, self._target, nonce, self._slice)
            if found is not None:
                return blockmod.Block(found, block.txs, self._service.engine.certify(found))
            nonce += self._slice
        return None
