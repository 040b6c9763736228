"""The pending pool: admitted transactions in arrival order and their state overlay.

Every pooled transaction executed cleanly against committed state plus the
transactions ahead of it; the overlay holds their combined writes so the next
admission sees them (nonces, grants, records not yet sealed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ehrchain.core.tx import Transaction
from ehrchain.core.types import TxId
from ehrchain.ehr.errors import EhrError
from ehrchain.ehr.rules import execute
from ehrchain.ehr.state import BlockContext, State, StateReader


class Mempool:
    """Ordered pending transactions with the state they lead to. Not thread-safe:
    the service holds its lock around every call."""

    def __init__(self, reader: StateReader) -> None:
        self._reader = reader
        self._txs: dict[TxId, Transaction] = {}
        self._arrival: dict[TxId, int] = {}
        self._overlay: dict[str, bytes | None] = {}
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def contains(self, tx_id: TxId) -> bool:
        return tx_id in self._txs

    @property
    def oldest_ms(self) -> int | None:
        for tx_id in self._txs:
            return self._arrival[tx_id]
        return None

    def state(self) -> State:
        """Committed state with every pending transaction applied."""
        return State(self._reader, self._overlay)

    def add(self, tx: Transaction, effects: Any, now_ms: int) -> None:
        self._merge(effects.writes)
        self._txs[tx.tx_id] = tx
        self._arrival[tx.tx_id] = now_ms
        self.size_bytes += len(tx.to_bytes())

    def _merge(self, writes: Mapping[str, bytes | None]) -> None:
        self._overlay.update(writes)

    def take(self, max_txs: int, max_bytes: int) -> list[Transaction]:
        """The oldest transactions that fit in one block."""
        chosen: list[Transaction] = []
        total = 0
        for tx in self._txs.values():
            size = len(tx.to_bytes())
            if len(chosen) >= max_txs or (chosen and total + size > max_bytes):
                break
            chosen.append(tx)
            total += size
        return chosen

    def page(self, offset: int, limit: int) -> list[Transaction]:
        return list(self._txs.values())[offset : offset + limit]

    def remove(self, txs: Sequence[Transaction]) -> None:
        for tx in txs:
            if self._txs.pop(tx.tx_id, None) is not None:
                self._arrival.pop(tx.tx_id, None)
                self.size_bytes -= len(tx.to_bytes())

    def rebuild(self, ctx: BlockContext) -> list[tuple[Transaction, EhrError]]:
        """Re-execute what is left against fresh committed state; drop what now fails."""
        self._overlay = {}
        dropped: list[tuple[Transaction, EhrError]] = []
        for tx in list(self._txs.values()):
            try:
                effects = execute(self.state(), tx, ctx)
            except EhrError as exc:
                dropped.append((tx, exc))
                self.remove([tx])
                continue
            self._merge(effects.writes)
        return dropped
