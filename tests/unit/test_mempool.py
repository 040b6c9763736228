"""The pending pool after a block committed elsewhere: what it keeps, drops and re-runs."""

from __future__ import annotations

from typing import Any

import pytest
from ehr_world import CHAIN, Actor, Clinic, clinic

from ehrchain.core import tx as txmod
from ehrchain.core.tx import Transaction
from ehrchain.ehr import rules
from ehrchain.ehr.executor import execute_block
from ehrchain.ehr.state import BlockContext
from ehrchain.node.mempool import Mempool


class Committed:
    """The committed store under the pool: the world's state, then each block's writes."""

    def __init__(self, c: Clinic) -> None:
        self.data = dict(c.world.store)
        self.data.update({k: v for k, v in c.world.state.writes.items() if v is not None})

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)


def _read(actor: Actor, record_id: str, nonce: int) -> Transaction:
    payload = {"record_id": record_id, "version": 1}
    return txmod.build("record.read", CHAIN, actor.address, nonce, payload, actor.key)


def _admit(pool: Mempool, txs: list[Transaction], ctx: BlockContext) -> None:
    for t in txs:
        pool.add(t, rules.execute(pool.state(), t, ctx), 0, ctx)


def _commit(store: Committed, block: list[Transaction], ctx: BlockContext) -> dict[str, Any]:
    result = execute_block(store, block, ctx, bytes(32))
    store.data.update({k: v for k, v in result.writes.items() if v is not None})
    return result.writes


@pytest.fixture
def c() -> Clinic:
    return clinic()


def test_a_foreign_read_reruns_only_its_senders_pending_transactions(
    c: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = c.world
    first, second = w.create_record(c.patient, c.patient), w.create_record(c.patient, c.patient)
    other = w.patient(c.hospital)
    theirs = w.create_record(other, other)
    store, ctx = Committed(c), w.ctx()
    pool = Mempool(store)
    n, m = c.patient.nonce, other.nonce
    pending = [_read(c.patient, first, n + i) for i in range(3)] + [_read(other, theirs, m)]
    _admit(pool, pending, ctx)

    # The proposer had a different read by the patient at nonce n; it won.
    foreign = _read(c.patient, second, n)
    rerun: list[str] = []
    original = rules.execute

    def counting(state: Any, tx: Transaction, context: BlockContext) -> Any:
        rerun.append(str(tx.sender))
        return original(state, tx, context)

    writes = _commit(store, [foreign, pending[3]], ctx)
    monkeypatch.setattr("ehrchain.node.mempool.execute", counting)
    pool.settle([foreign, pending[3]], writes, ctx)

    assert [t.tx_id for t in pool.page(0, 10)] == [pending[1].tx_id, pending[2].tx_id]
    assert rerun == [c.patient.address] * 3  # the conflicting one fails, two re-run cleanly
    assert pool.state().nonce(c.patient.address) == n + 3
    assert pool.state().nonce(other.address) == m + 1


def test_a_block_that_was_all_pending_here_reruns_nothing(
    c: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = c.world
    record = w.create_record(c.patient, c.patient)
    store, ctx = Committed(c), w.ctx()
    pool = Mempool(store)
    pending = [_read(c.patient, record, c.patient.nonce + i) for i in range(4)]
    _admit(pool, pending, ctx)
    writes = _commit(store, pending[:2], ctx)
    monkeypatch.setattr("ehrchain.node.mempool.execute", pytest.fail)
    pool.settle(pending[:2], writes, ctx)
    assert [t.tx_id for t in pool.page(0, 10)] == [p.tx_id for p in pending[2:]]
    assert pool.state().nonce(c.patient.address) == c.patient.nonce + 4


def test_a_foreign_revocation_reruns_the_whole_pool(c: Clinic) -> None:
    w = c.world
    record = w.create_record(c.patient, c.patient)
    grant = {"grantee": c.other.address, "scope": {"all": True}, "expires_ms": 0, "rewraps": []}
    w.send(c.patient, "access.grant", grant)
    store, ctx = Committed(c), w.ctx()
    pool = Mempool(store)
    reader = _read(c.other, record, c.other.nonce)
    _admit(pool, [reader], ctx)
    revoke = txmod.build(
        "access.revoke",
        CHAIN,
        c.patient.address,
        c.patient.nonce,
        {"grantee": c.other.address},
        c.patient.key,
    )
    writes = _commit(store, [revoke], ctx)
    pool.settle([revoke], writes, ctx)
    assert len(pool) == 0  # the read is no longer authorised: dropped
