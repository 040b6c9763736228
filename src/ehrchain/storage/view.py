"""Read-only queries over a ledger file.

A ``LedgerView`` wraps one SQLite connection and a lock: each query runs under
the lock, so a view is safe to share, but queries on one view run one at a
time. For parallel reads take a view per task from ``Ledger.reader()``: with
WAL, readers on their own connections never block the writer and each query
sees the last committed block. Several queries that must agree with each other
go inside ``snapshot()``, which holds one read transaction.

Every listing is paged with a hard ``limit`` so no call reads an unbounded
part of the chain or state into memory.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Final

from ehrchain.core import tx as txmod
from ehrchain.core.block import Block, BlockHeader
from ehrchain.core.types import BlockHash
from ehrchain.storage import schema
from ehrchain.storage.errors import LedgerCorrupt, LedgerError
from ehrchain.storage.rows import (
    ChainHead,
    RawBlock,
    StoredEvent,
    assemble,
    decode_header,
    decode_tx,
    group_txs,
)

MAX_PAGE: Final = 10_000
"""Largest ``limit`` of a state scan or an events page."""
MAX_BLOCK_PAGE: Final = 500
"""Largest ``limit`` of a page of whole blocks."""
MAX_PAGE_BYTES: Final = 64 * 1024 * 1024
"""Transaction bytes after which a page of blocks stops (memory bound per call)."""
_IN_CHUNK: Final = 500

_BLOCK_COLUMNS: Final = "height, hash, header, certificate"


class LedgerView:
    """Read-only queries over one connection to the ledger file."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock | None = None) -> None:
        self._conn = conn
        self._lock = lock if lock is not None else threading.RLock()

    @classmethod
    def open(cls, path: Path) -> LedgerView:
        """Open an existing ledger file for reading only (verifier, inspection)."""
        if not path.is_file():
            raise LedgerError("no ledger file at the given path")
        return cls(schema.connect(path, durable=False, read_only=True))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LedgerView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[LedgerView]:
        """Run the enclosed queries on this view in one read transaction."""
        with self._consistent():
            yield self

    @contextmanager
    def _consistent(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and one read transaction (unless one is already open)."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def _all(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[object] = ()) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._conn.execute(sql, params).fetchone()
            return row

    # chain head and state

    def head(self) -> ChainHead | None:
        row = self._one(
            "SELECT height, hash, state_root, timestamp_ms FROM blocks ORDER BY height DESC LIMIT 1"
        )
        if row is None:
            return None
        height, hash_, state_root, timestamp_ms = row
        return ChainHead(
            _int(height), BlockHash(_blob(hash_)), _blob(state_root), _int(timestamp_ms)
        )

    def get_state(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM state WHERE key = ?", (key,))
        return None if row is None else _blob(row[0])

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """Current values of ``keys``; a key that is not set maps to None."""
        found: dict[str, bytes | None] = dict.fromkeys(keys)
        unique = list(found)
        with self._consistent() as conn:
            for start in range(0, len(unique), _IN_CHUNK):
                chunk = unique[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, value FROM state WHERE key IN ({marks})"  # noqa: S608
                for key, value in conn.execute(sql, chunk):
                    found[key] = _blob(value)
        return found

    def scan_prefix(self, prefix: str, limit: int, after: str = "") -> list[tuple[str, bytes]]:
        """Up to ``limit`` (key, value) pairs with ``key`` starting with ``prefix``,
        in key order, starting after the key ``after`` (the last key of the
        previous page)."""
        _check_limit(limit, MAX_PAGE)
        upper = prefix_upper_bound(prefix)
        sql = "SELECT key, value FROM state WHERE key >= ? AND key > ?"
        params: list[object] = [prefix, after]
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
        params.append(limit)
        rows = self._all(sql + " ORDER BY key LIMIT ?", params)
        return [(str(key), _blob(value)) for key, value in rows]

    def iter_state(self, batch: int = 10_000) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) in key order, read a batch at a time.

        For verification and rebuilds; it is not one snapshot if blocks are
        committed while it runs.
        """
        _check_limit(batch, MAX_PAGE)
        after: str | None = None
        while True:
            if after is None:
                rows = self._all("SELECT key, value FROM state ORDER BY key LIMIT ?", (batch,))
            else:
                rows = self._all(
                    "SELECT key, value FROM state WHERE key > ? ORDER BY key LIMIT ?",
                    (after, batch),
                )
            for key, value in rows:
                yield str(key), _blob(value)
            if len(rows) < batch:
                return
            after = str(rows[-1][0])

    def get_meta(self, key: str) -> bytes | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else _blob(row[0])

    # blocks

    def raw_block_rows(self, start: int, limit: int) -> list[RawBlock]:
        """Stored bytes of the blocks from height ``start`` on: at most ``limit``
        blocks, and fewer once their transactions pass ``MAX_PAGE_BYTES`` (a page
        always holds at least one block); continue from the last height + 1."""
        _check_limit(limit, MAX_BLOCK_PAGE)
        with self._consistent() as conn:
            cursor = conn.execute(
                f"SELECT {_BLOCK_COLUMNS}, size FROM blocks "  # noqa: S608
                "WHERE height >= ? ORDER BY height LIMIT ?",
                (start, limit),
            )
            blocks: list[tuple[int, bytes, bytes, bytes]] = []
            budget = MAX_PAGE_BYTES
            for height, hash_, header, cert, size in cursor:
                if blocks and size > budget:
                    break
                budget -= size
                blocks.append((_int(height), _blob(hash_), _blob(header), _blob(cert)))
            cursor.close()
            if not blocks:
                return []
            tx_rows = conn.execute(
                "SELECT height, data FROM txs WHERE height BETWEEN ? AND ? ORDER BY height, idx",
                (blocks[0][0], blocks[-1][0]),
            ).fetchall()
        txs = group_txs([b[0] for b in blocks], tx_rows)
        return [RawBlock(h, hash_, header, cert, txs[h]) for h, hash_, header, cert in blocks]

    def blocks(self, start: int, limit: int) -> list[Block]:
        """Blocks from height ``start`` on, at most ``limit`` of them."""
        return [assemble(raw) for raw in self.raw_block_rows(start, limit)]

    def block_at(self, height: int) -> Block | None:
        rows = self.raw_block_rows(height, 1)
        if not rows or rows[0].height != height:
            return None
        return assemble(rows[0])

    def block_by_hash(self, block_hash: bytes) -> Block | None:
        with self._consistent():
            row = self._one("SELECT height FROM blocks WHERE hash = ?", (block_hash,))
            return None if row is None else self.block_at(_int(row[0]))

    def header_at(self, height: int) -> BlockHeader | None:
        row = self._one("SELECT hash, header FROM blocks WHERE height = ?", (height,))
        if row is None:
            return None
        return decode_header(height, _blob(row[0]), _blob(row[1]))

    # transactions and events

    def tx(self, tx_id: bytes) -> tuple[txmod.Transaction, int, int] | None:
        """The transaction with this id, with its block height and index."""
        row = self._one("SELECT data, height, idx FROM txs WHERE tx_id = ?", (tx_id,))
        if row is None:
            return None
        height = _int(row[1])
        return decode_tx(height, _blob(row[0])), height, _int(row[2])

    def txs_of_block(self, height: int) -> list[txmod.Transaction]:
        rows = self._all("SELECT data FROM txs WHERE height = ? ORDER BY idx", (height,))
        return [decode_tx(height, _blob(data)) for (data,) in rows]

    def tx_ids_of_block(self, height: int) -> list[bytes]:
        """Transaction ids in block order (the leaves' ids for Merkle proofs)."""
        rows = self._all("SELECT tx_id FROM txs WHERE height = ? ORDER BY idx", (height,))
        return [_blob(tx_id) for (tx_id,) in rows]

    def events_for(self, subject: str, *, offset: int = 0, limit: int = 100) -> list[StoredEvent]:
        """Events about ``subject``, newest first."""
        _check_limit(limit, MAX_PAGE)
        if offset < 0:
            raise LedgerError("offset must not be negative")
        rows = self._all(
            "SELECT e.subject, e.kind, e.actor, e.record_id, e.version, e.tx_id, "
            "e.height, e.idx, b.timestamp_ms FROM events AS e JOIN blocks AS b USING (height) "
            "WHERE e.subject = ? ORDER BY e.id DESC LIMIT ? OFFSET ?",
            (subject, limit, offset),
        )
        return [
            StoredEvent(
                str(s), str(k), str(a), str(r), _int(v), _blob(t), _int(h), _int(i), _int(ts)
            )
            for s, k, a, r, v, t, h, i, ts in rows
        ]


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``.

    SQLite compares TEXT bytewise in UTF-8, which orders like code points, so
    bumping the last code point gives the bound. None when no bound exists.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if last == 0xD800:
            last = 0xE000
        if last <= 0x10FFFF:
            return "".join(chars) + chr(last)
    return None


def _stored_event(row: tuple[object, ...]) -> StoredEvent:
    subject, kind, actor, record_id, version, tx_id, height, idx, timestamp_ms = row
    return StoredEvent(
        str(subject),
        str(kind),
        str(actor),
        str(record_id),
        _int(version),
        _blob(tx_id),
        _int(height),
        _int(idx),
        _int(timestamp_ms),
    )


def _check_limit(limit: int, maximum: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise LedgerError(f"limit must be an integer from 1 to {maximum}")


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise LedgerCorrupt("ledger file holds a value of the wrong type")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LedgerCorrupt("ledger file holds a value of the wrong type")
    return value
