"""node.bft_driver.SignedLog: a restarted validator re-sends what it signed, never a second vote."""

from __future__ import annotations

from pathlib import Path

from ehrchain.consensus import bft
from ehrchain.consensus.bft_types import BftContext, Broadcast, Output
from ehrchain.consensus.messages import (
    Prevote,
    Start,
    TimeoutPropose,
    sign_precommit,
    sign_prevote,
)
from ehrchain.consensus.sim_bft import CHAIN_ID, SIM_TIMEOUTS, SimBlocks, sim_key
from ehrchain.core.address import address_from_public_key
from ehrchain.core.types import Address, BlockHash
from ehrchain.node.bft_driver import SignedLog

KEYS = [sim_key(11, i) for i in range(4)]
ADDRS = [address_from_public_key(k.public_key) for k in KEYS]
VALIDATORS = {a: k.public_key for a, k in zip(ADDRS, KEYS, strict=True)}
H = 1
ME = sorted(VALIDATORS)[(H + 2) % 4]
"""A validator that does not propose round 0 of height H."""
KEY = KEYS[ADDRS.index(ME)]
SOME_BLOCK = BlockHash(bytes([7]) * 32)


def context() -> BftContext:
    blocks = SimBlocks(ME, 0, invalid=False)
    return BftContext(CHAIN_ID, ME, KEY, blocks, lambda _h: VALIDATORS, SIM_TIMEOUTS)


def my_prevotes(out: tuple[Output, ...]) -> list[Prevote]:
    return [
        o.message
        for o in out
        if isinstance(o, Broadcast) and isinstance(o.message, Prevote) and o.message.signer == ME
    ]


def test_round_trip_per_height_with_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "signed.log"
    log = SignedLog(path)
    prevote = sign_prevote(KEY, Address(ME), CHAIN_ID, H, 0, SOME_BLOCK)
    precommit = sign_precommit(KEY, Address(ME), CHAIN_ID, H, 0, None)
    log.append(prevote)
    log.append(prevote)
    log.append(precommit)
    assert SignedLog(path).load(H) == [prevote, precommit]
    assert SignedLog(path).load(H + 1) == []

    with path.open("ab") as fh:
        fh.write((500).to_bytes(4, "big") + b"torn")
    assert SignedLog(path).load(H) == [prevote, precommit]

    later = sign_prevote(KEY, Address(ME), CHAIN_ID, H + 1, 0, None)
    log.append(later)
    assert SignedLog(path).load(H) == []
    assert SignedLog(path).load(H + 1) == [later]


def test_a_restarted_validator_resends_its_logged_vote(tmp_path: Path) -> None:
    ctx = context()
    before_crash = sign_prevote(KEY, Address(ME), CHAIN_ID, H, 0, SOME_BLOCK)
    log = SignedLog(tmp_path / "signed.log")
    log.append(before_crash)

    state = bft.initial_state(H, ctx)
    for mine in SignedLog(tmp_path / "signed.log").load(H):
        state, _ = bft.on_message(state, mine, ctx)
    state, started = bft.on_message(state, Start(), ctx)
    _, timed_out = bft.on_message(state, TimeoutPropose(H, 0), ctx)
    assert my_prevotes(started + timed_out) == [before_crash]

    # Without the log the same restart signs a nil prevote: a second, conflicting vote.
    fresh, started = bft.on_message(bft.initial_state(H, ctx), Start(), ctx)
    _, timed_out = bft.on_message(fresh, TimeoutPropose(H, 0), ctx)
    assert [v.block_hash for v in my_prevotes(started + timed_out)] == [None]
