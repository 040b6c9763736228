"""The proof-of-work driver on a real node service and ledger, in this process, without peers.

Blocks of a competing branch are built here and sealed with the chain's second
validator key, then handed to ``PowDriver.receive_block`` exactly as a peer's
``/add_block`` would. The driver's threads are not started: every event is
handled on the caller's thread, so each step is deterministic. After each
scenario the data directory must verify from genesis (the stored state is the
replay of the stored chain, so rollback and re-application were exact).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ehrchain.consensus.pow import meets_target, mine, seal
from ehrchain.core import block as blockmod
from ehrchain.core import tx as txmod
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.ehr.executor import execute_block
from ehrchain.ehr.state import BlockContext, LedgerReader, state_root
from ehrchain.node.errors import Rejected
from ehrchain.node.genesis import genesis_config
from ehrchain.node.gossip import Gossip
from ehrchain.node.network import init_member
from ehrchain.node.networked import NetworkedService
from ehrchain.node.peer_client import ClientPool
from ehrchain.node.pow_driver import PowDriver
from ehrchain.node.settings import PASSWORD_ENV, load
from ehrchain.node.setup import init_node
from ehrchain.node.verify import verify_data_dir
from ehrchain.node.wiring import open_node
from story import Actor

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
TARGET = 8
CHAIN = "ehrchain-pow-driver"


@dataclass
class Node:
    data_dir: Path
    service: NetworkedService
    driver: PowDriver
    admin: Actor
    other: Identity
    """The second validator: seals the competing branches."""

    def close(self) -> None:
        self.service.close()
        self.service.ledger.close()


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    admin = new_identity("consortium-admin", "consortium_admin")
    mine_key, other = new_identity("node-a"), new_identity("node-b")
    config = genesis_config(
        CHAIN, admin, (mine_key, other), time.time_ns() // 1_000_000, pow_target_bits=TARGET
    )
    data_dir = tmp_path / "a"
    init_member(
        data_dir,
        config.to_json(),
        password=PASSWORD,
        port=1,
        consensus="pow",
        identity=mine_key,
        kdf=KdfParams.FAST_FOR_TESTS,
    )
    service, identity = open_node(load(data_dir))
    gossip = Gossip(lambda: [], ClientPool(identity, CHAIN))
    driver = PowDriver(service, identity, gossip, lambda: [], TARGET)
    made = Node(data_dir, service, driver, Actor(admin), other)
    try:
        yield made
    finally:
        made.close()


def test_a_heavier_branch_reorganises_and_the_undone_transactions_return(node: Node) -> None:
    hospital, patient = Actor(new_identity("h", "hospital_admin")), Actor(new_identity("p"))
    admit, register = _admit(node.admin, hospital), _register(hospital, patient)
    genesis = _block(node, 0)
    x1, x2 = _mine_own(node, [admit]), _mine_own(node, [register])
    assert node.service.account(hospital.address) is not None

    z1 = _empty(genesis, node.other)
    z2 = _empty(z1, node.other)
    z3 = _empty(z2, node.other)
    node.driver.receive_block(z1.to_bytes())  # less work: kept on the side
    node.driver.receive_block(z3.to_bytes())  # waits for its parent
    assert node.service.head().hash == x2.hash
    node.driver.receive_block(z2.to_bytes())  # completes the heavier branch

    assert node.service.head().hash == z3.hash
    assert node.driver.reorgs == 1
    assert [node.service.block(h) for h in (1, 2, 3)] == [z1, z2, z3]
    assert node.service.account(hospital.address) is not None  # pending again, not committed
    assert node.service.tx(admit.tx_id) is None
    assert [t.tx_id for t in node.service.pending(0, 10)] == [admit.tx_id, register.tx_id]
    assert {x1.hash, x2.hash}.isdisjoint(b.hash for b in node.service.blocks(0, 10))

    again = _mine_own(node, node.service.pending(0, 10))
    assert node.service.tx(register.tx_id) == (register, again.header.height, 1)
    node.close()
    report = verify_data_dir(node.data_dir)
    assert report.ok, report.first_problem
    assert report.blocks == 5


def test_a_branch_that_fails_to_apply_is_dropped_and_the_node_goes_back(node: Node) -> None:
    hospital, patient = Actor(new_identity("h", "hospital_admin")), Actor(new_identity("p"))
    genesis = _block(node, 0)
    _mine_own(node, [_admit(node.admin, hospital)])
    x2 = _mine_own(node, [_register(hospital, patient)])

    y1 = _empty(genesis, node.other)
    y2_bad = _empty(y1, node.other, root=bytes(32))  # work and seal fine; state root wrong
    y3 = _empty(y2_bad, node.other)
    node.driver.receive_block(y1.to_bytes())
    node.driver.receive_block(y3.to_bytes())  # waits for its parent
    assert node.service.head().hash == x2.hash
    with pytest.raises(Rejected, match="state root"):
        node.driver.receive_block(y2_bad.to_bytes())  # completes the heavier branch

    assert node.driver.reorgs == 2  # onto y1 (where y2 failed), then back to x2
    assert node.service.head().hash == x2.hash
    assert node.service.account(patient.address) is not None
    assert node.service.pending_count() == 0
    with pytest.raises(Rejected, match="does not apply"):
        node.driver.receive_block(y3.to_bytes())
    node.close()
    report = verify_data_dir(node.data_dir)
    assert report.ok, report.first_problem
    assert report.blocks == 3


def test_verify_names_a_stored_block_without_the_work(node: Node) -> None:
    hospital = Actor(new_identity("h", "hospital_admin"))
    node.service.submit(_admit(node.admin, hospital).to_bytes())
    proposed = node.service.propose_block(1)
    assert proposed is not None
    misses = (n for n in range(1 << 16) if not meets_target(_at(proposed, n).hash, TARGET))
    header = _at(proposed, next(misses))
    block = blockmod.Block(header, proposed.txs, node.service.engine.certify(header))
    # Written behind the node's back: right transactions, state and seal; no work.
    genesis = _block(node, 0).header
    ctx = BlockContext(CHAIN, 1, header.timestamp_ms, header.proposer)
    ledger = node.service.ledger
    result = execute_block(LedgerReader(ledger), block.txs, ctx, prev_root=genesis.state_root)
    assert result.state_root == header.state_root
    ledger.commit_block(block, result.writes, [])
    node.close()
    report = verify_data_dir(node.data_dir)
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.startswith("block 1: proof of work invalid")


def test_a_node_runs_the_engine_its_genesis_fixes(node: Node, tmp_path: Path) -> None:
    node.close()
    settings = load(node.data_dir)
    with pytest.raises(Rejected, match="proof-of-work chain"):
        open_node(replace(settings, consensus="solo"))
    init_node(tmp_path / "solo", password=PASSWORD, chain_id=CHAIN, kdf=KdfParams.FAST_FOR_TESTS)
    with pytest.raises(Rejected, match="no pow_target_bits"):
        open_node(replace(load(tmp_path / "solo"), consensus="pow"))


# -- helpers -------------------------------------------------------------------


def _at(block: blockmod.Block, nonce: int) -> blockmod.BlockHeader:
    return replace(block.header, target=TARGET, nonce=nonce)


def _admit(admin: Actor, hospital: Actor) -> txmod.Transaction:
    payload = {"hospital_id": "h1", "name": "H1", "admin": hospital.account_payload()}
    signed = txmod.build(
        "hospital.admit", CHAIN, admin.address, admin.nonce, payload, admin.identity.signing
    )
    admin.nonce += 1
    return signed


def _register(hospital: Actor, patient: Actor) -> txmod.Transaction:
    signed = txmod.build(
        "patient.register",
        CHAIN,
        hospital.address,
        hospital.nonce,
        patient.account_payload(),
        hospital.identity.signing,
    )
    hospital.nonce += 1
    return signed


def _block(node: Node, height: int) -> blockmod.Block:
    block = node.service.block(height)
    assert block is not None
    return block


def _mine_own(node: Node, txs: Sequence[txmod.Transaction]) -> blockmod.Block:
    """Admit ``txs`` and mine them here, as the node's miner would, through the driver."""
    for t in txs:
        if node.service.tx(t.tx_id) is None and t not in node.service.pending(0, 100):
            node.service.submit(t.to_bytes())
    proposed = node.service.propose_block(node.service.head().height + 1)
    assert proposed is not None
    found = mine(proposed.header, TARGET, 0, 1 << 20)
    assert found is not None
    block = blockmod.Block(found, proposed.txs, node.service.engine.certify(found))
    node.driver.receive_block(block.to_bytes())
    assert node.service.head().hash == block.hash
    return block


def _empty(parent: blockmod.Block, miner: Identity, root: bytes | None = None) -> blockmod.Block:
    """A mined block of no transactions over ``parent``, sealed by ``miner``."""
    header = blockmod.header_for(
        chain_id=CHAIN,
        height=parent.header.height + 1,
        prev_hash=parent.hash,
        txs=(),
        timestamp_ms=parent.header.timestamp_ms + 1,
        state_root=state_root(parent.header.state_root, {}) if root is None else root,
        proposer=Address(miner.address),
    )
    found = mine(header, TARGET, 0, 1 << 20)
    assert found is not None
    return seal(blockmod.Block(found, ()), miner.signing, Address(miner.address))
