"""The solo engine: BFT with one validator, sealing decisions and its own certificates."""

from __future__ import annotations

import dataclasses

import pytest

from ehrchain.consensus.base import (
    Committed,
    CommitVote,
    Engine,
    Proposal,
    Replica,
    SealingLimits,
)
from ehrchain.consensus.certificate import check_certificate
from ehrchain.consensus.errors import InvalidCertificate, InvalidLimits, NotAValidator
from ehrchain.consensus.solo import SoloEngine, SoloState
from ehrchain.core import merkle
from ehrchain.core.address import address_from_public_key
from ehrchain.core.block import (
    GENESIS_PARENT,
    MAGIC,
    VERSION,
    Block,
    BlockHeader,
    CommitCertificate,
    block_from_bytes,
)
from ehrchain.core.errors import InvalidAddress
from ehrchain.core.types import Address, ChainId
from ehrchain.crypto.signing import SigningKey

CHAIN = "ehrchain-test"
KEY = SigningKey(b"\x07" * 32)
VALIDATOR = address_from_public_key(KEY.public_key)
OTHER_KEY = SigningKey(b"\x08" * 32)
OTHER = address_from_public_key(OTHER_KEY.public_key)
LIMITS = SealingLimits(max_txs=100, max_bytes=10_000, max_wait_ms=200)
ENGINE = SoloEngine(KEY, VALIDATOR, LIMITS)
VALIDATORS = {VALIDATOR: KEY.public_key}


def header(height: int = 1, proposer: Address = VALIDATOR) -> BlockHeader:
    return BlockHeader(
        magic=MAGIC,
        version=VERSION,
        chain_id=ChainId(CHAIN),
        size=0,
        tx_count=0,
        height=height,
        prev_hash=GENESIS_PARENT,
        tx_root=merkle.EMPTY_ROOT,
        timestamp_ms=1_700_000_000_000,
        target=0,
        nonce=0,
        state_root=bytes(32),
        proposer=proposer,
    )


def test_solo_engine_satisfies_the_engine_and_replica_protocols() -> None:
    engine: Engine = ENGINE
    replica: Replica[SoloState] = ENGINE
    assert engine.name == "solo"
    assert engine.limits == LIMITS
    assert replica.on_message(SoloState(5), Proposal(0, header(4))) == (SoloState(5), ())


@pytest.mark.parametrize(
    ("count", "size", "oldest", "now", "forced", "seal"),
    [
        (0, 0, None, 1_000, True, False),  # forced, but nothing to seal
        (0, 0, None, 1_000, False, False),
        (1, 50, 999, 1_000, True, True),  # forced: /mine
        (1, 50, 999, 1_000, False, False),  # waited 1 ms of 200
        (1, 50, 800, 1_000, False, True),  # waited exactly max_wait_ms
        (1, 50, 801, 1_000, False, False),
        (100, 50, 999, 1_000, False, True),  # full by count
        (99, 50, 999, 1_000, False, False),
        (3, 10_000, 999, 1_000, False, True),  # full by bytes
        (3, 9_999, 999, 1_000, False, False),
        (3, 50, 5_000, 1_000, False, False),  # clock stepped back: no wait
    ],
)
def test_seal_decision(
    count: int, size: int, oldest: int | None, now: int, forced: bool, seal: bool
) -> None:
    assert ENGINE.seal_decision(count, size, oldest, now, forced) is seal


def test_zero_wait_seals_anything_pending() -> None:
    eager = SoloEngine(KEY, VALIDATOR, SealingLimits(100, 10_000, 0))
    assert eager.seal_decision(1, 1, 1_000, 1_000, False)
    assert not eager.seal_decision(0, 0, None, 1_000, False)


def test_pending_pool_needs_its_oldest_arrival_time() -> None:
    with pytest.raises(ValueError, match="arrival time"):
        ENGINE.seal_decision(1, 50, None, 1_000, False)
    assert ENGINE.seal_decision(100, 50, None, 1_000, False)


@pytest.mark.parametrize(
    "limits",
    [(0, 1, 0), (1, 0, 0), (1, 1, -1), (True, 1, 0), (1, 1.5, 0)],
)
def test_sealing_limits_rejects_unworkable_values(limits: tuple[int, int, int]) -> None:
    with pytest.raises(InvalidLimits):
        SealingLimits(*limits)


def test_engine_rejects_a_malformed_validator_address() -> None:
    with pytest.raises(InvalidAddress):
        SoloEngine(KEY, Address("ehr1notanaddress"), LIMITS)


def test_certify_signs_the_one_vote_quorum() -> None:
    h = header()
    cert = ENGINE.certify(h)
    assert cert.round == 0
    assert [v.validator for v in cert.votes] == [VALIDATOR]
    ENGINE.check(h, cert, VALIDATORS)
    check_certificate(h, cert, VALIDATORS)


def test_certify_refuses_another_proposers_block() -> None:
    with pytest.raises(NotAValidator, match="proposed by"):
        ENGINE.certify(header(proposer=OTHER))


def test_check_rejects_a_proposer_outside_the_validator_set() -> None:
    other_engine = SoloEngine(OTHER_KEY, OTHER, LIMITS)
    h = header(proposer=OTHER)
    with pytest.raises(NotAValidator, match="not a validator"):
        ENGINE.check(h, other_engine.certify(h), VALIDATORS)


def test_check_rejects_a_certificate_for_another_block() -> None:
    h = header()
    cert = ENGINE.certify(h)
    with pytest.raises(InvalidCertificate, match="does not sign"):
        ENGINE.check(dataclasses.replace(h, state_root=b"\x01" * 32), cert, VALIDATORS)
    with pytest.raises(InvalidCertificate, match="does not sign"):
        ENGINE.check(header(height=2), cert, VALIDATORS)


def test_check_rejects_an_empty_certificate() -> None:
    with pytest.raises(InvalidCertificate, match="0 of 1"):
        ENGINE.check(header(), CommitCertificate(0, ()), VALIDATORS)


def test_check_rejects_a_vote_under_a_rotated_key() -> None:
    h = header()
    with pytest.raises(InvalidCertificate, match="does not sign"):
        ENGINE.check(h, ENGINE.certify(h), {VALIDATOR: OTHER_KEY.public_key})


def test_one_vote_is_not_enough_once_a_second_validator_joins() -> None:
    h = header()
    validators = {**VALIDATORS, OTHER: OTHER_KEY.public_key}
    with pytest.raises(InvalidCertificate, match=r"1 of 2 validators voted .* 2 needed"):
        ENGINE.check(h, ENGINE.certify(h), validators)


def test_sealed_block_round_trips_and_still_checks() -> None:
    h = header()
    block = Block(h, (), ENGINE.certify(h))
    decoded = block_from_bytes(block.to_bytes())
    assert decoded == block
    ENGINE.check(decoded.header, decoded.certificate, VALIDATORS)


def test_on_message_commits_its_own_proposal_for_the_next_height() -> None:
    h = header(height=3)
    state, outbox = ENGINE.on_message(SoloState(3), Proposal(0, h))
    assert state == SoloState(4)
    assert len(outbox) == 1
    event = outbox[0]
    assert isinstance(event, Committed)
    assert event.header == h
    ENGINE.check(event.header, event.certificate, VALIDATORS)


def test_on_message_ignores_stale_foreign_and_vote_messages() -> None:
    state = SoloState(3)
    h = header(height=3)
    vote = ENGINE.certify(h).votes[0]
    for msg in (
        Proposal(0, header(height=2)),
        Proposal(0, header(height=4)),
        Proposal(0, header(height=3, proposer=OTHER)),
        CommitVote(3, 0, h.hash, vote),
    ):
        assert ENGINE.on_message(state, msg) == (state, ())
