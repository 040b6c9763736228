"""The ledger: blocks, transactions, current state, undo log and event index in one SQLite file.

A block and everything it implies (its transactions, its state writes with the
undo rows that reverse them, its events) are written in ONE SQLite transaction,
so after a crash the file holds every committed block completely and nothing of
a block that was being written. A block is accepted only if it extends the head
by exactly one height and names the head's hash as its parent; the ledger does
not re-validate transactions or roots, which is the consensus layer's job.

Only one ``Ledger`` may write a file: ``open`` takes an exclusive ``flock`` on
``<file>.lock``, released by the kernel even if the process is killed. Reads on
the ``Ledger`` itself share the writer's connection and lock; for parallel
reads from other threads use ``reader()``, which lends out a ``LedgerView`` on
its own connection from a small bounded pool.

Durability: see ``storage.schema`` — the default (WAL, synchronous=NORMAL)
keeps every committed block across a process kill; ``durable=True``
(synchronous=FULL) also across power loss.
"""

from __future__ import annotations

import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Final

from ehrchain.core.block import GENESIS_PARENT, Block, BlockHeader
from ehrchain.storage import schema
from ehrchain.storage import view as view_module
from ehrchain.storage.errors import LedgerError
from ehrchain.storage.rows import (
    ChainHead,
    Event,
    IndexedEvent,
    RawBlock,
    StoredEvent,
    certificate_bytes,
)
from ehrchain.storage.view import MAX_BLOCK_PAGE, MAX_PAGE, LedgerView

__all__ = [
    "MAX_BLOCK_PAGE",
    "MAX_PAGE",
    "ChainHead",
    "Event",
    "Ledger",
    "LedgerView",
    "RawBlock",
    "StoredEvent",
]

MAX_IDLE_READERS: Final = 8
RECENT_BLOCKS: Final = 256
"""Blocks committed by this process kept decoded, newest last: followers (the web
index, peers catching up, ``/chain``) mostly ask for blocks just committed."""
"""Reader connections kept open between uses; more may be lent out at once."""

_INSERT_BLOCK: Final = (
    "INSERT INTO blocks (height, hash, prev_hash, state_root, timestamp_ms, tx_count, size, "
    "header, certificate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_TX: Final = (
    "INSERT INTO txs (tx_id, height, idx, sender, kind, data) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_UNDO: Final = (
    "INSERT INTO undo (height, key, prev) VALUES (?1, ?2, (SELECT value FROM state WHERE key = ?2))"
)
_UPSERT_STATE: Final = (
    "INSERT INTO state (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_DELETE_STATE: Final = "DELETE FROM state WHERE key = ?"
_INSERT_EVENT: Final = (
    "INSERT INTO events (height, idx, subject, kind, actor, record_id, version, tx_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UNDO_REMOVED: Final = (
    "DELETE FROM state WHERE key IN (SELECT key FROM undo WHERE height = ? AND prev IS NULL)"
)
_UNDO_CHANGED: Final = (
    "INSERT INTO state (key, value) SELECT key, prev FROM undo WHERE height = ? "
    "AND prev IS NOT NULL ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_DROP_ABOVE: Final = (
    "DELETE FROM events WHERE height > ?",
    "DELETE FROM undo WHERE height > ?",
    "DELETE FROM txs WHERE height > ?",
    "DELETE FROM blocks WHERE height > ?",
)


class Ledger(LedgerView):
    """The single writer of a ledger file; also answers every read query."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock_fd: int) -> None:
        super().__init__(conn)
        self._path = path
        self._lock_fd = lock_fd
        self._idle: queue.LifoQueue[LedgerView] = queue.LifoQueue(MAX_IDLE_READERS)
        self._closed = False
        self._recent: dict[int, Block] = {}
        self._recent_lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, *, durable: bool = False) -> Ledger:
        """Open or create the ledger file at ``path`` for writing."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = _take_file_lock(path)
        try:
            conn = schema.connect(path, durable=durable, read_only=False)
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(path, conn, lock_fd)

    def close(self) -> None:
        """Close the writer and every idle reader; lent-out readers close on return."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while True:
                try:
                    self._idle.get_nowait().close()
                except queue.Empty:
                    break
            self._conn.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def reader(self) -> Iterator[LedgerView]:
        """Lend a read-only view on its own connection, for use by one thread at a time.

        Views are pooled (at most ``MAX_IDLE_READERS`` kept open), so the number
        of connections does not grow with the number of threads that ever read.
        """
        if self._closed:
            raise LedgerError("ledger is closed")
        try:
            view = self._idle.get_nowait()
        except queue.Empty:
            view = LedgerView(schema.connect(self._path, durable=False, read_only=True))
        try:
            yield view
        finally:
            self._give_back(view)

    def _give_back(self, view: LedgerView) -> None:
        with self._lock:
            if self._closed:
                view.close()
                return
            try:
                self._idle.put_nowait(view)
            except queue.Full:
                view.close()

    # writes

    def commit_block(
        self, block: Block, writes: Mapping[str, bytes | None], events: Sequence[IndexedEvent]
    ) -> None:
        """Store ``block``, apply its state ``writes`` (None removes a key) and index
        its ``events``, all or nothing.

        The previous value of every written key goes to the undo log so that
        ``rollback_to`` can restore the state block by block.
        """
        header = block.header
        height = header.height
        tx_rows = [
            (tx.tx_id, height, idx, tx.sender, tx.kind, tx.to_bytes())
            for idx, tx in enumerate(block.txs)
        ]
        position: dict[bytes, int] = {row[0]: row[2] for row in tx_rows}
        event_rows = [_event_row(height, position, event) for event in events]
        keys = sorted(writes)
        block_row = (
            height,
            header.hash,
            header.prev_hash,
            header.state_root,
            header.timestamp_ms,
            len(block.txs),
            header.size,
            header.to_bytes(),
            certificate_bytes(block.certificate),
        )
        with self._transaction(f"block {height}"):
            self._check_extends_head(header)
            conn = self._conn
            conn.execute(_INSERT_BLOCK, block_row)
            conn.executemany(_INSERT_TX, tx_rows)
            conn.executemany(_INSERT_UNDO, [(height, key) for key in keys])
            conn.executemany(_UPSERT_STATE, [(k, writes[k]) for k in keys if writes[k] is not None])
            conn.executemany(_DELETE_STATE, [(k,) for k in keys if writes[k] is None])
            conn.executemany(_INSERT_EVENT, event_rows)
        with self._recent_lock:
            recent = self._recent
            for stale in [h for h in recent if h >= height]:
                del recent[stale]
            recent[height] = block
            while len(recent) > RECENT_BLOCKS:
                del recent[min(recent)]

    def rollback_to(self, height: int) -> list[Block]:
        """Remove every block above ``height`` and restore the state as it was
        right after block ``height``; returns the removed blocks, newest first.

        Atomic: either all of them go or none does.
        """
        if isinstance(height, bool) or not isinstance(height, int) or height < 0:
            raise LedgerError("rollback height must be a non-negative integer")
        with self._transaction(f"rollback to {height}"):
            head = self.head()
            if head is None or head.height <= height:
                return []
            removed: list[Block] = []
            for h in range(head.height, height, -1):
                block = self.block_at(h)
                if block is None:
                    raise LedgerError(f"block {h} is missing below the head")
                removed.append(block)
                self._conn.execute(_UNDO_REMOVED, (h,))
                self._conn.execute(_UNDO_CHANGED, (h,))
            for statement in _DROP_ABOVE:
                self._conn.execute(statement, (height,))
        with self._recent_lock:
            for stale in [h for h in self._recent if h > height]:
                del self._recent[stale]
        return removed

    def blocks(self, start: int, limit: int) -> list[Block]:
        """As ``LedgerView.blocks``, from memory when this process committed them lately.

        The cache holds consecutive heights ending at the head (a commit at h
        drops anything cached at h or above, a rollback what is above its
        target), so a run read from it that stops early stops at the head.
        """
        if 0 < limit <= MAX_BLOCK_PAGE:
            with self._recent_lock:
                found: list[Block] = []
                height, budget = start, view_module.MAX_PAGE_BYTES
                while len(found) < limit and height in self._recent:
                    block = self._recent[height]
                    if found and block.header.size > budget:
                        return found  # the page's byte budget, as from storage
                    budget -= block.header.size
                    found.append(block)
                    height += 1
                at_head = height > max(self._recent, default=-1)
            if found and (len(found) == limit or at_head):
                return found
        return super().blocks(start, limit)

    def set_meta(self, key: str, value: bytes) -> None:
        """Set a chain-level value (chain id, genesis hash …)."""
        with self._transaction("meta"):
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    @contextmanager
    def _transaction(self, what: str) -> Iterator[None]:
        """One write transaction; any failure rolls all of it back."""
        with self._lock:
            if self._closed:
                raise LedgerError("ledger is closed")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._abort()
                raise LedgerError(f"{what} could not be stored: {exc}") from exc
            except BaseException:
                self._abort()
                raise

    def _abort(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _check_extends_head(self, header: BlockHeader) -> None:
        head = self.head()
        expected_height = 0 if head is None else head.height + 1
        parent = GENESIS_PARENT if head is None else head.hash
        if header.height != expected_height:
            raise LedgerError(f"block {header.height} is not the next height {expected_height}")
        if header.prev_hash != parent:
            raise LedgerError(f"block {header.height} does not extend the head")


def _event_row(
    height: int, position: Mapping[bytes, int], event: IndexedEvent
) -> tuple[object, ...]:
    idx = position.get(event.tx_id)
    if idx is None:
        raise LedgerError(f"an event of block {height} names a transaction not in the block")
    return (
        height,
        idx,
        event.subject,
        event.kind,
        event.actor,
        event.record_id,
        event.version,
        event.tx_id,
    )


def _take_file_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise LedgerError("ledger file is already open for writing") from exc
    return fd
