"""The proof-of-work block tree as one pure handler: ``on_message(state, msg, ctx)``.

The handler keeps every valid block it hears of, follows the tip with the most
cumulative work and tells the node how to move its state there: ``Extend`` one
block at a time, or ``Reorg`` (undo these, apply those) when the best chain
forks below the tip, after which the transactions of the undone blocks go
back to the pool (``ReturnToPool``). Blocks
whose parent is unknown wait as orphans while the parent is asked for. A block
the node fails to apply is reported back with ``Invalid``; it and its
descendants are dropped for good and the tip moves to the best remaining
chain. Blocks deeper than ``keep_depth`` below the tip are pruned: a fork that
deep is no longer followed, which bounds both memory and reorganisations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from ehrchain.consensus.bft_types import ScheduleTimeout, ValidatorSetAt
from ehrchain.consensus.errors import InsufficientWork
from ehrchain.consensus.messages import Start, Tick
from ehrchain.consensus.pow import best_tip, block_work, check_work, reorg_plan, seal_error
from ehrchain.core.block import Block, check_body
from ehrchain.core.errors import InvalidBlock
from ehrchain.core.types import Address, BlockHash, ChainId, TxId


@dataclass(frozen=True, slots=True)
class BlockMsg:
    """A sealed block, mined here or received."""

    block: Block


@dataclass(frozen=True, slots=True)
class GetBlock:
    """``sender`` is missing this block; the answer includes some of its ancestors."""

    block_hash: BlockHash
    sender: Address


@dataclass(frozen=True, slots=True)
class Invalid:
    """From the node: applying this block failed, so its state is at the block's parent."""

    block_hash: BlockHash


PowNetworkMessage = BlockMsg | GetBlock
PowMessage = BlockMsg | GetBlock | Invalid | Tick | Start


@dataclass(frozen=True, slots=True)
class Gossip:
    message: PowNetworkMessage


@dataclass(frozen=True, slots=True)
class Reply:
    to: Address
    message: PowNetworkMessage


@dataclass(frozen=True, slots=True)
class Extend:
    """Apply ``block`` on top of the current state."""

    block: Block


@dataclass(frozen=True, slots=True)
class Reorg:
    """Undo ``undo`` (current tip first), then apply ``apply`` (oldest first)."""

    undo: tuple[BlockHash, ...]
    apply: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ReturnToPool:
    """Offer the transactions of undone blocks back to the pool, even if applying failed.

    Those the node's chain holds again after the reorganisation are already
    committed and the pool turns them away, as it would any replayed transaction.
    """

    tx_ids: tuple[TxId, ...]


PowOutput = Gossip | Reply | Extend | Reorg | ReturnToPool | ScheduleTimeout


@dataclass(frozen=True, slots=True)
class PowContext:
    """The chain's fixed difficulty (no retargeting) and who may seal blocks."""

    chain_id: ChainId
    me: Address
    target: int
    validator_set_at: ValidatorSetAt
    tick_ms: int = 1000
    keep_depth: int = 100
    max_orphans: int = 256
    sync_batch: int = 16


@dataclass(frozen=True, slots=True)
class PowState:
    """The block tree above ``root`` (genesis, or the last pruning point).

    ``work`` holds the cumulative work of ``root`` and of every block in
    ``blocks``; ``orphans`` are sealed blocks waiting for their parent, keyed by it.
    """

    root: BlockHash
    root_height: int
    tip: BlockHash
    blocks: Mapping[BlockHash, Block] = field(default_factory=lambda: MappingProxyType({}))
    work: Mapping[BlockHash, int] = field(default_factory=lambda: MappingProxyType({}))
    orphans: Mapping[BlockHash, tuple[Block, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    invalid: frozenset[BlockHash] = frozenset()


Transition = tuple[PowState, tuple[PowOutput, ...]]


def initial_state(genesis: BlockHash, genesis_height: int = 0) -> PowState:
    return PowState(genesis, genesis_height, genesis, work=MappingProxyType({genesis: 0}))


def state_from_chain(root: BlockHash, root_height: int, chain: Sequence[Block]) -> PowState:
    """The tree of a node restarting on its committed chain: ``chain`` above ``root``, tip last.

    The blocks are trusted (they were verified when committed), so they are not
    checked again; each must name the one before it (the first names ``root``).
    """
    blocks: dict[BlockHash, Block] = {}
    work = {root: 0}
    parent = root
    for block in chain:
        if block.header.prev_hash != parent:
            raise ValueError(f"block {block.header.height} does not extend the chain before it")
        blocks[block.hash] = block
        work[block.hash] = work[parent] + block_work(block.header.target)
        parent = block.hash
    return PowState(root, root_height, parent, MappingProxyType(blocks), MappingProxyType(work))


def parent_of(state: PowState, block_hash: BlockHash) -> BlockHash | None:
    if block_hash == state.root or block_hash not in state.blocks:
        return None
    return state.blocks[block_hash].header.prev_hash


def height_of(state: PowState, block_hash: BlockHash) -> int:
    if block_hash == state.root:
        return state.root_height
    return state.blocks[block_hash].header.height


def best_chain(state: PowState) -> tuple[BlockHash, ...]:
    """The hashes from just above the root up to the tip."""
    path, cursor = [], state.tip
    while cursor != state.root:
        path.append(cursor)
        cursor = state.blocks[cursor].header.prev_hash
    return tuple(reversed(path))


def on_message(state: PowState, msg: PowMessage, ctx: PowContext) -> Transition:
    """Apply one message or timer event; return the new state and what to do."""
    if isinstance(msg, BlockMsg):
        return _on_block(state, msg.block, ctx)
    if isinstance(msg, GetBlock):
        return state, _answer(state, msg, ctx)
    if isinstance(msg, Invalid):
        return _on_invalid(state, msg.block_hash, ctx)
    return state, _announce(state, ctx)


def block_error(block: Block, ctx: PowContext) -> str | None:
    """Why a block can never be part of this chain on its own merits, or None."""
    header = block.header
    if header.chain_id != ctx.chain_id:
        return f"block is for chain {header.chain_id!r}"
    try:
        check_work(header, ctx.target)
        check_body(block)
    except (InsufficientWork, InvalidBlock) as exc:
        return str(exc)
    return seal_error(block, ctx.validator_set_at(header.height))


def _on_block(state: PowState, block: Block, ctx: PowContext) -> Transition:
    block_hash, header = block.hash, block.header
    if block_hash in state.work or block_hash in state.invalid:
        return state, ()
    if header.height <= state.root_height or header.prev_hash in state.invalid:
        return state, ()
    if block_error(block, ctx) is not None:
        return state, ()
    if header.prev_hash not in state.work:
        return _park(state, block, ctx)
    state, attached = _attach(state, block)
    best = best_tip({h: state.work[h] for h in (state.tip, *attached)})
    if best == state.tip:
        return state, ()
    return _move_tip(state, state.tip, best, ctx)


def _park(state: PowState, block: Block, ctx: PowContext) -> Transition:
    """Keep a block whose parent is unknown and ask peers for the parent."""
    parent = block.header.prev_hash
    waiting = state.orphans.get(parent, ())
    count = sum(len(blocks) for blocks in state.orphans.values())
    if block in waiting or count >= ctx.max_orphans:
        return state, ()
    orphans = dict(state.orphans)
    orphans[parent] = (*waiting, block)
    return replace(state, orphans=MappingProxyType(orphans)), (Gossip(GetBlock(parent, ctx.me)),)


def _attach(state: PowState, block: Block) -> tuple[PowState, list[BlockHash]]:
    """Add a block whose parent is known, then every orphan that now connects."""
    blocks, work, orphans = dict(state.blocks), dict(state.work), dict(state.orphans)
    invalid = set(state.invalid)
    attached: list[BlockHash] = []
    pending = [block]
    while pending:
        child = pending.pop()
        child_hash, parent = child.hash, child.header.prev_hash
        parent_height = state.root_height if parent == state.root else blocks[parent].header.height
        if child.header.height != parent_height + 1:
            invalid.add(child_hash)
            continue
        blocks[child_hash] = child
        work[child_hash] = work[parent] + block_work(child.header.target)
        attached.append(child_hash)
        pending.extend(orphans.pop(child_hash, ()))
    pending_orphans = {p: o for p, o in orphans.items() if p not in invalid}
    return replace(
        state,
        blocks=MappingProxyType(blocks),
        work=MappingProxyType(work),
        orphans=MappingProxyType(pending_orphans),
        invalid=frozenset(invalid),
    ), attached


def _move_tip(state: PowState, at: BlockHash, best: BlockHash, ctx: PowContext) -> Transition:
    """Tell the node how to go from ``at`` (where its state is) to ``best``."""
    undo, apply = reorg_plan(at, best, lambda h: parent_of(state, h))
    blocks = [state.blocks[h] for h in apply]
    out: list[PowOutput] = []
    if undo:
        out.append(Reorg(tuple(undo), tuple(blocks)))
        returned = [t.tx_id for h in undo for t in state.blocks[h].txs]
        if returned:
            out.append(ReturnToPool(tuple(dict.fromkeys(returned))))
    else:
        out.extend(Extend(b) for b in blocks)
    out.append(Gossip(BlockMsg(state.blocks[best])))
    return _prune(replace(state, tip=best), ctx), tuple(out)


def _on_invalid(state: PowState, bad: BlockHash, ctx: PowContext) -> Transition:
    """Drop a block the node could not apply, and everything built on it."""
    if bad not in state.blocks:
        return state, ()
    at = state.blocks[bad].header.prev_hash
    dropped = _descendants(state, bad)
    blocks = {h: b for h, b in state.blocks.items() if h not in dropped}
    work = {h: w for h, w in state.work.items() if h not in dropped}
    state = replace(
        state,
        blocks=MappingProxyType(blocks),
        work=MappingProxyType(work),
        invalid=state.invalid | dropped,
        tip=at,
    )
    best = best_tip(state.work)
    if best == at:
        return state, ()
    return _move_tip(state, at, best, ctx)


def _descendants(state: PowState, ancestor: BlockHash) -> frozenset[BlockHash]:
    """``ancestor`` and every block above it."""
    children: dict[BlockHash, list[BlockHash]] = {}
    for h, b in state.blocks.items():
        children.setdefault(b.header.prev_hash, []).append(h)
    found, stack = {ancestor}, [ancestor]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.add(child)
            stack.append(child)
    return frozenset(found)


def _prune(state: PowState, ctx: PowContext) -> PowState:
    """Past twice ``keep_depth``, re-root the tree ``keep_depth`` below the tip."""
    if height_of(state, state.tip) - state.root_height <= 2 * ctx.keep_depth:
        return state
    root = state.tip
    for _ in range(ctx.keep_depth):
        root = state.blocks[root].header.prev_hash
    root_height = state.blocks[root].header.height
    kept = _descendants(state, root)
    return replace(
        state,
        root=root,
        root_height=root_height,
        blocks=MappingProxyType({h: b for h, b in state.blocks.items() if h in kept}),
        work=MappingProxyType({h: w for h, w in state.work.items() if h in kept}),
        orphans=MappingProxyType(
            {p: o for p, o in state.orphans.items() if o[0].header.height > root_height + 1}
        ),
    )


def _answer(state: PowState, msg: GetBlock, ctx: PowContext) -> tuple[PowOutput, ...]:
    """The asked-for block and up to ``sync_batch - 1`` of its ancestors."""
    out: list[PowOutput] = []
    cursor: BlockHash | None = msg.block_hash
    while cursor is not None and cursor in state.blocks and len(out) < ctx.sync_batch:
        out.append(Reply(msg.sender, BlockMsg(state.blocks[cursor])))
        cursor = parent_of(state, cursor)
    return tuple(out)


def _announce(state: PowState, ctx: PowContext) -> tuple[PowOutput, ...]:
    """On each tick: offer the tip, ask again for missing parents, re-arm the tick."""
    out: list[PowOutput] = []
    if state.tip in state.blocks:
        out.append(Gossip(BlockMsg(state.blocks[state.tip])))
    out.extend(Gossip(GetBlock(parent, ctx.me)) for parent in state.orphans)
    out.append(ScheduleTimeout(Tick(), ctx.tick_ms))
    return tuple(out)
