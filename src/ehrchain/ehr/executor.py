"""Blocks of transactions: validate one (``execute_block``) or build one (``select_txs``).

Both run transactions in order over one local overlay of writes and one cache
of decoded values, so a block costs one rule evaluation per transaction and no
copying; the functions are pure from the outside (the committed reader is only
read). The result's ``writes`` are what the ledger commits and what the state
root commits to. Signatures are verified by the caller beforehand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ehrchain.core.tx import Transaction
from ehrchain.ehr.errors import EhrError, InvalidBlockTx
from ehrchain.ehr.rules import execute
from ehrchain.ehr.state import (
    BatchStateReader,
    BlockContext,
    Effects,
    Event,
    State,
    StateReader,
    acct_key,
    nonce_key,
    state_root,
)

__all__ = [
    "BlockResult",
    "execute_block",
    "select_txs",
]


@dataclass(frozen=True, slots=True)
class BlockResult:
    """The writes and events of a block's transactions and the resulting state root."""

    writes: dict[str, bytes | None]
    events: tuple[Event, ...]
    state_root: bytes


@dataclass(frozen=True, slots=True)
class _Prefetched:
    """A reader that answers prefetched keys from memory and the rest from the store."""

    fetched: Mapping[str, bytes | None]
    reader: StateReader

    def get(self, key: str) -> bytes | None:
        if key in self.fetched:
            return self.fetched[key]
        return self.reader.get(key)


class _Run:
    """Transactions applied one after another to one overlay (local to one call)."""

    def __init__(self, reader: StateReader, txs: Iterable[Transaction]) -> None:
        self.overlay: dict[str, bytes | None] = {}
        self.cache: dict[str, Any] = {}
        self.events: list[Event] = []
        self.state = State(_prefetch(reader, txs), self.overlay, (), self.cache)

    def apply(self, effects: Effects) -> None:
        for key in effects.writes:
            self.cache.pop(key, None)
        self.overlay.update(effects.writes)
        self.cache.update(effects.decoded)
        self.events.extend(effects.events)

    def result(self, prev_root: bytes) -> BlockResult:
        writes = dict(self.overlay)
        return BlockResult(writes, tuple(self.events), state_root(prev_root, writes))


def _prefetch(reader: StateReader, txs: Iterable[Transaction]) -> StateReader:
    """Fetch every sender's account and nonce in one batch when the reader can."""
    if not isinstance(reader, BatchStateReader):
        return reader
    senders = {tx.sender for tx in txs}
    keys = [acct_key(s) for s in senders] + [nonce_key(s) for s in senders]
    return _Prefetched(dict(reader.get_many(keys)), reader) if keys else reader


def execute_block(
    reader: StateReader, txs: Sequence[Transaction], ctx: BlockContext, prev_root: bytes
) -> BlockResult:
    """Validate a block: every transaction must apply, else InvalidBlockTx(index, error)."""
    run = _Run(reader, txs)
    for index, tx in enumerate(txs):
        try:
            effects = execute(run.state, tx, ctx)
        except EhrError as exc:
            raise InvalidBlockTx(index, exc) from exc
        run.apply(effects)
    return run.result(prev_root)


def select_txs(
    reader: StateReader,
    candidates: Sequence[Transaction],
    ctx: BlockContext,
    limit: int,
    prev_root: bytes,
) -> tuple[list[Transaction], list[tuple[Transaction, EhrError]], BlockResult]:
    """Build a block: keep up to ``limit`` transactions that apply, in order; report the rest.

    A rejected transaction leaves no trace in the result. ``BadNonce`` with
    ``got > expected`` means a gap: the caller may keep it for a later block.
    Candidates after the limit is reached are neither accepted nor rejected.
    """
    run = _Run(reader, candidates)
    accepted: list[Transaction] = []
    rejected: list[tuple[Transaction, EhrError]] = []
    for tx in candidates:
        if len(accepted) >= limit:
            break
        try:
            effects = execute(run.state, tx, ctx)
        except EhrError as exc:
            rejected.append((tx, exc))
            continue
        run.apply(effects)
        accepted.append(tx)
    return accepted, rejected, run.result(prev_root)
