"""Permissioned PoW in the seeded network simulator: forks resolve to the heaviest chain.

Every run is fixed by its seed. Miners stop at ``MINE_MS``; faults stop by then
too, and ``SETTLE_MS`` later every honest node must be on the same tip, with a
ledger that is exactly its best chain (so every reorganisation rolled state
back and forth correctly), and with every transaction either in that chain once
or back in the pool.
"""

from __future__ import annotations

import random

import pytest

from ehrchain.consensus import pow_chain
from ehrchain.consensus.pow import best_tip
from ehrchain.consensus.simulator import (
    Faults,
    Miner,
    Partition,
    PowRun,
    convergence_errors,
    ledger_errors,
    random_faults,
    run_pow,
)
from ehrchain.core.types import BlockHash

SEEDS = (2, 7, 13, 19, 24, 31, 36, 42, 45, 53, 57, 64, 69, 75, 80, 86, 93, 98, 104, 111,
         119, 126, 133, 140)  # fmt: skip
MINE_MS = 1000
SETTLE_MS = 2500


def check(run: PowRun) -> None:
    assert convergence_errors(run) == [], run.seed
    assert ledger_errors(run) == [], run.seed
    union: dict[BlockHash, int] = {}
    for node in run.honest:
        union.update(run.states[node].work)
    assert run.states[run.honest[0]].tip == best_tip(union), run.seed


def random_run(seed: int) -> PowRun:
    rng = random.Random(seed)
    faults = random_faults(rng, 4, MINE_MS)
    cheat = {3: rng.choice(list(Miner))}
    return run_pow(seed, 4, faults, MINE_MS + SETTLE_MS, mine_until_ms=MINE_MS, byzantine=cheat)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_converge_on_the_heaviest_valid_chain(seed: int) -> None:
    run = random_run(seed)
    check(run)
    assert pow_chain.height_of(run.states[0], run.states[0].tip) > 0


def test_a_healed_partition_reorganises_one_side_and_returns_its_transactions() -> None:
    split = Partition(0, MINE_MS, (frozenset({0, 1}), frozenset({2, 3})))
    runs = [
        run_pow(seed, 4, Faults(partitions=(split,)), MINE_MS + SETTLE_MS, mine_until_ms=MINE_MS)
        for seed in (1, 2, 3)
    ]
    for run in runs:
        check(run)
        assert max(run.reorgs.values()) > 0
        losers = [n for n, count in run.reorgs.items() if count > 0]
        assert any(run.returned[n] > 0 for n in losers)
        deepest = max(
            int(what.split()[1][1:]) for _, _, what in run.trace if what.startswith("reorg")
        )
        assert deepest >= 2


def test_blocks_sealed_by_a_non_validator_are_never_accepted() -> None:
    run = run_pow(
        5, 4, Faults(), MINE_MS + SETTLE_MS, mine_until_ms=MINE_MS, byzantine={3: Miner.OUTSIDER}
    )
    check(run)
    outsider = run.addresses[3]
    assert any(who == "node 3" and what.startswith("mined") for _, who, what in run.trace)
    for node in run.honest:
        assert all(b.header.proposer != outsider for b in run.states[node].blocks.values())


def test_blocks_that_fail_to_apply_are_reported_and_abandoned() -> None:
    reported = 0
    for seed in (1, 2, 3, 4):
        run = run_pow(
            seed,
            4,
            Faults(delay_ms=(1, 40)),
            MINE_MS + SETTLE_MS,
            mine_until_ms=MINE_MS,
            byzantine={2: Miner.INVALID_BLOCKS},
        )
        check(run)
        cheat = run.addresses[2]
        for node in run.honest:
            assert all(b.header.proposer != cheat for b in run.ledgers[node])
        reported += sum(what.startswith("invalid") for _, _, what in run.trace)
    assert reported > 0


def test_a_seed_replays_exactly() -> None:
    first, second = random_run(42), random_run(42)
    assert first.trace == second.trace
    assert first.ledgers == second.ledgers
    assert first.stats == second.stats


@pytest.mark.slow
def test_two_thousand_seeded_runs() -> None:
    for seed in range(20_000, 22_000):
        check(random_run(seed))
