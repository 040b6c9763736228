"""Signature checks on the other core: a small process pool for large batches.

Decoding and Ed25519 verification are most of a transaction's CPU cost and do
not need state, so large batches are checked in worker processes (no GIL
shared) while the node's main process executes and persists the previous
batch. A worker returns only a verdict per item; the main process then decodes
accepted items without repeating the canonical-encoding and signature checks
(the worker performed them on exactly these bytes).

Blocks fetched in catch-up go the same way, one block per task
(``submit_blocks``): the workers check the blocks ahead while the main
process executes and commits the one before, in order.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Final

from ehrchain.core import block as blockmod
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError
from ehrchain.crypto.errors import CryptoError

Verdict = tuple[str, str] | None
"""None when the item verified; else (error class name, message)."""

MIN_PARALLEL: Final = 256


def _die_with_parent(parent: int) -> None:
    """Worker initializer: never outlive the node, even if it is killed with SIGKILL.

    A watchdog thread exits within a second of the node process going away.
    (Not PR_SET_PDEATHSIG: it fires when the *thread* that started the worker
    exits, and the pool starts on a request thread that the server retires
    when idle, which killed healthy workers and broke the pool for good.)
    """
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def check_batch(chain_id: str, items: Sequence[bytes]) -> list[Verdict]:
    """Run in a worker: full strict decode, chain id and signature for each item."""
    verdicts: list[Verdict] = []
    for data in items:
        try:
            txmod.verified_from_bytes(data, chain_id)
            verdicts.append(None)
        except (CoreError, CryptoError) as exc:
            verdicts.append((type(exc).__name__, str(exc)))
    return verdicts


def check_block(data: bytes) -> Verdict:
    """Run in a worker: what ``block_from_bytes`` checks (strict encoding of the block
    and of every transaction, shapes, size, count, Merkle root) and every
    transaction's signature. Not the link, certificate or state: those need the
    node's ledger."""
    try:
        block = blockmod.block_from_bytes(data)
        for t in block.txs:
            t.verify_signature()
    except (CoreError, CryptoError) as exc:
        return (type(exc).__name__, str(exc))
    return None


class VerifierPool:
    """Splits a batch across worker processes and gathers the verdicts in order."""

    def __init__(self, chain_id: str, workers: int = 2) -> None:
        self.chain_id = chain_id
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )

    def check(self, items: Sequence[bytes]) -> list[Verdict]:
        size = -(-len(items) // self.workers)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        futures = [self._pool.submit(check_batch, self.chain_id, chunk) for chunk in chunks]
        return [verdict for future in futures for verdict in future.result()]

    def submit_blocks(self, items: Sequence[bytes]) -> list[Future[Verdict]]:
        """One task per block, so both workers check blocks ahead of the consumer."""
        return [self._pool.submit(check_block, data) for data in items]

    def warm_up(self) -> None:
        """Start every worker process (each imports ehrchain once)."""
        futures = [self._pool.submit(check_batch, self.chain_id, []) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
