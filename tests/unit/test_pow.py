"""Proof of work: targets, nonce search, seals, fork choice, reorg plans and the block tree."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ehrchain.consensus import pow_chain
from ehrchain.consensus.errors import InsufficientWork, InvalidCertificate, NotAValidator
from ehrchain.consensus.messages import Tick
from ehrchain.consensus.pow import (
    NoCommonAncestor,
    best_tip,
    block_work,
    check_seal,
    check_work,
    leading_zero_bits,
    meets_target,
    mine,
    reorg_plan,
    seal,
)
from ehrchain.consensus.pow_chain import (
    BlockMsg,
    Extend,
    GetBlock,
    Gossip,
    Invalid,
    PowContext,
    PowOutput,
    Reorg,
    Reply,
    ReturnToPool,
)
from ehrchain.consensus.sim_bft import CHAIN_ID, sim_key
from ehrchain.consensus.sim_pow import sim_transactions, state_root
from ehrchain.core import block as blockmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.encoding import tagged_hash
from ehrchain.core.tx import Transaction
from ehrchain.core.types import BlockHash, ChainId

TARGET = 3
KEYS = [sim_key(11, i) for i in range(3)]
ADDRS = [address_from_public_key(k.public_key) for k in KEYS]
VALIDATORS = {ADDRS[0]: KEYS[0].public_key, ADDRS[1]: KEYS[1].public_key}
"""KEYS[2] is an outsider."""
GENESIS = BlockHash(tagged_hash("ehrchain/test-genesis/v1", []))
CTX = PowContext(CHAIN_ID, ADDRS[0], TARGET, lambda h: VALIDATORS)
TXS = sim_transactions()


def make_block(
    parent: BlockHash,
    height: int,
    txs: tuple[Transaction, ...] = (),
    *,
    miner: int = 0,
    salt: int = 0,
    target: int = TARGET,
) -> blockmod.Block:
    header = blockmod.BlockHeader(
        magic=blockmod.MAGIC,
        version=blockmod.VERSION,
        chain_id=CHAIN_ID,
        size=blockmod.tx_list_size(txs),
        tx_count=len(txs),
        height=height,
        prev_hash=parent,
        tx_root=blockmod.tx_root(txs),
        timestamp_ms=salt,
        target=0,
        nonce=0,
        state_root=state_root(parent, height),
        proposer=ADDRS[miner],
    )
    mined = mine(header, target, 0, 1 << 16)
    assert mined is not None
    return seal(blockmod.Block(mined, txs), KEYS[miner], ADDRS[miner])


def chain_of(length: int, *, parent: BlockHash = GENESIS, start: int = 1, salt: int = 0,
             txs: tuple[Transaction, ...] = ()) -> list[blockmod.Block]:  # fmt: skip
    blocks = []
    for height in range(start, start + length):
        block = make_block(parent, height, txs if height == start else (), salt=salt)
        blocks.append(block)
        parent = block.hash
    return blocks


def reseal(block: blockmod.Block, **changes: object) -> blockmod.Block:
    """The block with header fields changed, mined again if ``nonce`` is not given."""
    header = replace(block.header, **changes)  # type: ignore[arg-type]
    if "nonce" not in changes:
        mined = mine(header, TARGET, 0, 1 << 16)
        assert mined is not None
        header = mined
    return seal(replace(block, header=header), KEYS[0], ADDRS[0])


def unmined_nonce(header: blockmod.BlockHeader) -> int:
    return next(n for n in range(1000) if not meets_target(replace(header, nonce=n).hash, TARGET))


def feed(
    state: pow_chain.PowState, *blocks: blockmod.Block, ctx: PowContext = CTX
) -> tuple[pow_chain.PowState, list[PowOutput]]:
    out: list[PowOutput] = []
    for block in blocks:
        state, more = pow_chain.on_message(state, BlockMsg(block), ctx)
        out.extend(more)
    return state, out


def test_leading_zero_bits_counts_from_the_most_significant_bit() -> None:
    assert leading_zero_bits(bytes(32)) == 256
    assert leading_zero_bits(b"\x00\x0f" + b"\xff" * 30) == 12
    assert leading_zero_bits(b"\x80" + bytes(31)) == 0
    assert meets_target(b"\x00\x0f" + b"\xff" * 30, 12)
    assert not meets_target(b"\x00\x0f" + b"\xff" * 30, 13)
    assert meets_target(b"\xff" * 32, 0)


def test_mine_finds_a_nonce_meeting_the_target_and_changes_nothing_else() -> None:
    header = make_block(GENESIS, 1).header
    found = mine(replace(header, nonce=0, target=0), 8, 0, 1 << 14)
    assert found is not None
    assert meets_target(found.hash, 8)
    assert found.target == 8
    assert replace(found, nonce=0) == replace(header, nonce=0, target=8)


def test_mine_searches_only_its_range_and_resumes_where_it_stopped() -> None:
    header = replace(make_block(GENESIS, 1).header, nonce=0, target=0)
    first = mine(header, 10, 0, 1 << 14)
    assert first is not None
    assert mine(header, 10, 0, first.nonce) is None
    again = mine(header, 10, first.nonce, 1)
    assert again == first


def test_block_work_doubles_per_bit() -> None:
    assert [block_work(b) for b in (0, 1, 5)] == [1, 2, 32]


def test_best_tip_is_most_work_then_lowest_hash() -> None:
    a, b, c = BlockHash(b"\x01" * 32), BlockHash(b"\x02" * 32), BlockHash(b"\x03" * 32)
    assert best_tip({a: 5, b: 9, c: 7}) == b
    assert best_tip({c: 9, b: 9, a: 1}) == b
    with pytest.raises(ValueError, match="no blocks"):
        best_tip({})


def test_reorg_plan_undoes_to_the_common_ancestor_and_applies_the_new_branch() -> None:
    names = ["G", "A1", "A2", "A3", "B2", "B3", "B4"]
    h = {n: BlockHash(n.encode().ljust(32, b"\0")) for n in names}
    parents = {"A1": "G", "A2": "A1", "A3": "A2", "B2": "A1", "B3": "B2", "B4": "B3"}

    def parent_of(x: BlockHash) -> BlockHash | None:
        name = next(n for n in names if h[n] == x)
        return h[parents[name]] if name in parents else None

    def plan(old: str, new: str) -> tuple[list[BlockHash], list[BlockHash]]:
        return reorg_plan(h[old], h[new], parent_of)

    assert plan("A3", "B4") == ([h["A3"], h["A2"]], [h["B2"], h["B3"], h["B4"]])
    assert plan("B4", "A3") == ([h["B4"], h["B3"], h["B2"]], [h["A2"], h["A3"]])
    assert plan("A3", "A3") == ([], [])
    assert plan("A1", "A3") == ([], [h["A2"], h["A3"]])
    assert plan("A3", "A1") == ([h["A3"], h["A2"]], [])
    assert plan("G", "B3") == ([], [h["A1"], h["B2"], h["B3"]])
    stranger = BlockHash(b"\x99" * 32)
    with pytest.raises(NoCommonAncestor):
        reorg_plan(h["A3"], stranger, lambda x: parent_of(x) if x != stranger else None)


def test_only_a_validator_can_seal_and_only_its_own_signature_counts() -> None:
    block = make_block(GENESIS, 1)
    check_seal(block, VALIDATORS)
    outsider = make_block(GENESIS, 1, miner=2)
    with pytest.raises(NotAValidator):
        check_seal(outsider, VALIDATORS)
    stolen = replace(block, certificate=make_block(GENESIS, 1, miner=1).certificate)
    with pytest.raises(InvalidCertificate):
        check_seal(stolen, VALIDATORS)
    resealed_by_other = seal(block, KEYS[1], ADDRS[0])
    with pytest.raises(InvalidCertificate):
        check_seal(resealed_by_other, VALIDATORS)


def test_a_block_on_the_tip_extends_it_and_is_gossiped() -> None:
    state = pow_chain.initial_state(GENESIS)
    [b1] = chain_of(1)
    state, out = feed(state, b1)
    assert out == [Extend(b1), Gossip(BlockMsg(b1))]
    assert state.tip == b1.hash
    assert state.work[b1.hash] == block_work(TARGET)


@pytest.mark.parametrize(
    "broken",
    [
        "outsider",
        "too_little_work",
        "not_mined",
        "other_chain",
        "wrong_height",
        "bad_body",
        "unsealed",
    ],
)
def test_blocks_that_fail_a_check_are_ignored(broken: str) -> None:
    state = pow_chain.initial_state(GENESIS)
    good = make_block(GENESIS, 1)
    block = {
        "outsider": make_block(GENESIS, 1, miner=2),
        "too_little_work": make_block(GENESIS, 1, target=TARGET - 1),
        "not_mined": reseal(good, nonce=unmined_nonce(good.header)),
        "other_chain": reseal(good, chain_id=ChainId("other")),
        "wrong_height": make_block(GENESIS, 2),
        "bad_body": replace(good, txs=TXS[:1]),
        "unsealed": replace(good, certificate=blockmod.EMPTY_CERTIFICATE),
    }[broken]
    reason = {
        "outsider": "not a validator",
        "too_little_work": "target",
        "not_mined": "does not meet its target",
        "other_chain": "for chain",
        "wrong_height": None,  # contextual: only wrong against its parent
        "bad_body": "does not match",
        "unsealed": "needed",
    }[broken]
    error = pow_chain.block_error(block, CTX)
    assert error is None if reason is None else reason in str(error)
    after, out = feed(state, block)
    assert after.tip == GENESIS
    assert not [o for o in out if isinstance(o, Extend | Reorg)]


def test_a_heavier_fork_reorganises_and_returns_orphaned_transactions() -> None:
    x, y = chain_of(2, txs=TXS[:2]), chain_of(2, salt=1, txs=TXS[1:4])
    a, b = (x, y) if x[1].hash < y[1].hash else (y, x)  # a wins the tie at height 2
    state, _ = feed(pow_chain.initial_state(GENESIS), *a, *b)
    assert state.tip == a[1].hash
    b3 = make_block(b[1].hash, 3)
    state, out = feed(state, b3)
    assert state.tip == b3.hash
    assert out[0] == Reorg((a[1].hash, a[0].hash), (*b, b3))
    assert out[1] == ReturnToPool(tuple(t.tx_id for t in a[0].txs))
    assert out[2] == Gossip(BlockMsg(b3))


def test_a_reorg_always_undoes_the_lighter_branch() -> None:
    state = pow_chain.initial_state(GENESIS)
    a = chain_of(2, txs=TXS[:1])
    b = chain_of(3, salt=2)
    state, _ = feed(state, *a)
    state, out = feed(state, *b)
    reorgs = [o for o in out if isinstance(o, Reorg)]
    assert len(reorgs) == 1
    assert set(reorgs[0].undo) <= {a[0].hash, a[1].hash}
    assert pow_chain.best_chain(state) == tuple(x.hash for x in b)


def test_an_orphan_waits_for_its_parent_which_is_asked_for() -> None:
    state = pow_chain.initial_state(GENESIS)
    b1, b2, b3 = chain_of(3)
    state, out = feed(state, b3)
    assert out == [Gossip(GetBlock(b2.hash, ADDRS[0]))]
    state, out = feed(state, b2)
    assert state.tip == GENESIS
    state, out = feed(state, b1)
    assert [o for o in out if isinstance(o, Extend)] == [Extend(b1), Extend(b2), Extend(b3)]
    assert state.orphans == {}


def test_get_block_is_answered_with_the_block_and_its_ancestors() -> None:
    state, _ = feed(pow_chain.initial_state(GENESIS), *chain_of(4))
    chain = pow_chain.best_chain(state)
    ctx = replace(CTX, sync_batch=3)
    _, out = pow_chain.on_message(state, GetBlock(chain[-1], ADDRS[1]), ctx)
    answered = [o.message for o in out if isinstance(o, Reply)]
    assert [m.block.hash for m in answered if isinstance(m, BlockMsg)] == list(reversed(chain[1:]))
    assert len(answered) == 3
    _, out = pow_chain.on_message(state, GetBlock(BlockHash(bytes(32)), ADDRS[1]), ctx)
    assert out == ()


def test_a_block_the_node_cannot_apply_is_dropped_with_its_descendants() -> None:
    state = pow_chain.initial_state(GENESIS)
    a = chain_of(3, txs=TXS[:1])
    b = chain_of(2, salt=3)
    state, _ = feed(state, *a, *b)
    assert state.tip == a[2].hash
    state, out = pow_chain.on_message(state, Invalid(a[1].hash), CTX)
    assert a[1].hash not in state.blocks
    assert a[2].hash not in state.blocks
    assert state.tip == b[1].hash
    [reorg] = [o for o in out if isinstance(o, Reorg)]
    assert reorg.undo == (a[0].hash,)
    assert reorg.apply == tuple(b)
    again, more = feed(state, a[2])
    assert (again.tip, more) == (state.tip, [])


def test_tick_offers_the_tip_and_asks_again_for_missing_parents() -> None:
    state = pow_chain.initial_state(GENESIS)
    b1, b2 = chain_of(2)
    state, _ = feed(state, b2)
    _, out = pow_chain.on_message(state, Tick(), CTX)
    assert Gossip(GetBlock(b1.hash, ADDRS[0])) in out
    state, _ = feed(state, b1)
    _, out = pow_chain.on_message(state, Tick(), CTX)
    assert out[0] == Gossip(BlockMsg(b2))


def test_the_tree_is_pruned_below_the_keep_depth() -> None:
    ctx = replace(CTX, keep_depth=2)
    state = pow_chain.initial_state(GENESIS)
    blocks = chain_of(7)
    side = make_block(blocks[0].hash, 2, salt=5)
    state, _ = feed(state, blocks[0], side, *blocks[1:], ctx=ctx)
    assert state.tip == blocks[-1].hash
    assert state.root_height >= 2
    assert side.hash not in state.blocks
    assert len(state.blocks) <= 2 * ctx.keep_depth + 1
    assert pow_chain.best_chain(state)[-1] == blocks[-1].hash
    stale, out = feed(state, make_block(GENESIS, 1, salt=9), ctx=ctx)
    assert (stale, out) == (state, [])


def test_check_work_holds_a_header_to_the_chains_own_target() -> None:
    block = make_block(GENESIS, 1)
    check_work(block.header, TARGET)
    with pytest.raises(InsufficientWork, match="not the chain's"):
        check_work(make_block(GENESIS, 1, target=TARGET - 1).header, TARGET)
    with pytest.raises(InsufficientWork, match="not the chain's"):
        check_work(block.header, TARGET + 1)  # more claimed work is not more weight either
    unmined = replace(block.header, nonce=unmined_nonce(block.header))
    with pytest.raises(InsufficientWork, match="does not meet its target"):
        check_work(unmined, TARGET)


def test_a_restarted_tree_holds_the_committed_chain_with_its_work() -> None:
    chain = chain_of(3)
    state = pow_chain.state_from_chain(GENESIS, 0, chain)
    assert state.tip == chain[-1].hash
    assert pow_chain.best_chain(state) == tuple(b.hash for b in chain)
    assert state.work[chain[-1].hash] == 3 * block_work(TARGET)
    above = pow_chain.state_from_chain(chain[0].hash, 1, chain[1:])
    assert above.work[chain[-1].hash] == 2 * block_work(TARGET)
    assert pow_chain.state_from_chain(GENESIS, 0, []) == pow_chain.initial_state(GENESIS)
    with pytest.raises(ValueError, match="does not extend"):
        pow_chain.state_from_chain(GENESIS, 0, chain[1:])
    # A competing branch from the restart point is still followed by work.
    fork = chain_of(4, salt=7)
    state, out = feed(state, *fork)
    assert state.tip == fork[-1].hash
    assert any(isinstance(o, Reorg) for o in out)
