"""Signature checks on the other core: a small process pool for large batches.

Ed25519 verification is most of a transaction's CPU cost and needs no state,
so the signatures of a large batch are checked in worker processes (no GIL
shared) while the node's main process executes and persists the previous
batch. The main process decodes each transaction (strictly: canonical encoding,
shape, chain id) and sends the workers only what a signature check needs (key,
signed bytes, signature); a worker returns a verdict per item. Decoding once,
in the process that keeps the result, is cheaper than decoding in a worker and
again here.

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
from ehrchain.crypto import signing
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


Signed = tuple[bytes, bytes, bytes]
"""What one signature check needs: (public key, signed bytes, signature)."""


def check_signatures(items: Sequence[Signed]) -> list[str | None]:
    """Run in a worker: None for each signature that verifies, else why it does not."""
    verdicts: list[str | None] = []
    for public_key, message, signature in items:
        try:
            signing.verify(public_key, message, signature)
            verdicts.append(None)
        except CryptoError as exc:
            verdicts.append(str(exc))
    return verdicts


def signed(tx: txmod.Transaction) -> Signed:
    return (tx.public_key, tx.signing_bytes(), tx.signature)


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

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        )

    def signatures(self, txs: Sequence[txmod.Transaction]) -> list[str | None]:
        """``check_signatures`` of ``txs``, split across the workers, in order."""
        items = [signed(t) for t in txs]
        size = -(-len(items) // self.workers)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        futures = [self._pool.submit(check_signatures, chunk) for chunk in chunks]
        return [verdict for future in futures for verdict in future.result()]

    def submit_blocks(self, items: Sequence[bytes]) -> list[Future[Verdict]]:
        """One task per block, so both workers check blocks ahead of the consumer."""
        return [self._pool.submit(check_block, data) for data in items]

    def warm_up(self) -> None:
        """Start every worker process (each imports ehrchain once)."""
        futures = [self._pool.submit(check_signatures, []) for _ in range(self.workers)]
        for future in futures:
            future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
