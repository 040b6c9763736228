"""Seeded simulation of permissioned proof of work: miners, forks, reorgs and a mempool.

The block tree and fork choice are the shipped ``pow_chain.on_message``; the
nonce search is the shipped ``pow.mine``. Around them each node keeps a ledger
the way a node does: it applies and undoes blocks exactly as ``Extend`` and
``Reorg`` say, checks each block's (fake but deterministic) state root as it
applies it, reports failures with ``Invalid``, and keeps a pool of real signed
transactions that mined blocks draw from and ``ReturnToPool`` refills. Mining
is chunked: every ``mine_every_ms`` a node tries ``iters`` nonces on a block
over its current tip. Byzantine behaviours:

- ``OUTSIDER``: not a validator; mines and seals with its own key.
- ``INVALID_BLOCKS``: a validator whose blocks carry a wrong state root, so
  they pass every check but fail when applied.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from ehrchain.consensus import pow_chain
from ehrchain.consensus.bft_types import ScheduleTimeout
from ehrchain.consensus.messages import Start, Tick
from ehrchain.consensus.pow import mine, seal
from ehrchain.consensus.pow_chain import (
    BlockMsg,
    Extend,
    Gossip,
    Invalid,
    PowContext,
    PowMessage,
    PowOutput,
    PowState,
    Reorg,
    Reply,
    ReturnToPool,
)
from ehrchain.consensus.sim_bft import CHAIN_ID, sim_key
from ehrchain.consensus.simnet import Delivery, Faults, NetStats, Network, Restart, Timer
from ehrchain.core import block as blockmod
from ehrchain.core import tx as txmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.encoding import tagged_hash
from ehrchain.core.types import Address, BlockHash, TxId
from ehrchain.crypto.signing import SigningKey

TARGET_BITS: Final = 5
TX_COUNT: Final = 24
TXS_PER_BLOCK: Final = 3


class Miner(Enum):
    HONEST = "honest"
    OUTSIDER = "outsider"
    INVALID_BLOCKS = "invalid-blocks"


@dataclass(frozen=True, slots=True)
class MineTick:
    """Sim-only timer: spend one chunk of nonce search."""


@dataclass(frozen=True, slots=True)
class PowRun:
    """Each honest node's final block tree, applied ledger and pool, plus a trace."""

    seed: int
    miners: Mapping[int, Miner]
    addresses: tuple[Address, ...]
    genesis: BlockHash
    states: Mapping[int, PowState]
    ledgers: Mapping[int, tuple[blockmod.Block, ...]]
    pools: Mapping[int, frozenset[TxId]]
    all_txs: frozenset[TxId]
    reorgs: Mapping[int, int]
    returned: Mapping[int, int]
    mine_until_ms: int
    quiet_ms: int
    trace: tuple[tuple[int, str, str], ...]
    stats: NetStats

    @property
    def honest(self) -> tuple[int, ...]:
        return tuple(i for i, m in sorted(self.miners.items()) if m is Miner.HONEST)


@functools.cache
def sim_transactions(count: int = TX_COUNT) -> tuple[txmod.Transaction, ...]:
    """Real signed transactions, the same for every run."""
    key = SigningKey(tagged_hash("ehrchain/sim-tx-key/v1", []))
    sender = address_from_public_key(key.public_key)
    return tuple(txmod.build("sim.note", CHAIN_ID, sender, i, {"n": i}, key) for i in range(count))


def state_root(parent: bytes, height: int) -> bytes:
    """The sim's stand-in for a state commitment: a function of the parent and height."""
    return tagged_hash("ehrchain/sim-state/v1", [parent, height])


@dataclass(slots=True)
class _Node:
    """One miner: the pure block tree plus the ledger and pool a node keeps beside it."""

    index: int
    miner: Miner
    address: Address
    key: SigningKey
    ctx: PowContext
    state: PowState
    genesis: BlockHash
    ledger: list[blockmod.Block] = field(default_factory=list)
    hashes: list[BlockHash] = field(default_factory=list)
    pool: dict[TxId, txmod.Transaction] = field(default_factory=dict)
    candidate: blockmod.BlockHeader | None = None
    candidate_txs: tuple[txmod.Transaction, ...] = ()
    next_nonce: int = 0
    reorgs: int = 0
    returned: int = 0

    @property
    def ledger_tip(self) -> BlockHash:
        return self.hashes[-1] if self.hashes else self.genesis

    def in_chain(self) -> set[TxId]:
        return {t.tx_id for b in self.ledger for t in b.txs}

    def apply(self, block: blockmod.Block) -> bool:
        """Apply one block to the ledger; False (and nothing changed) if it is invalid."""
        header = block.header
        if header.prev_hash != self.ledger_tip:
            raise AssertionError(f"node {self.index}: block does not extend the ledger tip")
        if header.state_root != state_root(header.prev_hash, header.height):
            return False
        if any(t.tx_id in self.in_chain() for t in block.txs):
            return False
        self.ledger.append(block)
        self.hashes.append(block.hash)
        for t in block.txs:
            self.pool.pop(t.tx_id, None)
        return True

    def undo(self, block_hash: BlockHash) -> None:
        if self.ledger_tip != block_hash:
            raise AssertionError(f"node {self.index}: undo of a block that is not the tip")
        self.ledger.pop()
        self.hashes.pop()


def run_pow(
    seed: int,
    n: int,
    faults: Faults,
    until_ms: int,
    *,
    mine_until_ms: int,
    byzantine: Mapping[int, Miner] | None = None,
    mine_every_ms: int = 20,
    iters: int = 2,
    tick_ms: int = 300,
) -> PowRun:
    """Run ``n`` miners until ``until_ms``; nobody mines after ``mine_until_ms``.

    ``byzantine`` maps node ids to their misbehaviour; the rest are honest
    validators. Outsiders are not in the validator set.
    """
    rng = random.Random(seed)
    miners = {i: Miner.HONEST for i in range(n)} | dict(byzantine or {})
    keys = [sim_key(seed, i) for i in range(n)]
    addresses = tuple(address_from_public_key(k.public_key) for k in keys)
    validators = {
        addresses[i]: keys[i].public_key for i in range(n) if miners[i] is not Miner.OUTSIDER
    }
    genesis = BlockHash(tagged_hash("ehrchain/sim-genesis/v1", [seed]))
    nodes = []
    for i in range(n):
        ctx = PowContext(CHAIN_ID, addresses[i], TARGET_BITS, lambda h: validators, tick_ms)
        node = _Node(
            i, miners[i], addresses[i], keys[i], ctx, pow_chain.initial_state(genesis), genesis
        )
        node.pool = {t.tx_id: t for t in sim_transactions()}
        nodes.append(node)
    sim = _PowSim(rng, faults, nodes, mine_every_ms, iters, mine_until_ms)
    sim.run(until_ms)
    honest = [node for node in nodes if node.miner is Miner.HONEST]
    return PowRun(
        seed=seed,
        miners=MappingProxyType(miners),
        addresses=addresses,
        genesis=genesis,
        states=MappingProxyType({x.index: x.state for x in honest}),
        ledgers=MappingProxyType({x.index: tuple(x.ledger) for x in honest}),
        pools=MappingProxyType({x.index: frozenset(x.pool) for x in honest}),
        all_txs=frozenset(t.tx_id for t in sim_transactions()),
        reorgs=MappingProxyType({x.index: x.reorgs for x in honest}),
        returned=MappingProxyType({x.index: x.returned for x in honest}),
        mine_until_ms=mine_until_ms,
        quiet_ms=faults.quiet_ms,
        trace=tuple(sim.trace),
        stats=sim.net.stats,
    )


class _PowSim:
    def __init__(
        self,
        rng: random.Random,
        faults: Faults,
        nodes: list[_Node],
        mine_every_ms: int,
        iters: int,
        mine_until_ms: int,
    ) -> None:
        self.nodes, self.mine_every_ms, self.iters = nodes, mine_every_ms, iters
        self.mine_until_ms = mine_until_ms
        self.by_address = {node.address: node.index for node in nodes}
        self.net: Network[PowMessage | MineTick] = Network(rng, faults, tuple(range(len(nodes))))
        self.trace: list[tuple[int, str, str]] = []

    def run(self, until_ms: int) -> None:
        for node in self.nodes:
            self.net.arm(node.index, Start(), 0)
            self.net.arm(node.index, MineTick(), self.net.rng.randint(1, self.mine_every_ms))
        while (event := self.net.next(until_ms)) is not None:
            index, item = event
            node = self.nodes[index]
            if isinstance(item, Restart):
                self.trace.append((self.net.now_ms, f"node {index}", "restart"))
                self._handle(node, Start())
                self.net.arm(index, MineTick(), self.mine_every_ms)
            elif isinstance(item, Timer) and isinstance(item.event, MineTick):
                self._mine(node)
            elif isinstance(item, Timer | Delivery):
                message = item.event if isinstance(item, Timer) else item.message
                assert not isinstance(message, MineTick)
                self._handle(node, message)

    def _handle(self, node: _Node, msg: PowMessage) -> None:
        node.state, outputs = pow_chain.on_message(node.state, msg, node.ctx)
        failed = self._perform(node, outputs)
        if failed is not None:
            self.trace.append(
                (self.net.now_ms, f"node {node.index}", f"invalid {failed.hex()[:12]}")
            )
            self._handle(node, Invalid(failed))

    def _perform(self, node: _Node, outputs: tuple[PowOutput, ...]) -> BlockHash | None:
        """Carry out the outputs in order; stop applying at a block that fails."""
        failed: BlockHash | None = None
        now = self.net.now_ms
        for output in outputs:
            if isinstance(output, Gossip):
                for other in self.nodes:
                    if other.index != node.index:
                        self.net.transmit(node.index, other.index, output.message)
            elif isinstance(output, Reply):
                self.net.transmit(node.index, self.by_address[output.to], output.message)
            elif isinstance(output, ScheduleTimeout) and isinstance(output.event, Tick):
                self.net.arm(node.index, output.event, output.delay_ms)
            elif isinstance(output, ReturnToPool):
                chain = node.in_chain()
                for t in sim_transactions():
                    if t.tx_id in output.tx_ids and t.tx_id not in chain:
                        node.pool[t.tx_id] = t
                node.returned += len(output.tx_ids)
            elif failed is not None:
                continue
            elif isinstance(output, Extend):
                failed = None if node.apply(output.block) else output.block.hash
            elif isinstance(output, Reorg):
                node.reorgs += 1
                self.trace.append(
                    (now, f"node {node.index}", f"reorg -{len(output.undo)} +{len(output.apply)}")
                )
                for block_hash in output.undo:
                    node.undo(block_hash)
                failed = next((b.hash for b in output.apply if not node.apply(b)), None)
        return failed

    def _mine(self, node: _Node) -> None:
        """One chunk of nonce search over the node's current tip."""
        now = self.net.now_ms
        if now >= self.mine_until_ms:
            return
        self.net.arm(node.index, MineTick(), self.mine_every_ms)
        tip = node.state.tip
        if node.candidate is None or node.candidate.prev_hash != tip:
            node.candidate_txs = self._pick(node, pow_chain.height_of(node.state, tip))
            node.candidate = self._header(node, tip, now)
            node.next_nonce = 0
        found = mine(node.candidate, TARGET_BITS, node.next_nonce, self.iters)
        node.next_nonce += self.iters
        if found is None:
            return
        block = seal(blockmod.Block(found, node.candidate_txs), node.key, node.address)
        node.candidate = None
        self.trace.append(
            (now, f"node {node.index}", f"mined {found.height} {block.hash.hex()[:12]}")
        )
        self._handle(node, BlockMsg(block))

    def _pick(self, node: _Node, height: int) -> tuple[txmod.Transaction, ...]:
        """Up to ``TXS_PER_BLOCK`` pool transactions; miners start at different places so
        competing blocks hold different transactions."""
        pending = sorted(node.pool.values(), key=lambda t: t.nonce)
        if not pending:
            return ()
        start = (node.index * 7 + height * 3) % len(pending)
        return tuple((pending[start:] + pending[:start])[:TXS_PER_BLOCK])

    def _header(self, node: _Node, tip: BlockHash, now: int) -> blockmod.BlockHeader:
        height = pow_chain.height_of(node.state, tip) + 1
        txs = node.candidate_txs
        root = bytes(32) if node.miner is Miner.INVALID_BLOCKS else state_root(tip, height)
        return blockmod.BlockHeader(
            magic=blockmod.MAGIC,
            version=blockmod.VERSION,
            chain_id=CHAIN_ID,
            size=blockmod.tx_list_size(txs),
            tx_count=len(txs),
            height=height,
            prev_hash=tip,
            tx_root=blockmod.tx_root(txs),
            timestamp_ms=now,
            target=TARGET_BITS,
            nonce=0,
            state_root=root,
            proposer=node.address,
        )


def convergence_errors(run: PowRun) -> list[str]:
    """Honest nodes that disagree on the tip, or whose ledger is not their best chain."""
    errors = []
    tips = {run.states[i].tip for i in run.honest}
    if len(tips) > 1:
        errors.append(f"honest nodes on {len(tips)} different tips")
    for i in run.honest:
        chain = pow_chain.best_chain(run.states[i])
        if tuple(b.hash for b in run.ledgers[i]) != chain:
            errors.append(f"node {i}: ledger is not the best chain")
    return errors


def ledger_errors(run: PowRun) -> list[str]:
    """Broken ledgers: a block that does not link, a bad root, an unsealed or repeated tx,
    or a transaction that is neither in the chain nor back in the pool."""
    errors = []
    validators = {run.addresses[i] for i, m in run.miners.items() if m is not Miner.OUTSIDER}
    for i in run.honest:
        parent, seen = run.genesis, list[TxId]()
        for block in run.ledgers[i]:
            header = block.header
            if header.prev_hash != parent or header.state_root != state_root(parent, header.height):
                errors.append(f"node {i}: block {header.height} does not follow its parent")
            if header.proposer not in validators:
                errors.append(f"node {i}: block {header.height} sealed by a non-validator")
            seen.extend(t.tx_id for t in block.txs)
            parent = block.hash
        if len(seen) != len(set(seen)):
            errors.append(f"node {i}: a transaction is in the chain twice")
        if set(seen) | run.pools[i] != run.all_txs or set(seen) & run.pools[i]:
            errors.append(f"node {i}: transactions lost or duplicated between chain and pool")
    return errors
