"""The proof-of-work engine: what a node checks of every block, and how its miner seals one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ehrchain.consensus.base import SealingLimits
from ehrchain.consensus.errors import (
    InsufficientWork,
    InvalidCertificate,
    NotAValidator,
)
from ehrchain.consensus.pow import meets_target, mine
from ehrchain.consensus.pow_engine import PowEngine
from ehrchain.consensus.sim_bft import CHAIN_ID, sim_key
from ehrchain.core import block as blockmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.types import Address, BlockHash

TARGET = 6
KEYS = [sim_key(21, i) for i in range(3)]
ADDRS = [address_from_public_key(k.public_key) for k in KEYS]
VALIDATORS = {ADDRS[0]: KEYS[0].public_key, ADDRS[1]: KEYS[1].public_key}
LIMITS = SealingLimits(max_txs=10, max_bytes=10_000, max_wait_ms=100)
ENGINES = [PowEngine(KEYS[i], ADDRS[i], LIMITS, TARGET) for i in range(3)]
"""ENGINES[2] is an outsider's."""


def header_by(miner: int, *, target: int = TARGET) -> blockmod.BlockHeader:
    header = blockmod.header_for(
        chain_id=CHAIN_ID,
        height=1,
        prev_hash=BlockHash(bytes(32)),
        txs=(),
        timestamp_ms=1,
        state_root=bytes(32),
        proposer=ADDRS[miner],
    )
    mined = mine(header, target, 0, 1 << 16)
    assert mined is not None
    return mined


def test_a_mined_header_sealed_by_its_miner_is_final_for_every_node() -> None:
    header = header_by(1)
    cert = ENGINES[1].certify(header)
    for engine in ENGINES:
        engine.check(header, cert, VALIDATORS)


def test_a_miner_seals_only_its_own_headers() -> None:
    with pytest.raises(NotAValidator):
        ENGINES[0].certify(header_by(1))


def test_check_refuses_missing_work_foreign_seals_and_outside_miners() -> None:
    header = header_by(0)
    cert = ENGINES[0].certify(header)
    unmined = replace(
        header,
        nonce=next(
            n for n in range(999) if not meets_target(replace(header, nonce=n).hash, TARGET)
        ),
    )
    easier = header_by(0, target=2)
    outsider = header_by(2)
    with pytest.raises(InsufficientWork):
        ENGINES[1].check(unmined, ENGINES[0].certify(unmined), VALIDATORS)
    with pytest.raises(InsufficientWork):
        ENGINES[1].check(easier, ENGINES[0].certify(easier), VALIDATORS)
    with pytest.raises(NotAValidator):
        ENGINES[1].check(outsider, ENGINES[2].certify(outsider), VALIDATORS)
    with pytest.raises(InvalidCertificate):
        ENGINES[1].check(header, ENGINES[1].certify(replace(header, proposer=ADDRS[1])), VALIDATORS)
    with pytest.raises(InvalidCertificate):
        ENGINES[1].check(header, blockmod.EMPTY_CERTIFICATE, VALIDATORS)
    ENGINES[1].check(header, cert, VALIDATORS)


def test_mining_starts_when_the_pool_is_due_or_forced_and_never_when_empty() -> None:
    engine = ENGINES[0]
    assert not engine.seal_decision(0, 0, None, 1_000, True)
    assert engine.seal_decision(1, 10, 1_000, 1_000, True)
    assert not engine.seal_decision(1, 10, 1_000, 1_050, False)
    assert engine.seal_decision(1, 10, 1_000, 1_100, False)
    assert engine.name == "pow"


@pytest.mark.parametrize("target", [0, 65, True])
def test_an_unworkable_target_is_refused(target: int) -> None:
    with pytest.raises(ValueError, match="target"):
        PowEngine(KEYS[0], Address(ADDRS[0]), LIMITS, target)
