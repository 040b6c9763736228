"""BFT in the seeded network simulator: safety always, liveness once faults stop.

Every run is fixed by its seed (listed here), so a failure names a run that
replays exactly. Safety: no two honest nodes decide different blocks at a
height, and every decided block carries a certificate that
``certificate.check_certificate`` accepts for that height's validators.
Liveness: after the last fault every honest node decides ``AFTER`` more heights
within ``WINDOW_MS`` of virtual time, with f Byzantine validators still active.
"""

from __future__ import annotations

import random

import pytest

from ehrchain.consensus.evidence import check_evidence
from ehrchain.consensus.simulator import (
    BYZANTINE,
    Behaviour,
    BftRun,
    Crash,
    Faults,
    Partition,
    certificate_errors,
    chain_errors,
    random_faults,
    run_bft,
    safety_violations,
)

SEEDS_N4 = (3, 8, 14, 21, 29, 33, 40, 47, 52, 58, 61, 66, 70, 77, 85, 91, 96, 102, 109, 117,
            123, 131, 138, 144, 150, 163, 171, 188, 194, 199)  # fmt: skip
SEEDS_N7 = (5, 17, 26, 38, 49, 64, 73, 88)
HORIZON_MS = 1000
"""Random faults happen in the first second; the network is stable after."""
AFTER = 3
WINDOW_MS = 6000


def check_safe(run: BftRun) -> None:
    assert safety_violations(run) == [], run.seed
    assert certificate_errors(run) == [], run.seed
    assert chain_errors(run) == [], run.seed


def decided_after(run: BftRun, node: int, time_ms: int) -> int:
    return sum(d.time_ms > time_ms for d in run.chains[node])


def check_live(run: BftRun) -> None:
    late = {n: decided_after(run, n, run.quiet_ms) for n in run.honest}
    assert min(late.values()) >= AFTER, (run.seed, late)


def random_run(seed: int, n: int, f: int) -> BftRun:
    faults = random_faults(random.Random(seed), n, HORIZON_MS)
    return run_bft(seed, n, f, faults, faults.quiet_ms + WINDOW_MS, settle_heights=AFTER)


@pytest.mark.parametrize("seed", SEEDS_N4)
def test_four_validators_one_byzantine_random_faults(seed: int) -> None:
    run = random_run(seed, 4, 1)
    check_safe(run)
    check_live(run)


@pytest.mark.parametrize("seed", SEEDS_N7)
def test_seven_validators_two_byzantine_random_faults(seed: int) -> None:
    run = random_run(seed, 7, 2)
    check_safe(run)
    check_live(run)


@pytest.mark.parametrize("behaviour", BYZANTINE, ids=lambda b: b.value)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_byzantine_behaviour_under_lossy_links(behaviour: Behaviour, seed: int) -> None:
    faults = Faults(drop=0.3, duplicate=0.2, delay_ms=(1, 40), reorder=0.2, stable_after_ms=1500)
    run = run_bft(seed, 4, 1, faults, 1500 + WINDOW_MS, behaviour=behaviour, settle_heights=AFTER)
    assert set(run.behaviours.values()) == {Behaviour.HONEST, behaviour}
    check_safe(run)
    check_live(run)


def test_split_brain_double_signing_is_caught_with_evidence_anyone_can_check() -> None:
    runs = [
        run_bft(seed, 4, 1, Faults(), 3000, behaviour=Behaviour.SPLIT_BRAIN) for seed in range(6)
    ]
    found = 0
    for run in runs:
        check_safe(run)
        [cheat] = [n for n, b in run.behaviours.items() if b is Behaviour.SPLIT_BRAIN]
        for node in run.honest:
            for evidence in run.evidence[node]:
                check_evidence(evidence, run.validators_at(evidence.height))
                assert evidence.offender == run.addresses[cheat]
                found += 1
    assert found > 0


def test_honest_nodes_record_no_evidence_against_each_other() -> None:
    run = run_bft(4, 4, 0, Faults(drop=0.3, duplicate=0.3, reorder=0.3, stable_after_ms=2000), 3000)
    check_safe(run)
    assert all(evidence == () for evidence in run.evidence.values())


def test_the_checker_catches_forks_when_byzantine_validators_exceed_f() -> None:
    """Two split-brain validators of four (f + 1) bridge a partition of the honest two:
    each honest node sees a quorum on its side, so they decide different blocks."""
    bridge = Partition(0, 3000, (frozenset({0, 1, 2}), frozenset({0, 1, 3})))
    run = run_bft(
        1,
        4,
        2,
        Faults(partitions=(bridge,)),
        3000,
        behaviour=Behaviour.SPLIT_BRAIN,
        byzantine_nodes=(0, 1),
    )
    assert run.honest == (2, 3)
    assert safety_violations(run) != []


def test_no_side_of_an_even_split_decides_until_the_partition_heals() -> None:
    split = Partition(500, 2500, (frozenset({0, 1}), frozenset({2, 3})))
    run = run_bft(9, 4, 0, Faults(partitions=(split,)), 2500 + WINDOW_MS, settle_heights=AFTER)
    check_safe(run)
    check_live(run)
    in_flight_ms = 20 + 300  # the longest delay plus a tick: decisions already under way
    for node in run.honest:
        assert all(
            not split.start_ms + in_flight_ms < d.time_ms < split.end_ms for d in run.chains[node]
        )


def test_a_crashed_node_catches_up_after_it_restarts() -> None:
    crash = Crash(2, 300, 2000)
    run = run_bft(5, 4, 0, Faults(crashes=(crash,)), 3000)
    check_safe(run)
    assert "node 2" in {who for _, who, what in run.trace if what == "restart"}
    missed = [d for d in run.chains[0] if crash.start_ms < d.time_ms < crash.end_ms]
    assert len(missed) > 5
    assert run.chains[0][-1].height - run.chains[2][-1].height <= 1


def test_validator_set_change_takes_effect_at_its_height() -> None:
    schedule = ((1, frozenset({0, 1, 2, 3})), (4, frozenset({1, 2, 3, 4})))
    run = run_bft(
        6,
        5,
        1,
        Faults(drop=0.1, stable_after_ms=500),
        4000,
        behaviour=Behaviour.SILENT,
        byzantine_nodes=(2,),
        schedule=schedule,
    )
    check_safe(run)
    chain = run.chains[1]
    assert chain[-1].height >= 6
    for d in chain:
        signers = {v.validator for v in d.certificate.votes}
        assert signers <= set(run.validators_at(d.height))
        if d.height >= 4:
            assert run.addresses[0] not in signers
            assert run.addresses[4] in signers  # needed: 1, 3, 4 are the only live ones
    assert [d.block_hash for d in run.chains[4]] == [d.block_hash for d in chain][
        : len(run.chains[4])
    ]


def test_a_seed_replays_exactly() -> None:
    faults = random_faults(random.Random(77), 4, HORIZON_MS)
    first = run_bft(77, 4, 1, faults, 3000)
    second = run_bft(77, 4, 1, faults, 3000)
    assert first.trace == second.trace
    assert first.chains == second.chains
    assert first.stats == second.stats


@pytest.mark.slow
def test_two_thousand_seeded_runs_four_validators() -> None:
    for seed in range(10_000, 12_000):
        run = random_run(seed, 4, 1)
        check_safe(run)
        check_live(run)
