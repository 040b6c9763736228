"""Blocks: validating with execute_block, building with select_txs, and nothing ever deleted."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ehr_world import Actor, Clinic, World, clinic

from ehrchain.core.tx import Transaction
from ehrchain.ehr.errors import BadNonce, EhrError, InvalidBlockTx, NotAuthorised, UnknownAccount
from ehrchain.ehr.executor import execute_block, select_txs
from ehrchain.ehr.rules import apply_tx
from ehrchain.ehr.state import LedgerReader, State, state_root

PREV = bytes(range(32))


def _committed(w: World) -> dict[str, bytes]:
    """The world's store with its pending writes committed."""
    return {**w.store, **{k: v for k, v in w.state.writes.items() if v is not None}}


def _next(w: World, actor: Actor, kind: str, payload: dict[str, Any]) -> Transaction:
    tx = w.tx(actor, kind, payload)
    actor.nonce += 1
    return tx


def _block(c: Clinic) -> list[Transaction]:
    w = c.world
    consent = {"provider": c.doctor.address}
    txs = [
        _next(
            w, c.doctor, "access.request", {"patient": c.patient.address, "scope": {"all": True}}
        ),
        _next(w, c.patient, "consent.authorise", consent),
    ]
    payload = w.record_payload(c.patient, c.patient)
    txs.append(_next(w, c.patient, "record.create", payload))
    read = {"record_id": payload["record_id"], "version": 1}
    txs.append(_next(w, c.patient, "record.read", read))
    txs.append(_next(w, c.hospital, "record.read", read))
    return txs


def test_execute_block_equals_applying_one_by_one() -> None:
    c = clinic()
    store = _committed(c.world)
    txs = _block(c)
    result = execute_block(store, txs, c.world.ctx(), PREV)
    state = State(store)
    for tx in txs:
        state = apply_tx(state, tx, c.world.ctx())
    assert result.writes == dict(state.writes)
    assert result.events == state.events
    assert result.state_root == state_root(PREV, result.writes)
    assert [e.kind for e in result.events] == [
        "access.request",
        "consent.authorise",
        "record.create",
        "read",
        "read",
    ]
    assert store == _committed(c.world)  # the committed store was only read


def test_execute_block_names_the_failing_transaction() -> None:
    c = clinic()
    store = _committed(c.world)
    txs = _block(c)
    txs.insert(2, txs[1])  # a replay inside the block
    with pytest.raises(InvalidBlockTx) as caught:
        execute_block(store, txs, c.world.ctx(), PREV)
    assert caught.value.index == 2
    assert isinstance(caught.value.error, BadNonce)
    assert caught.value.code == "invalid_block_tx"


def test_select_txs_skips_failures_and_keeps_going() -> None:
    c = clinic()
    store = _committed(c.world)
    txs = _block(c)
    stranger = Actor.new()
    bad_sender = c.world.tx(stranger, "consent.authorise", {"provider": c.doctor.address})
    outsider = _next(c.world, c.other, "record.read", txs[3].payload)
    candidates = [txs[0], bad_sender, txs[1], txs[1], *txs[2:], outsider]
    accepted, rejected, result = select_txs(store, candidates, c.world.ctx(), 100, PREV)
    assert accepted == txs
    assert [(t, type(e)) for t, e in rejected] == [
        (bad_sender, UnknownAccount),
        (txs[1], BadNonce),
        (outsider, NotAuthorised),
    ]
    assert result == execute_block(store, txs, c.world.ctx(), PREV)


def test_select_txs_stops_at_the_limit() -> None:
    c = clinic()
    store = _committed(c.world)
    txs = _block(c)
    accepted, rejected, result = select_txs(store, txs, c.world.ctx(), 2, PREV)
    assert accepted == txs[:2]
    assert rejected == []
    assert result == execute_block(store, txs[:2], c.world.ctx(), PREV)


def test_a_batch_reader_gets_senders_prefetched_and_gives_the_same_result() -> None:
    c = clinic()
    store = _committed(c.world)
    txs = _block(c)

    class Ledger:
        def __init__(self) -> None:
            self.single: list[str] = []

        def get_state(self, key: str) -> bytes | None:
            self.single.append(key)
            return store.get(key)

        def get_many(self, keys: list[str]) -> dict[str, bytes | None]:
            return {k: store.get(k) for k in keys}

    ledger = Ledger()
    result = execute_block(LedgerReader(ledger), txs, c.world.ctx(), PREV)
    assert result == execute_block(store, txs, c.world.ctx(), PREV)
    assert not any(k.startswith(("acct/", "nonce/")) for k in ledger.single[:2])


def test_nothing_is_ever_deleted_in_a_long_random_run() -> None:
    """Random valid and invalid operations; no write is ever None, no key disappears."""
    rng = random.Random(7)
    c = clinic()
    w = c.world
    people = [c.patient, c.doctor, c.other, w.patient(c.hospital)]
    records: list[str] = []
    seen: set[str] = set(w.store)
    for _ in range(300):
        actor = rng.choice([*people, c.hospital])
        patient = rng.choice([c.patient, people[3]])
        other = rng.choice(people)
        op = rng.randrange(8)
        payload: dict[str, Any]
        if op == 0:
            kind, payload = "consent.authorise", {"provider": other.address}
        elif op == 1:
            grant = {"grantee": other.address, "scope": {"all": True}, "expires_ms": 0}
            kind, payload = "access.grant", {**grant, "rewraps": []}
        elif op == 2:
            kind, payload = "access.revoke", {"grantee": other.address}
        elif op == 3:
            kind, payload = "record.create", w.record_payload(actor, patient)
        elif op == 4 and records:
            kind, payload = "record.read", {"record_id": rng.choice(records), "version": 1}
        elif op == 5:
            kind, payload = "delegate.add", {"caregiver": other.address, "rewraps": []}
        elif op == 6:
            kind, payload = "delegate.remove", {"caregiver": other.address}
        else:
            kind, payload = "access.request", {"patient": patient.address, "scope": {"all": True}}
        try:
            w.send(actor, kind, payload)
        except EhrError:  # any rule may deny a random operation
            continue
        if kind == "record.create":
            records.append(payload["record_id"])
        assert all(v is not None for v in w.state.writes.values())
        seen |= set(w.state.writes)
        assert all(w.state.get(k) is not None for k in seen)
    assert len(records) > 5
