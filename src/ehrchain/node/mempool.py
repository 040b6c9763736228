"""The pending pool: admitted transactions in arrival order and their state overlay.

Every pooled transaction executed cleanly against committed state plus the
transactions ahead of it; the overlay holds their combined writes so the next
admission sees them (nonces, grants, records not yet sealed). Decoded state
objects are cached across admissions and invalidated key by key, so a busy
sender's account is read from SQLite once, not once per transaction.

Admission is advisory: the sealer re-executes every transaction against
committed state with the block's own context, which is authoritative.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from ehrchain.core.tx import Transaction
from ehrchain.core.types import TxId
from ehrchain.ehr.errors import EhrError
from ehrchain.ehr.executor import BlockResult
from ehrchain.ehr.rules import execute
from ehrchain.ehr.state import BlockContext, Effects, Event, State, StateReader, state_root

NONCE_ONLY_KINDS: Final = frozenset({"record.read"})
"""Kinds whose only state write is the sender's nonce (a read is an audit event)."""


class Mempool:
    """Ordered pending transactions with the state they lead to. Not thread-safe:
    the service holds its lock around every call."""

    def __init__(self, reader: StateReader) -> None:
        self._reader = reader
        self._txs: dict[TxId, tuple[Transaction, Effects, int, BlockContext]] = {}
        self._overlay: dict[str, bytes | None] = {}
        self._cache: dict[str, Any] = {}
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def contains(self, tx_id: TxId) -> bool:
        return tx_id in self._txs

    def get(self, tx_id: bytes) -> Transaction | None:
        """The pending transaction with this id (one dict lookup: safe without the
        service lock, the answer may just be a moment old)."""
        entry = self._txs.get(TxId(tx_id))
        return None if entry is None else entry[0]

    @property
    def oldest_ms(self) -> int | None:
        for _, _, arrival, _ in self._txs.values():
            return arrival
        return None

    def state(self) -> State:
        """Committed state with every pending transaction applied."""
        return State(self._reader, self._overlay, (), self._cache)

    def add(self, tx: Transaction, effects: Effects, now_ms: int, ctx: BlockContext) -> None:
        self._apply(effects)
        self._txs[tx.tx_id] = (tx, effects, now_ms, ctx)
        self.size_bytes += len(tx.to_bytes())

    def _apply(self, effects: Effects) -> None:
        for key in effects.writes:
            self._cache.pop(key, None)
        self._overlay.update(effects.writes)
        self._cache.update(effects.decoded)

    def take(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """The oldest transactions that fit in one block."""
        chosen: list[Transaction] = []
        total = 0
        for tx, _, _, _ in self._txs.values():
            size = len(tx.to_bytes())
            if len(chosen) >= max_txs or (chosen and total + size > max_bytes):
                break
            chosen.append(tx)
            total += size
        return chosen

    def page(self, offset: int, limit: int) -> list[Transaction]:
        return [entry[0] for entry in list(self._txs.values())[offset : offset + limit]]

    def remove(self, txs: Sequence[Transaction]) -> None:
        for tx in txs:
            if self._txs.pop(tx.tx_id, None) is not None:
                self.size_bytes -= len(tx.to_bytes())

    def committed(self, sealed: Sequence[Transaction], written: Iterable[str]) -> None:
        """Sealed transactions left the pool cleanly: re-derive the overlay from the
        rest without re-executing them, and forget cached values the block changed."""
        self._settle(sealed, written, None, set())

    def settle(
        self, block: Sequence[Transaction], written: Iterable[str], ctx: BlockContext
    ) -> None:
        """A committed block (not sealed here) leaves the pool, re-executing no more
        of the rest than the block can have changed.

        Transactions of the block that were pending here change nothing the rest
        did not already assume. Those that were not (they reached the proposer
        first) may have: when each of them only moves its sender's nonce (an
        audit read), only the pending transactions of those senders run again;
        any other kind re-executes the whole pool (``rebuild``).
        """
        foreign = [t for t in block if t.tx_id not in self._txs]
        if any(t.kind not in NONCE_ONLY_KINDS for t in foreign):
            self.remove(block)
            self.rebuild(ctx)
            return
        self._settle(block, written, ctx, {t.sender for t in foreign})

    def _settle(
        self,
        block: Sequence[Transaction],
        written: Iterable[str],
        ctx: BlockContext | None,
        senders: set[str],
    ) -> None:
        self.remove(block)
        for key in list(self._overlay):
            self._cache.pop(key, None)
        for key in written:
            self._cache.pop(key, None)
        self._overlay = {}
        for tx_id, (tx, effects, arrival, admitted) in list(self._txs.items()):
            if ctx is not None and tx.sender in senders:
                try:
                    effects = execute(self.state(), tx, ctx)
                except EhrError:
                    self.remove([tx])
                    continue
                admitted = ctx
                self._txs[tx_id] = (tx, effects, arrival, admitted)
            self._apply(effects)

    def rebuild(self, ctx: BlockContext) -> list[tuple[Transaction, EhrError]]:
        """Re-execute what is left against fresh committed state; drop what now fails."""
        self._overlay = {}
        self._cache = {}
        dropped: list[tuple[Transaction, EhrError]] = []
        for tx_id, (tx, _, arrival, _) in list(self._txs.items()):
            try:
                effects = execute(self.state(), tx, ctx)
            except EhrError as exc:
                dropped.append((tx, exc))
                self.remove([tx])
                continue
            self._apply(effects)
            self._txs[tx_id] = (tx, effects, arrival, ctx)
        return dropped

    def block_result(
        self, candidates: Sequence[Transaction], ctx: BlockContext, prev_root: bytes
    ) -> BlockResult | None:
        """The block's writes and events from admission, when every candidate was
        executed under exactly this block context (else None: re-execute)."""
        writes: dict[str, bytes | None] = {}
        events: list[Event] = []
        for tx in candidates:
            _, effects, _, admitted_under = self._txs[tx.tx_id]
            if admitted_under != ctx:
                return None
            writes.update(effects.writes)
            events.extend(effects.events)
        return BlockResult(writes, tuple(events), state_root(prev_root, writes))
