"""The BFT handler, one rule at a time, among four validators with real keys."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ehrchain.consensus import bft
from ehrchain.consensus.bft_types import (
    BftContext,
    Broadcast,
    Decide,
    Output,
    RecordEvidence,
    ScheduleTimeout,
    Send,
)
from ehrchain.consensus.certificate import check_certificate, make_certificate
from ehrchain.consensus.errors import InvalidCertificate
from ehrchain.consensus.evidence import InvalidEvidence, check_evidence, double_sign
from ehrchain.consensus.messages import (
    NO_ROUND,
    Committed,
    Message,
    Precommit,
    Prevote,
    Proposal,
    Start,
    Status,
    Tick,
    TimeoutCommit,
    TimeoutPrecommit,
    TimeoutPropose,
    sign_precommit,
    sign_prevote,
    sign_proposal,
    signature_ok,
)
from ehrchain.consensus.pow_chain import BlockMsg, GetBlock
from ehrchain.consensus.sim_bft import CHAIN_ID, SIM_TIMEOUTS, SimBlocks, sim_key
from ehrchain.consensus.wire import (
    InvalidMessage,
    WireMessage,
    decode_evidence,
    decode_message,
    encode_evidence,
    encode_message,
)
from ehrchain.core import encoding
from ehrchain.core.address import address_from_public_key
from ehrchain.core.block import block_from_bytes
from ehrchain.core.types import Address, BlockHash, ChainId

KEYS = [sim_key(7, i) for i in range(5)]
ADDRS = [address_from_public_key(k.public_key) for k in KEYS]
VALIDATORS = {ADDRS[i]: KEYS[i].public_key for i in range(4)}
"""Four validators; KEYS[4] belongs to an outsider."""
ORDER = sorted(VALIDATORS)
H = 1


def node(address: Address, *, key: bool = True) -> tuple[BftContext, SimBlocks]:
    i = ADDRS.index(address)
    blocks = SimBlocks(address, 0, invalid=False)
    ctx = BftContext(
        CHAIN_ID, address, KEYS[i] if key else None, blocks, lambda h: VALIDATORS, SIM_TIMEOUTS
    )
    return ctx, blocks


def key_of(address: Address):  # type: ignore[no-untyped-def]
    return KEYS[ADDRS.index(address)]


def step(state: bft.BftState, ctx: BftContext, *msgs: Message) -> tuple[bft.BftState, list[Output]]:
    out: list[Output] = []
    for msg in msgs:
        state, more = bft.on_message(state, msg, ctx)
        out.extend(more)
    return state, out


def sent(out: list[Output], kind: type, by: Address | None = None) -> list:  # type: ignore[type-arg]
    """Broadcast messages of ``kind``, only those signed by ``by`` if given."""
    return [
        o.message
        for o in out
        if isinstance(o, Broadcast)
        and isinstance(o.message, kind)
        and (by is None or getattr(o.message, "signer", None) == by)
    ]


def proposal_for(round_: int, *, valid_round: int = NO_ROUND, salt: int = 0) -> Proposal:
    proposer = ORDER[(H + round_) % 4]
    block = SimBlocks(proposer, salt, invalid=False).propose(H, round_)
    assert block is not None
    block_hash = block_from_bytes(block).header.hash
    return sign_proposal(
        key_of(proposer), proposer, CHAIN_ID, H, round_, block_hash, valid_round, block
    )


def prevotes(round_: int, block_hash: BlockHash | None, voters: list[Address]) -> list[Prevote]:
    return [sign_prevote(key_of(v), v, CHAIN_ID, H, round_, block_hash) for v in voters]


def precommits(round_: int, block_hash: BlockHash | None, voters: list[Address]) -> list[Precommit]:
    return [sign_precommit(key_of(v), v, CHAIN_ID, H, round_, block_hash) for v in voters]


def follower_of(round_: int) -> Address:
    """A validator that is not the proposer of ``round_``."""
    return ORDER[(H + round_ + 1) % 4]


def started(me: Address) -> tuple[bft.BftState, BftContext, list[Output]]:
    ctx, _ = node(me)
    state, out = step(bft.initial_state(H, ctx), ctx, Start())
    return state, ctx, out


def round_zero() -> tuple[Address, bft.BftState, BftContext, Proposal, list[Address]]:
    """A validator that does not propose round 0, started; that round's proposal; the
    other validators."""
    me = follower_of(0)
    state, ctx, _ = started(me)
    return me, state, ctx, proposal_for(0), [a for a in ORDER if a != me]


def test_proposer_rotates_by_height_plus_round_over_sorted_addresses() -> None:
    ctx, _ = node(ORDER[0])
    state = bft.initial_state(H, ctx)
    assert [bft.proposer(state, r) for r in range(5)] == [ORDER[(H + r) % 4] for r in range(5)]


def test_the_proposer_proposes_a_signed_block_and_prevotes_it() -> None:
    me = ORDER[H % 4]
    state, _, out = started(me)
    [proposal] = sent(out, Proposal)
    assert signature_ok(VALIDATORS[me], proposal.signing_bytes(CHAIN_ID), proposal.signature)
    assert block_from_bytes(proposal.block).header.hash == proposal.block_hash
    assert [v.block_hash for v in sent(out, Prevote)] == [proposal.block_hash]
    assert state.step == bft.Step.PREVOTE


def test_a_follower_waits_for_the_proposal_with_a_timer_then_prevotes_nil() -> None:
    state, ctx, out = started(follower_of(0))
    assert ScheduleTimeout(TimeoutPropose(H, 0), SIM_TIMEOUTS.propose(0)) in out
    assert not sent(out, Prevote)
    state, out = step(state, ctx, TimeoutPropose(H, 0))
    assert [v.block_hash for v in sent(out, Prevote)] == [None]


def test_a_stale_timeout_does_nothing() -> None:
    state, ctx, _ = started(follower_of(0))
    after, out = step(state, ctx, TimeoutPropose(H, 3), TimeoutPrecommit(H + 1, 0))
    assert after == state
    assert out == []


def test_quorum_of_prevotes_locks_and_quorum_of_precommits_decides() -> None:
    _, state, ctx, p, others = round_zero()
    state, out = step(state, ctx, p, *prevotes(0, p.block_hash, others[:2]))
    assert [v.block_hash for v in sent(out, Precommit)] == [p.block_hash]
    assert state.locked is not None
    assert state.locked.block_hash == p.block_hash
    state, out = step(state, ctx, *precommits(0, p.block_hash, others[:2]))
    [decide] = [o for o in out if isinstance(o, Decide)]
    assert (decide.height, decide.block_hash) == (H, p.block_hash)
    check_certificate(block_from_bytes(decide.block).header, decide.certificate, VALIDATORS)
    assert ScheduleTimeout(TimeoutCommit(H + 1), SIM_TIMEOUTS.commit_ms) in out
    assert (state.height, state.step, state.locked) == (H + 1, bft.Step.NEW_HEIGHT, None)


def test_two_thirds_is_not_enough_with_only_two_votes() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    p = proposal_for(0)
    other = next(a for a in ORDER if a != me)
    state, out = step(state, ctx, p, *prevotes(0, p.block_hash, [other]))
    assert not sent(out, Precommit)
    assert state.locked is None


def test_precommit_signatures_form_a_commit_certificate() -> None:
    p = proposal_for(0)
    votes = [c.as_vote() for c in precommits(0, p.block_hash, ORDER[:3])]
    header = block_from_bytes(p.block).header
    check_certificate(header, make_certificate(0, votes), VALIDATORS)
    with pytest.raises(InvalidCertificate):
        check_certificate(header, make_certificate(1, votes), VALIDATORS)


def test_prevote_and_nil_precommit_signatures_are_not_commit_votes() -> None:
    p = proposal_for(0)
    header = block_from_bytes(p.block).header
    forged = [v.validator for v in prevotes(0, p.block_hash, ORDER[:3])]
    votes = [
        replace(c, signature=v.signature).as_vote()
        for c, v in zip(
            precommits(0, p.block_hash, forged), prevotes(0, p.block_hash, forged), strict=True
        )
    ]
    with pytest.raises(InvalidCertificate):
        check_certificate(header, make_certificate(0, votes), VALIDATORS)


def test_messages_with_bad_signatures_or_from_outsiders_are_ignored() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    p = proposal_for(0)
    bad = replace(prevotes(0, p.block_hash, [ORDER[0]])[0], signature=bytes(64))
    outsider = sign_prevote(KEYS[4], ADDRS[4], CHAIN_ID, H, 0, p.block_hash)
    other_chain = sign_prevote(key_of(ORDER[1]), ORDER[1], "other", H, 0, p.block_hash)
    for msg in (bad, outsider, replace(other_chain, height=H)):
        after, out = step(state, ctx, msg)
        assert (after, out) == (state, [])


def test_a_proposal_from_the_wrong_proposer_is_ignored() -> None:
    state, ctx, _ = started(follower_of(0))
    p = proposal_for(1)  # round 1's proposer, sent as if for round 0
    wrong = sign_proposal(
        key_of(p.proposer), p.proposer, CHAIN_ID, H, 0, p.block_hash, NO_ROUND, p.block
    )
    after, out = step(state, ctx, wrong)
    assert (after, out) == (state, [])


def test_an_invalid_block_gets_a_nil_prevote() -> None:
    state, ctx, _ = started(follower_of(0))
    proposer = ORDER[H % 4]
    block = SimBlocks(proposer, 0, invalid=True).propose(H, 0)
    assert block is not None
    bad = sign_proposal(
        key_of(proposer),
        proposer,
        CHAIN_ID,
        H,
        0,
        block_from_bytes(block).header.hash,
        NO_ROUND,
        block,
    )
    state, out = step(state, ctx, bad)
    assert [v.block_hash for v in sent(out, Prevote)] == [None]


def test_a_block_that_does_not_match_the_signed_hash_is_ignored() -> None:
    state, ctx, _ = started(follower_of(0))
    p = proposal_for(0)
    swapped = replace(p, block=proposal_for(0, salt=9).block)
    after, out = step(state, ctx, swapped)
    assert (after, out) == (state, [])


def test_double_prevote_is_recorded_as_verifiable_evidence() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    a, b = proposal_for(0), proposal_for(0, salt=5)
    cheat = ORDER[H % 4]
    first = prevotes(0, a.block_hash, [cheat])[0]
    second = prevotes(0, b.block_hash, [cheat])[0]
    state, out = step(state, ctx, first, second, second)
    [record] = [o for o in out if isinstance(o, RecordEvidence)]
    check_evidence(record.evidence, VALIDATORS)
    assert record.evidence.offender == cheat
    assert record.evidence == double_sign(CHAIN_ID, second, first)


def test_equivocating_proposer_is_recorded_as_evidence() -> None:
    state, ctx, _ = started(follower_of(0))
    a, b = proposal_for(0), proposal_for(0, salt=5)
    state, out = step(state, ctx, a, b)
    [record] = [o for o in out if isinstance(o, RecordEvidence)]
    check_evidence(record.evidence, VALIDATORS)
    assert state.book.candidate(0) is not None
    assert state.book.candidate(0).block_hash == a.block_hash  # type: ignore[union-attr]


def test_evidence_that_proves_nothing_is_rejected() -> None:
    a, b = proposal_for(0), proposal_for(0, salt=5)
    cheat = ORDER[H % 4]
    [va] = prevotes(0, a.block_hash, [cheat])
    [vb] = prevotes(0, b.block_hash, [cheat])
    [other] = prevotes(0, b.block_hash, [ORDER[0] if cheat != ORDER[0] else ORDER[1]])
    [later] = prevotes(1, b.block_hash, [cheat])
    [precommit] = precommits(0, b.block_hash, [cheat])
    cases = [
        double_sign(CHAIN_ID, va, va),
        double_sign(CHAIN_ID, va, other),
        double_sign(CHAIN_ID, va, later),
        double_sign(CHAIN_ID, va, precommit),
        double_sign(CHAIN_ID, va, replace(vb, signature=va.signature)),
        replace(double_sign(CHAIN_ID, va, vb), chain_id=ChainId("other-chain")),
    ]
    for evidence in cases:
        with pytest.raises(InvalidEvidence):
            check_evidence(evidence, VALIDATORS)
    with pytest.raises(InvalidEvidence):
        check_evidence(double_sign(CHAIN_ID, va, vb), {ADDRS[4]: KEYS[4].public_key})


def test_a_locked_node_prevotes_nil_for_another_block_until_a_later_lock_is_proven() -> None:
    me = ORDER[(H + 3) % 4]  # proposes none of rounds 0-2
    state, ctx, _ = started(me)
    a = proposal_for(0)
    others = [x for x in ORDER if x != me]
    state, _ = step(state, ctx, a, *prevotes(0, a.block_hash, others[:2]))
    assert state.locked is not None
    assert state.locked.block_hash == a.block_hash
    state, _ = step(state, ctx, *precommits(0, None, others), TimeoutPrecommit(H, 0))
    assert state.round == 1
    b = proposal_for(1, salt=3)
    state, out = step(state, ctx, b)
    assert [v.block_hash for v in sent(out, Prevote)] == [None]
    # round 2: b re-proposed with a proof that a quorum prevoted it in round 1
    state, _ = step(state, ctx, *precommits(1, None, others), TimeoutPrecommit(H, 1))
    proposer2 = ORDER[(H + 2) % 4]
    reproposal = sign_proposal(
        key_of(proposer2), proposer2, CHAIN_ID, H, 2, b.block_hash, 1, b.block
    )
    state, out = step(state, ctx, reproposal)
    assert not sent(out, Prevote)  # no proof yet: wait
    state, out = step(state, ctx, *prevotes(1, b.block_hash, others))
    assert [v.block_hash for v in sent(out, Prevote, me)] == [b.block_hash]


def test_f_plus_one_messages_from_a_later_round_move_the_node_there() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    others = [x for x in ORDER if x != me]
    state, _ = step(state, ctx, *prevotes(5, None, others[:1]))
    assert state.round == 0
    state, out = step(state, ctx, *prevotes(5, None, others[1:2]))
    assert state.round == 5
    assert any(isinstance(o, ScheduleTimeout) for o in out) or sent(out, Proposal)


def test_a_lagging_peer_is_sent_the_decided_block_and_catches_up() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    p = proposal_for(0)
    others = [x for x in ORDER if x != me]
    state, _ = step(
        state,
        ctx,
        p,
        *prevotes(0, p.block_hash, others),
        *precommits(0, p.block_hash, others),
    )
    assert state.height == H + 1
    laggard = others[0]
    state, out = step(state, ctx, Status(H, laggard))
    [reply] = [o for o in out if isinstance(o, Send)]
    assert reply.to == laggard
    assert isinstance(reply.message, Committed)
    lag_state, lag_ctx, _ = started(laggard)
    lag_state, out = step(lag_state, lag_ctx, reply.message)
    assert [d.block_hash for d in out if isinstance(d, Decide)] == [p.block_hash]
    assert lag_state.height == H + 1


def test_a_committed_block_with_a_forged_certificate_is_ignored() -> None:
    state, ctx, _ = started(follower_of(0))
    p = proposal_for(0)
    two = [c.as_vote() for c in precommits(0, p.block_hash, ORDER[:2])]
    wrong_round = [c.as_vote() for c in precommits(1, p.block_hash, ORDER[:3])]
    for cert in (make_certificate(0, two), make_certificate(0, wrong_round)):
        after, out = step(state, ctx, Committed(H, p.block, cert))
        assert (after, out) == (state, [])


def test_tick_rebroadcasts_own_messages_and_asks_for_missed_decisions() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    state, first = step(state, ctx, TimeoutPropose(H, 0))
    state, out = step(state, ctx, Tick())
    assert Broadcast(Status(H, me)) in out
    assert sent(out, Prevote) == sent(first, Prevote)
    assert ScheduleTimeout(Tick(), SIM_TIMEOUTS.tick_ms) in out


def test_restart_rearms_the_timer_and_never_signs_a_second_vote() -> None:
    me = follower_of(0)
    state, ctx, _ = started(me)
    state, first = step(state, ctx, TimeoutPropose(H, 0))
    state, out = step(state, ctx, Start())
    assert ScheduleTimeout(Tick(), SIM_TIMEOUTS.tick_ms) in out
    rewound = replace(state, step=bft.Step.PROPOSE)  # as if the step was lost, not the vote
    _, out = step(rewound, ctx, TimeoutPropose(H, 0))
    assert sent(out, Prevote) == sent(first, Prevote)


def test_a_follower_without_a_key_decides_but_never_signs() -> None:
    me = ADDRS[4]
    ctx, _ = node(me, key=False)
    state, out = step(bft.initial_state(H, ctx), ctx, Start())
    p = proposal_for(0)
    state, more = step(
        state, ctx, p, *prevotes(0, p.block_hash, ORDER), *precommits(0, p.block_hash, ORDER)
    )
    out += more
    assert all(m.signer != me for m in sent(out, Prevote) + sent(out, Precommit))
    assert sent(out, Prevote)  # it passes on what it heard, when it decides
    assert sent(out, Precommit)
    assert [d.height for d in out if isinstance(d, Decide)] == [H]


def test_votes_are_passed_on_lazily_when_the_node_decides_not_as_they_arrive() -> None:
    me, state, ctx, p, others = round_zero()
    state, out = step(state, ctx, p, *prevotes(0, p.block_hash, others[:2]))
    assert sent(out, Proposal) == []  # a proposal is never relayed as it arrives
    assert [m.signer for m in sent(out, Prevote)] == [me]  # nor are the others' votes
    votes = precommits(0, p.block_hash, others[:2])
    state, out = step(state, ctx, *votes)
    decide = next(i for i, o in enumerate(out) if isinstance(o, Decide))
    relays = [o for o in out[decide:] if isinstance(o, Broadcast)]
    held = prevotes(0, p.block_hash, others[:2]) + votes
    assert sorted(map(repr, (o.message for o in relays))) == sorted(map(repr, held))
    assert all(o.lazy for o in relays)
    assert not any(o.lazy for o in out[:decide] if isinstance(o, Broadcast))


def test_a_tick_resends_this_node_s_votes_and_passes_on_the_others_lazily() -> None:
    _, state, ctx, p, others = round_zero()
    state, _ = step(state, ctx, p, *prevotes(0, p.block_hash, others[:1]))
    state, out = step(state, ctx, Tick())
    mine = [o for o in out if isinstance(o, Broadcast) and not o.lazy]
    theirs = [o for o in out if isinstance(o, Broadcast) and o.lazy]
    assert [type(o.message) for o in mine] == [Status, Prevote, Proposal]
    assert [o.message for o in theirs] == prevotes(0, p.block_hash, others[:1])


def test_the_validator_set_is_read_for_each_new_height() -> None:
    asked: list[int] = []

    def validators_at(height: int) -> dict[Address, bytes]:
        asked.append(height)
        return VALIDATORS

    ctx = replace(node(ORDER[0])[0], validator_set_at=validators_at)
    bft.initial_state(H, ctx)
    assert asked == [H]


# --- wire form ---------------------------------------------------------------------------


def wire_samples() -> list[WireMessage]:
    p = proposal_for(1, valid_round=0)
    votes = [c.as_vote() for c in precommits(0, p.block_hash, ORDER[:3])]
    block = block_from_bytes(p.block)
    return [
        p,
        prevotes(0, p.block_hash, ORDER[:1])[0],
        prevotes(2, None, ORDER[1:2])[0],
        precommits(0, p.block_hash, ORDER[:1])[0],
        precommits(3, None, ORDER[2:3])[0],
        Status(H, ORDER[0]),
        Committed(H, p.block, make_certificate(0, votes)),
        BlockMsg(block),
        GetBlock(p.block_hash, ORDER[1]),
    ]


def test_every_message_kind_round_trips_through_the_wire_form() -> None:
    for msg in wire_samples():
        assert decode_message(encode_message(msg)) == msg


@pytest.mark.parametrize(
    "fields",
    [
        ["gossip", 1],
        ["status", 1],
        ["status", -1, ORDER[0]],
        ["status", True, ORDER[0]],
        ["status", 1, "ehr1notanaddress"],
        ["prevote", 1, 0, b"short", ORDER[0], bytes(64)],
        ["prevote", 1, 0, None, ORDER[0], bytes(63)],
        ["precommit", 1, -2, None, ORDER[0], bytes(64)],
        ["proposal", 1, 2, bytes(32), 2, ORDER[0], bytes(64), b""],
        ["proposal", 1, 2, bytes(32), -2, ORDER[0], bytes(64), b""],
        ["committed", 1, b"block", "no certificate"],
        ["pow/block", b"not a block"],
        ["pow/get", bytes(31), ORDER[0]],
    ],
)
def test_malformed_messages_are_refused(fields: list[object]) -> None:
    with pytest.raises(InvalidMessage):
        decode_message(encoding.encode(fields))


def test_bytes_that_are_not_canonical_are_refused() -> None:
    good = encode_message(Status(H, ORDER[0]))
    for data in (b"", b"\x02" + good[1:], good + b"\x00", b"\x01\xff"):
        with pytest.raises(InvalidMessage):
            decode_message(data)


def test_evidence_round_trips_and_still_verifies() -> None:
    a, b = proposal_for(0), proposal_for(0, salt=5)
    evidence = double_sign(CHAIN_ID, a, b)
    decoded = decode_evidence(encode_evidence(evidence))
    assert decoded == evidence
    check_evidence(decoded, VALIDATORS)
    with pytest.raises(InvalidMessage):
        decode_evidence(
            encoding.encode([CHAIN_ID, ["status", 1, ORDER[0]], ["status", 1, ORDER[0]]])
        )
