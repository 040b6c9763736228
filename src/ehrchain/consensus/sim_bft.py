"""Seeded simulation of the BFT handler among honest and Byzantine validators.

The handlers are the shipped ``bft.on_message``; only the blocks are a test
harness: a block is a real ``core.block.Block`` with no transactions whose
state root is a fixed function of its parent and height, so validity is
deterministic and an invalid block is easy to make. Byzantine behaviours:

- ``SPLIT_BRAIN``: the node runs two honest instances under one key, each
  talking to its own half of the honest nodes. It equivocates as proposer
  (two valid blocks, one per half) and double-votes whenever the halves differ.
- ``INVALID_BLOCKS``: it proposes blocks that fail validation.
- ``SILENT``: it never sends anything.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from ehrchain.consensus import bft
from ehrchain.consensus.bft_types import (
    BftContext,
    Broadcast,
    Decide,
    Output,
    RecordEvidence,
    ScheduleTimeout,
    Send,
    Timeouts,
)
from ehrchain.consensus.certificate import check_certificate
from ehrchain.consensus.errors import InvalidCertificate
from ehrchain.consensus.evidence import DoubleSign
from ehrchain.consensus.messages import Message, NetworkMessage, Start, Verifier, signature_ok
from ehrchain.consensus.simnet import Delivery, Faults, NetStats, Network, Restart, Timer
from ehrchain.core import block as blockmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.encoding import tagged_hash
from ehrchain.core.errors import CoreError
from ehrchain.core.types import Address, BlockHash, ChainId
from ehrchain.crypto.signing import SigningKey

CHAIN_ID: Final = ChainId("ehrchain-sim")
SIM_TIMEOUTS: Final = Timeouts(
    propose_ms=200, prevote_ms=100, precommit_ms=100, per_round_ms=100, commit_ms=100, tick_ms=300
)


class Behaviour(Enum):
    HONEST = "honest"
    SPLIT_BRAIN = "split-brain"
    INVALID_BLOCKS = "invalid-blocks"
    SILENT = "silent"


BYZANTINE: Final = (Behaviour.SPLIT_BRAIN, Behaviour.INVALID_BLOCKS, Behaviour.SILENT)


@dataclass(frozen=True, slots=True)
class Decision:
    height: int
    block_hash: BlockHash
    block: bytes
    certificate: blockmod.CommitCertificate
    time_ms: int


@dataclass(frozen=True, slots=True)
class BftRun:
    """What a run produced: every honest node's decided chain, evidence and a trace."""

    seed: int
    behaviours: Mapping[int, Behaviour]
    addresses: tuple[Address, ...]
    schedule: tuple[tuple[int, frozenset[int]], ...]
    chains: Mapping[int, tuple[Decision, ...]]
    evidence: Mapping[int, tuple[DoubleSign, ...]]
    quiet_ms: int
    until_ms: int
    trace: tuple[tuple[int, str, str], ...]
    stats: NetStats
    public_keys: tuple[bytes, ...]

    @property
    def honest(self) -> tuple[int, ...]:
        return tuple(i for i, b in sorted(self.behaviours.items()) if b is Behaviour.HONEST)

    def validators_at(self, height: int) -> Mapping[Address, bytes]:
        members = _members_at(self.schedule, height)
        return {self.addresses[i]: self.public_keys[i] for i in members}


def _members_at(schedule: tuple[tuple[int, frozenset[int]], ...], height: int) -> frozenset[int]:
    """The validator node ids deciding ``height``: the last entry starting at or below it."""
    members = schedule[0][1]
    for start, nodes in schedule:
        if start <= height:
            members = nodes
    return members


def safety_violations(run: BftRun) -> list[str]:
    """Heights at which two honest nodes decided different blocks."""
    seen: dict[int, dict[BlockHash, int]] = {}
    for node in run.honest:
        for decision in run.chains[node]:
            seen.setdefault(decision.height, {}).setdefault(decision.block_hash, node)
    return [
        f"height {h}: " + ", ".join(f"node {n} decided {b.hex()[:12]}" for b, n in blocks.items())
        for h, blocks in sorted(seen.items())
        if len(blocks) > 1
    ]


def chain_errors(run: BftRun) -> list[str]:
    """Honest chains that skip a height or whose blocks do not link to their parent."""
    errors = []
    for node in run.honest:
        parent = blockmod.GENESIS_PARENT
        for expected, d in enumerate(run.chains[node], start=1):
            header = blockmod.block_from_bytes(d.block).header
            if d.height != expected or header.prev_hash != parent:
                errors.append(f"node {node} height {d.height}: does not extend its chain")
            parent = d.block_hash
    return errors


def certificate_errors(run: BftRun) -> list[str]:
    """Decisions whose certificate ``check_certificate`` rejects for that height's validators."""
    errors = []
    for node in run.honest:
        for d in run.chains[node]:
            header = blockmod.block_from_bytes(d.block).header
            try:
                if header.hash != d.block_hash or header.height != d.height:
                    raise InvalidCertificate("the decided block is not the certified one")
                check_certificate(header, d.certificate, run.validators_at(d.height))
            except InvalidCertificate as exc:
                errors.append(f"node {node} height {d.height}: {exc}")
    return errors


class SimBlocks:
    """One endpoint's fake application: builds and checks empty blocks on its chain."""

    def __init__(self, proposer: Address, salt: int, invalid: bool) -> None:
        self.proposer, self.salt, self.invalid = proposer, salt, invalid
        self.tip = blockmod.GENESIS_PARENT
        self._headers: dict[bytes, blockmod.BlockHeader | None] = {}

    def propose(self, height: int, round_: int) -> bytes | None:
        root = bytes(32) if self.invalid else _state_root(self.tip, height)
        header = blockmod.BlockHeader(
            magic=blockmod.MAGIC,
            version=blockmod.VERSION,
            chain_id=CHAIN_ID,
            size=0,
            tx_count=0,
            height=height,
            prev_hash=self.tip,
            tx_root=blockmod.tx_root(()),
            timestamp_ms=self.salt,
            target=0,
            nonce=round_,
            state_root=root,
            proposer=self.proposer,
        )
        return blockmod.Block(header, ()).to_bytes()

    def header(self, block: bytes) -> blockmod.BlockHeader | None:
        if block not in self._headers:
            try:
                self._headers[block] = blockmod.block_from_bytes(block).header
            except CoreError:
                self._headers[block] = None
        return self._headers[block]

    def validate(self, height: int, block: bytes) -> bool:
        header = self.header(block)
        return (
            header is not None
            and header.prev_hash == self.tip
            and header.state_root == _state_root(self.tip, height)
        )


def _state_root(parent: bytes, height: int) -> bytes:
    return tagged_hash("ehrchain/sim-state/v1", [parent, height])


def _memo_verifier() -> Verifier:
    """Real Ed25519 verification, each distinct (key, message, signature) checked once."""
    results: dict[tuple[bytes, bytes, bytes], bool] = {}

    def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
        key = (public_key, message, signature)
        if key not in results:
            results[key] = signature_ok(public_key, message, signature)
        return results[key]

    return verify


def sim_key(seed: int, node: int) -> SigningKey:
    """The deterministic signing key of ``node`` in the run with ``seed``."""
    return SigningKey(hashlib.sha256(f"ehrchain-sim-key/{seed}/{node}".encode()).digest())


@dataclass(slots=True)
class _Endpoint:
    node: int
    half: int | None
    """Which honest half a split-brain instance talks to; None for a whole node."""
    ctx: BftContext
    app: SimBlocks
    state: bft.BftState
    silent: bool
    chain: list[Decision] = field(default_factory=list)
    evidence: list[DoubleSign] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"node {self.node}" + ("" if self.half is None else "ab"[self.half])


def run_bft(
    seed: int,
    n: int,
    f_byzantine: int,
    faults: Faults,
    until_ms: int,
    *,
    behaviour: Behaviour | None = None,
    byzantine_nodes: tuple[int, ...] | None = None,
    schedule: tuple[tuple[int, frozenset[int]], ...] | None = None,
    timeouts: Timeouts = SIM_TIMEOUTS,
    settle_heights: int | None = None,
) -> BftRun:
    """Run ``n`` nodes, ``f_byzantine`` of them Byzantine, from height 1 until ``until_ms``.

    Unless given, the Byzantine nodes and their behaviour (per node) are drawn
    from the seed. ``schedule`` lists (first height, validator node ids); by
    default all n nodes validate every height. With ``settle_heights`` the run
    ends early once every honest node decided that many heights after the
    faults stopped.
    """
    rng = random.Random(seed)
    keys = [sim_key(seed, i) for i in range(n)]
    public_keys = tuple(k.public_key for k in keys)
    addresses = tuple(address_from_public_key(pk) for pk in public_keys)
    schedule = schedule or ((1, frozenset(range(n))),)
    chosen = byzantine_nodes if byzantine_nodes is not None else rng.sample(range(n), f_byzantine)
    behaviours = {i: Behaviour.HONEST for i in range(n)}
    for i in sorted(chosen):
        behaviours[i] = behaviour or rng.choice(BYZANTINE)
    honest = [i for i in range(n) if behaviours[i] is Behaviour.HONEST]
    rng.shuffle(honest)
    half_of = {node: int(k >= len(honest) // 2) for k, node in enumerate(honest)}

    def validators_at(height: int) -> Mapping[Address, bytes]:
        return {addresses[i]: public_keys[i] for i in _members_at(schedule, height)}

    verify = _memo_verifier()
    endpoints: list[_Endpoint] = []
    for i in range(n):
        halves: tuple[int | None, ...] = (
            (0, 1) if behaviours[i] is Behaviour.SPLIT_BRAIN else (None,)
        )
        for half in halves:
            app = SimBlocks(
                addresses[i],
                0 if half is None else half + 1,
                behaviours[i] is Behaviour.INVALID_BLOCKS,
            )
            ctx = BftContext(CHAIN_ID, addresses[i], keys[i], app, validators_at, timeouts, verify)
            silent = behaviours[i] is Behaviour.SILENT
            endpoints.append(_Endpoint(i, half, ctx, app, bft.initial_state(1, ctx), silent))
    sim = _BftSim(rng, faults, endpoints, half_of, addresses)
    sim.run(until_ms, settle_heights)
    return BftRun(
        seed=seed,
        behaviours=MappingProxyType(behaviours),
        addresses=addresses,
        schedule=schedule,
        chains=MappingProxyType({e.node: tuple(e.chain) for e in endpoints if e.node in half_of}),
        evidence=MappingProxyType(
            {e.node: tuple(e.evidence) for e in endpoints if e.node in half_of}
        ),
        quiet_ms=faults.quiet_ms,
        until_ms=until_ms,
        trace=tuple(sim.trace),
        stats=sim.net.stats,
        public_keys=public_keys,
    )


class _BftSim:
    """Carries out the handlers' outputs over the simulated network."""

    def __init__(
        self,
        rng: random.Random,
        faults: Faults,
        endpoints: list[_Endpoint],
        half_of: Mapping[int, int],
        addresses: tuple[Address, ...],
    ) -> None:
        self.endpoints, self.half_of = endpoints, half_of
        self.node_by_address = {a: i for i, a in enumerate(addresses)}
        self.by_node: dict[int, list[int]] = {}
        for index, e in enumerate(endpoints):
            self.by_node.setdefault(e.node, []).append(index)
        self.net: Network[Message] = Network(rng, faults, tuple(e.node for e in endpoints))
        self.trace: list[tuple[int, str, str]] = []
        self.settle_heights: int | None = None
        self.settled = False

    def run(self, until_ms: int, settle_heights: int | None) -> None:
        for index in range(len(self.endpoints)):
            self.net.arm(index, Start(), 0)
        self.settle_heights = settle_heights
        while not self.settled and (event := self.net.next(until_ms)) is not None:
            index, item = event
            if isinstance(item, Restart):
                self.trace.append((self.net.now_ms, self.endpoints[index].label, "restart"))
                self._handle(index, Start())
            elif isinstance(item, Delivery):
                self._handle(index, item.message)
            elif isinstance(item, Timer):
                self._handle(index, item.event)

    def _check_settled(self) -> None:
        heights, quiet = self.settle_heights, self.net.faults.quiet_ms
        self.settled = heights is not None and all(
            sum(d.time_ms > quiet for d in e.chain[-heights:]) >= heights
            for e in self.endpoints
            if e.node in self.half_of
        )

    def _handle(self, index: int, msg: Message) -> None:
        e = self.endpoints[index]
        e.state, outputs = bft.on_message(e.state, msg, e.ctx)
        for output in outputs:
            self._perform(index, e, output)

    def _perform(self, index: int, e: _Endpoint, output: Output) -> None:
        now = self.net.now_ms
        if isinstance(output, ScheduleTimeout):
            self.net.arm(index, output.event, output.delay_ms)
        elif isinstance(output, Decide):
            e.app.tip = output.block_hash
            e.chain.append(
                Decision(output.height, output.block_hash, output.block, output.certificate, now)
            )
            self.trace.append(
                (now, e.label, f"decide {output.height} {output.block_hash.hex()[:12]}")
            )
            self._check_settled()
        elif isinstance(output, RecordEvidence):
            e.evidence.append(output.evidence)
            self.trace.append((now, e.label, f"evidence against {output.evidence.offender}"))
        elif not e.silent and isinstance(output, Broadcast):
            for node in self.by_node:
                if node != e.node:
                    self._send(index, e, node, output.message)
        elif not e.silent and isinstance(output, Send):
            self._send(index, e, self.node_by_address[output.to], output.message)

    def _send(self, index: int, e: _Endpoint, node: int, message: NetworkMessage) -> None:
        for target in self._targets(e, node):
            self.net.transmit(index, target, message)

    def _targets(self, e: _Endpoint, node: int) -> list[int]:
        """Split-brain instances and the honest halves only see each other."""
        targets = self.by_node[node]
        my_half = e.half if e.half is not None else self.half_of.get(e.node)
        if e.half is not None and node in self.half_of and self.half_of[node] != e.half:
            return []
        if len(targets) == 1 or my_half is None:
            return targets
        return [targets[my_half]]
