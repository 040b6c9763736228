"""Proof of work on real node processes: seed 003's scenarios, a fork resolved by work, bad blocks.

Two nodes of one chain whose genesis fixes a low difficulty (``TARGET`` bits, so
a block takes milliseconds) and names both node keys as validators: both mine.
``/mine`` under proof of work starts the miner on the pending pool and answers
once the transactions are on the chain. Every wait polls; nothing sleeps a
fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehrchain.consensus.pow import meets_target, mine, seal
from ehrchain.core import block as blockmod
from ehrchain.core import tx as txmod
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.ehr.state import state_root
from ehrchain.node.genesis import genesis_config
from ehrchain.node.network import init_member
from ehrchain.node.peer_client import PeerClient, PeerError
from ehrchain.node.process import NodeProcess, free_port
from ehrchain.node.verify import verify_data_dir
from network_nodes import FAST_SYNC, PASSWORD, head, register_with, wait_same_head
from story import Actor, HttpNode, build_story, fhir_examples

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TARGET = 10
CHAIN = "ehrchain-pow"


@dataclass
class PowPair:
    """A and B: both genesis validators (miners) of one proof-of-work chain, not started."""

    a: NodeProcess
    b: NodeProcess
    admin: Identity
    keys: tuple[Identity, Identity]
    """The node keys of A and B."""

    def stop(self) -> None:
        self.b.stop()
        self.a.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PowPair]:
    admin = new_identity("consortium-admin", "consortium_admin")
    keys = (new_identity("node-a"), new_identity("node-b"))
    config = genesis_config(CHAIN, admin, keys, time.time_ns() // 1_000_000, pow_target_bits=TARGET)
    nodes = []
    for name, key in zip("ab", keys, strict=True):
        port = free_port()
        init_member(
            tmp_path / name,
            config.to_json(),
            password=PASSWORD,
            port=port,
            consensus="pow",
            identity=key,
            kdf=KdfParams.FAST_FOR_TESTS,
            net=FAST_SYNC,
        )
        nodes.append(NodeProcess(tmp_path / name, port, PASSWORD, tmp_path / f"{name}.log"))
    made = PowPair(nodes[0], nodes[1], admin, keys)
    try:
        yield made
    finally:
        made.stop()


def test_seed003_under_pow_register_sync_stop_write_restart(pair: PowPair) -> None:
    pair.a.start()
    at_a = HttpNode(pair.a.url, CHAIN)
    story = build_story(at_a, pair.admin, pair.keys[0])
    a_head = head(pair.a.url)
    assert a_head[0] >= 6
    assert {b["header"]["target"] for b in _chain(pair.a.url)[1:]} == {TARGET}

    # B registers with A, syncs A's chain through its fork choice and holds A's head.
    pair.b.start()
    joined = register_with(pair.b.url, pair.a.url)
    assert joined.status_code == 200, joined.text
    assert joined.json()["head_hash"] == a_head[1]

    # A is down; a record written at B is mined by B.
    pair.a.stop()
    chen, okafor = story.providers
    ada, _ = story.patients
    story.node = HttpNode(pair.b.url, CHAIN)
    story.write_fhir("written while a was down", chen, ada, fhir_examples()["Condition"])
    story.node.seal()
    height, _ = story.node.position(story.txs["written while a was down"].tx_id)
    mined_at_b = _chain(pair.b.url)[height]
    assert mined_at_b["header"]["proposer"] == pair.keys[1].address
    assert height > a_head[0]

    # A restarts, resyncs from B to the identical head and serves B's record.
    pair.a.start()
    final = wait_same_head([pair.a.url, pair.b.url])
    assert final[0] >= height
    story.node = at_a
    record = story.record("written while a was down")
    assert story.read("a reads b's write", okafor, record) == record.plaintext
    at_a.seal()
    wait_same_head([pair.a.url, pair.b.url])

    pair.stop()
    reports = [verify_data_dir(node.data_dir) for node in (pair.a, pair.b)]
    assert all(r.ok for r in reports), [r.first_problem for r in reports]
    assert reports[0].blocks == reports[1].blocks


def test_fork_is_resolved_by_most_work_and_orphaned_transactions_return(pair: PowPair) -> None:
    pair.a.start()
    pair.b.start()
    at_a, at_b = HttpNode(pair.a.url, CHAIN), HttpNode(pair.b.url, CHAIN)
    admin, hospital = Actor(pair.admin), Actor(new_identity("hospital-admin", "hospital_admin"))
    p1, p2, p3 = (Actor(new_identity(n, "patient")) for n in ("p1", "p2", "p3"))
    other_hospital = Actor(new_identity("hospital-2-admin", "hospital_admin"))

    # A shared block 1 (A mines it; handed to B as a peer would, without introducing them).
    _mine(at_a, [_admit(admin, hospital, "h1")])
    with PeerClient(pair.b.url, pair.keys[0], CHAIN) as to_b:
        to_b.push_block(_block_bytes(pair.a.url, pair.keys[1], 1))
    assert head(pair.b.url) == head(pair.a.url)

    # Apart, A mines two blocks and B one, with different transactions.
    _mine(at_a, [_register(hospital, p1, nonce=0)])
    _mine(at_a, [_register(hospital, p2, nonce=1)])
    survives = _admit(admin, other_hospital, "h2")  # valid on A's chain too
    conflicts = _register(hospital, p3, nonce=0)  # A's chain used this nonce for p1
    _mine(at_b, [survives, conflicts])
    a_chain = [b["hash"] for b in _chain(pair.a.url)]
    b_fork = _chain(pair.b.url)[2]["hash"]
    assert len(a_chain) == 4
    assert b_fork != a_chain[2]
    assert (_account(pair.a.url, p3.address), _account(pair.b.url, p3.address)) == (404, 200)

    # They meet: B, with less work, reorganises onto A's chain; the orphaned
    # admission comes back through B's pool and is mined on the winning chain.
    joined = register_with(pair.b.url, pair.a.url)
    assert joined.status_code == 200, joined.text
    for node in (at_a, at_b):
        node.position(survives.tx_id, wait=30)
    final = wait_same_head([pair.a.url, pair.b.url])
    assert final[0] >= 4
    b_chain = [b["hash"] for b in _chain(pair.b.url)]
    assert b_chain[:4] == a_chain  # A never reorganised; B's fork is gone
    assert b_fork not in b_chain
    for url in (pair.a.url, pair.b.url):
        assert _account(url, p1.address) == 200
        assert _account(url, p2.address) == 200
        assert _account(url, other_hospital.address) == 200
        assert _account(url, p3.address) == 404  # rolled back at B, never on A's chain
        assert httpx.get(f"{url}/v1/txs/{conflicts.tx_id.hex()}").status_code == 404
        assert httpx.get(f"{url}/pending_tx").json()["txs"] == []

    pair.stop()
    reports = [verify_data_dir(node.data_dir) for node in (pair.a, pair.b)]
    assert all(r.ok for r in reports), [r.first_problem for r in reports]
    assert reports[0].blocks == reports[1].blocks == final[0] + 1


def test_add_block_refuses_too_little_work_and_outside_miners(pair: PowPair) -> None:
    pair.a.start()
    genesis_head = head(pair.a.url)
    miner = pair.keys[1]  # B's key: a validator (B itself is not running)
    outsider = new_identity("outsider")
    with PeerClient(pair.a.url, miner, CHAIN) as client:
        parent = blockmod.block_from_bytes(client.blocks(0, 1)[0])
        unmined = _empty_block(parent, miner.address)
        mined = mine(unmined.header, TARGET, 0, 1 << 20)
        assert mined is not None
        easy = next(  # meets an easier target of its own choosing, not the chain's
            h
            for n in range(1 << 20)
            if meets_target((h := _nonce(replace(unmined.header, target=1), n)).hash, 1)
            and not meets_target(h.hash, TARGET)
        )
        nonce = next(n for n in range(1 << 20) if not meets_target(_nonce(mined, n).hash, TARGET))
        by_outsider = mine(_empty_block(parent, outsider.address).header, TARGET, 0, 1 << 20)
        assert by_outsider is not None
        refused = {
            "too little work": (_sealed(_nonce(mined, nonce), miner), 400, "insufficient_work"),
            "easier target": (_sealed(easy, miner), 400, "insufficient_work"),
            "outside miner": (_sealed(by_outsider, outsider), 403, "not_a_validator"),
            "seal not the miner's": (
                seal(blockmod.Block(mined, ()), outsider.signing, Address(miner.address)),
                400,
                "invalid_certificate",
            ),
        }
        for case, (block, status, code) in refused.items():
            with pytest.raises(PeerError) as refusal:
                client.push_block(block.to_bytes())
            assert (refusal.value.status, refusal.value.code) == (status, code), case
            assert head(pair.a.url) == genesis_head, case
            assert client.ancestors(block.hash) == [], case  # not kept in the block tree

        # The same block with the work done and the miner's own seal is taken.
        good = _sealed(mined, miner)
        client.push_block(good.to_bytes())
        assert head(pair.a.url) == (1, good.hash.hex())
        assert client.ancestors(good.hash) == [good.to_bytes()]
    pair.a.stop()
    report = verify_data_dir(pair.a.data_dir)
    assert report.ok, report.first_problem


# -- helpers -------------------------------------------------------------------


def _chain(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/chain", params={"full": "false", "limit": 500}, timeout=10)
    answer.raise_for_status()
    blocks: list[dict[str, Any]] = answer.json()["blocks"]
    return blocks


def _account(url: str, address: str) -> int:
    return httpx.get(f"{url}/v1/accounts/{address}", timeout=10).status_code


def _mine(node: HttpNode, txs: Sequence[txmod.Transaction]) -> None:
    node.submit(txs)
    node.seal()


def _signed(actor: Actor, nonce: int, kind: str, payload: dict[str, Any]) -> txmod.Transaction:
    return txmod.build(kind, CHAIN, actor.address, nonce, payload, actor.identity.signing)


def _admit(admin: Actor, hospital: Actor, hospital_id: str) -> txmod.Transaction:
    payload = {"hospital_id": hospital_id, "name": hospital_id, "admin": hospital.account_payload()}
    signed = _signed(admin, admin.nonce, "hospital.admit", payload)
    admin.nonce += 1
    return signed


def _register(hospital: Actor, patient: Actor, *, nonce: int) -> txmod.Transaction:
    return _signed(hospital, nonce, "patient.register", patient.account_payload())


def _block_bytes(url: str, signer: Identity, height: int) -> bytes:
    with PeerClient(url, signer, CHAIN) as client:
        return client.blocks(height, 1)[0]


def _empty_block(parent: blockmod.Block, proposer: str) -> blockmod.Block:
    """A block of no transactions over ``parent`` (its state root is the parent's, carried on)."""
    header = blockmod.header_for(
        chain_id=CHAIN,
        height=parent.header.height + 1,
        prev_hash=parent.hash,
        txs=(),
        timestamp_ms=time.time_ns() // 1_000_000,
        state_root=state_root(parent.header.state_root, {}),
        proposer=Address(proposer),
    )
    return blockmod.Block(header, ())


def _nonce(header: blockmod.BlockHeader, nonce: int) -> blockmod.BlockHeader:
    return replace(header, nonce=nonce)


def _sealed(header: blockmod.BlockHeader, miner: Identity) -> blockmod.Block:
    return seal(blockmod.Block(header, ()), miner.signing, Address(miner.address))
