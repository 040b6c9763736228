"""Tendermint BFT consensus as one pure handler: ``on_message(state, msg, ctx)``.

Follows Algorithm 1 of Buchman, Kwon and Milosevic, "The latest gossip on BFT
consensus" (2018); comments name its line numbers. With n validators of which
at most f = (n - 1) // 3 are Byzantine, no two honest nodes decide different
blocks at a height: deciding needs a quorum of n - f precommits, any two quorums
share an honest validator, and an honest validator precommits a block only
after locking on it, which it gives up only for a quorum of prevotes in a later
round. Once the network is stable, timeouts growing with the round, the round
skip of line 55 and periodic rebroadcast (``Tick``) let every honest node
decide. The state machine never sees which engine runs: blocks are opaque bytes
handled by the injected ``ProposalSource``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from ehrchain.consensus.bft_types import (
    BftContext,
    Broadcast,
    Decide,
    Output,
    RecordEvidence,
    ScheduleTimeout,
    Send,
)
from ehrchain.consensus.certificate import check_certificate, make_certificate, max_faulty, quorum
from ehrchain.consensus.errors import InvalidCertificate
from ehrchain.consensus.evidence import double_sign
from ehrchain.consensus.messages import (
    NO_ROUND,
    Committed,
    Message,
    Precommit,
    Prevote,
    Proposal,
    SignedMessage,
    Start,
    Status,
    Tick,
    TimeoutCommit,
    TimeoutPrecommit,
    TimeoutPrevote,
    TimeoutPropose,
    sign_precommit,
    sign_prevote,
    sign_proposal,
)
from ehrchain.consensus.votes import Candidate, VoteBook
from ehrchain.core.block import CommitCertificate
from ehrchain.core.types import Address, BlockHash

_PREVOTE_TIMER: Final = "prevote-timer"  # line 34 fired this round
_LOCK: Final = "lock"  # line 36 fired this round
_PRECOMMIT_TIMER: Final = "precommit-timer"  # line 47 fired this round

Transition = tuple["BftState", tuple[Output, ...]]


class Step(IntEnum):
    NEW_HEIGHT = 0
    """Decided the previous height; waiting for ``TimeoutCommit`` (or ``Start``)."""
    PROPOSE = 1
    PREVOTE = 2
    PRECOMMIT = 3


@dataclass(frozen=True, slots=True)
class BftState:
    """One node's view of the height it is deciding; replaced, never mutated.

    ``locked`` and ``valid`` are the paper's lockedValue/lockedRound and
    validValue/validRound; ``fired`` holds the "for the first time" rules that
    already ran this round; ``commits`` keeps recent decisions for catch-up.
    """

    height: int
    validators: Mapping[Address, bytes]
    round: int = 0
    step: Step = Step.NEW_HEIGHT
    locked: Candidate | None = None
    valid: Candidate | None = None
    book: VoteBook = field(default_factory=VoteBook)
    fired: frozenset[str] = frozenset()
    reported: frozenset[tuple[str, int, Address]] = frozenset()
    commits: Mapping[int, Committed] = field(default_factory=lambda: MappingProxyType({}))


def initial_state(height: int, ctx: BftContext) -> BftState:
    """The state of a node about to decide ``height`` (the chain below is decided)."""
    return BftState(height, MappingProxyType(dict(ctx.validator_set_at(height))))


def proposer(state: BftState, round_: int) -> Address | None:
    """Round-robin over the sorted validator addresses, by (height + round) mod n."""
    order = sorted(state.validators)
    return order[(state.height + round_) % len(order)] if order else None


def on_message(state: BftState, msg: Message, ctx: BftContext) -> Transition:
    """Apply one message or timer event; return the new state and what to do.

    What the message makes this node do (vote, decide) comes before what taking it
    in produced (a double-sign's evidence and the second message, passed on): a
    node's own vote is what its peers are waiting for.
    """
    accepted, out = _accept(state, msg, ctx)
    if accepted is state:
        return state, out
    accepted, more = _progress(accepted, ctx)
    return accepted, more + out


# --- intake: one handler per kind of message -------------------------------------------


def _accept(state: BftState, msg: Message, ctx: BftContext) -> Transition:
    if isinstance(msg, Proposal | Prevote | Precommit):
        return _on_signed(state, msg, ctx)
    if isinstance(msg, Committed):
        return _on_committed(state, msg, ctx)
    if isinstance(msg, Status):
        return _on_status(state, msg, ctx)
    if isinstance(msg, Start):
        return _on_start(state, ctx)
    if isinstance(msg, Tick):
        return _on_tick(state, ctx)
    return _on_timeout(state, msg, ctx)


def _on_signed(state: BftState, msg: SignedMessage, ctx: BftContext) -> Transition:
    """Keep every validly signed message the book keeps.

    Nothing is relayed at once: every validator sends its own messages to every
    peer, and relaying each new one to all peers as it arrived made every node
    receive and drop each vote three times over while the height waited for the
    same cores (finality at half load about doubled). What a node holds from others
    goes on when it decides (``_decide``: a peer that a broken link or a
    two-faced validator kept from some vote gets it, and sees the double vote) and
    at its tick while a height lasts (``_on_tick``), as lazy broadcasts that travel
    with the node's next own message.
    """
    public_key = state.validators.get(msg.signer)
    if msg.height != state.height or msg.round < 0 or public_key is None:
        return state, ()
    if isinstance(msg, Proposal) and not _well_placed(state, msg):
        return state, ()
    held = state.book.held(msg)
    if msg in held:
        return state, ()
    signed = msg.signing_bytes(ctx.chain_id)
    if any(h.signing_bytes(ctx.chain_id) == signed for h in held):
        return state, ()
    if not ctx.verify(public_key, signed, msg.signature):
        return state, ()
    state, out = _report(state, held, msg, ctx)
    if isinstance(msg, Proposal):
        candidate = None if held else _candidate(state, msg, ctx)
        if candidate is None:
            return state, out
        book = state.book.with_proposal(msg, candidate)
    elif held and not state.book.keeps(msg):
        return state, out
    else:
        book = state.book.with_vote(msg)
    return replace(state, book=book), out


def _well_placed(state: BftState, proposal: Proposal) -> bool:
    return proposal.proposer == proposer(state, proposal.round) and (
        NO_ROUND <= proposal.valid_round < proposal.round
    )


def _candidate(state: BftState, proposal: Proposal, ctx: BftContext) -> Candidate | None:
    """The proposed block checked once; None if it does not hash to the signed hash."""
    header = ctx.source.header(proposal.block)
    if header is None or header.hash != proposal.block_hash:
        return None
    valid = (
        header.height == state.height
        and header.chain_id == ctx.chain_id
        and ctx.source.validate(state.height, proposal.block)
    )
    return Candidate(proposal.round, proposal.block_hash, proposal.block, valid)


def _report(
    state: BftState, held: tuple[SignedMessage, ...], msg: SignedMessage, ctx: BftContext
) -> Transition:
    """Record a double-sign once, relaying the second message so others see it too."""
    key = (type(msg).__name__, msg.round, msg.signer)
    if not held or key in state.reported:
        return state, ()
    evidence = double_sign(ctx.chain_id, held[0], msg)
    return replace(state, reported=state.reported | {key}), (
        RecordEvidence(evidence),
        Broadcast(msg),
    )


def _on_committed(state: BftState, msg: Committed, ctx: BftContext) -> Transition:
    """Catch up on a decision the node missed: a quorum certificate is proof enough.

    Having caught up, the node asks again at once, so a node that was down for
    many heights catches up at network speed rather than one height per tick.
    """
    if msg.height != state.height:
        return state, ()
    header = ctx.source.header(msg.block)
    if header is None or header.height != msg.height or header.chain_id != ctx.chain_id:
        return state, ()
    try:
        check_certificate(header, msg.certificate, state.validators)
    except InvalidCertificate:
        return state, ()
    if not ctx.source.validate(state.height, msg.block):
        return state, ()
    state, out = _decide(state, header.hash, msg.block, msg.certificate, ctx)
    return state, (*out, Broadcast(Status(state.height, ctx.me)))


def _on_status(state: BftState, msg: Status, ctx: BftContext) -> Transition:
    """Answer a peer that is behind with the block it is missing, if still kept."""
    committed = state.commits.get(msg.height)
    if msg.sender == ctx.me or msg.height >= state.height or committed is None:
        return state, ()
    return state, (Send(msg.sender, committed),)


def _on_start(state: BftState, ctx: BftContext) -> Transition:
    tick = ScheduleTimeout(Tick(), ctx.timeouts.tick_ms)
    if state.step == Step.NEW_HEIGHT:
        state, out = _start_round(state, 0, ctx)
        return state, (tick, *out)
    return state, (tick, *_rearm(state, ctx))


def _rearm(state: BftState, ctx: BftContext) -> tuple[Output, ...]:
    """The timers the current step waits on; lost when a node restarts."""
    h, r, t = state.height, state.round, ctx.timeouts
    timers: list[Output] = []
    if state.step == Step.PROPOSE:
        timers.append(ScheduleTimeout(TimeoutPropose(h, r), t.propose(r)))
    if _PREVOTE_TIMER in state.fired:
        timers.append(ScheduleTimeout(TimeoutPrevote(h, r), t.prevote(r)))
    if _PRECOMMIT_TIMER in state.fired:
        timers.append(ScheduleTimeout(TimeoutPrecommit(h, r), t.precommit(r)))
    return tuple(timers)


def _on_tick(state: BftState, ctx: BftContext) -> Transition:
    """Re-send what this node signed at this height, and pass on the round's proposal
    and the votes it holds from others (a height that outlasts a tick is one where a
    peer may be missing some)."""
    out: list[Output] = [Broadcast(Status(state.height, ctx.me))]
    out.extend(Broadcast(m) for m in state.book.signed_by(ctx.me))
    out.extend(Broadcast(v, lazy=True) for v in state.book.votes() if v.signer != ctx.me)
    entry = state.book.proposals.get(state.round)
    if entry is not None:
        if entry[0].proposer != ctx.me:
            out.append(Broadcast(entry[0]))
        out.extend(Broadcast(v) for v in _proof_of_lock(state, entry[0]))
    out.append(ScheduleTimeout(Tick(), ctx.timeouts.tick_ms))
    return state, tuple(out)


def _proof_of_lock(state: BftState, proposal: Proposal) -> tuple[Prevote, ...]:
    """The prevotes that let others accept a re-proposed block (line 28)."""
    if proposal.valid_round == NO_ROUND:
        return ()
    return state.book.prevotes_for(proposal.valid_round, proposal.block_hash)


def _on_timeout(
    state: BftState,
    msg: TimeoutPropose | TimeoutPrevote | TimeoutPrecommit | TimeoutCommit,
    ctx: BftContext,
) -> Transition:
    if isinstance(msg, TimeoutCommit):  # the pause after a commit ended
        if msg.height == state.height and state.step == Step.NEW_HEIGHT:
            return _start_round(state, 0, ctx)
        return state, ()
    if (msg.height, msg.round) != (state.height, state.round):
        return state, ()
    if isinstance(msg, TimeoutPropose) and state.step == Step.PROPOSE:  # line 57
        return _prevote(state, None, ctx)
    if isinstance(msg, TimeoutPrevote) and state.step == Step.PREVOTE:  # line 61
        return _precommit(state, None, ctx)
    if isinstance(msg, TimeoutPrecommit) and state.step != Step.NEW_HEIGHT:  # line 65
        return _start_round(state, state.round + 1, ctx)
    return state, ()


# --- actions ---------------------------------------------------------------------------


def _start_round(state: BftState, round_: int, ctx: BftContext) -> Transition:
    """Line 11: the proposer proposes its valid block or a new one; others arm a timer."""
    state = replace(state, round=round_, step=Step.PROPOSE, fired=frozenset())
    wait = ScheduleTimeout(TimeoutPropose(state.height, round_), ctx.timeouts.propose(round_))
    if ctx.key is None or proposer(state, round_) != ctx.me:
        return state, (wait,)
    if state.valid is not None:
        block, valid_round = state.valid.block, state.valid.round
    else:
        new_block = ctx.source.propose(state.height, round_)
        if new_block is None:
            return state, (wait,)
        block, valid_round = new_block, NO_ROUND
    header = ctx.source.header(block)
    if header is None:
        return state, (wait,)
    proposal = sign_proposal(
        ctx.key, ctx.me, ctx.chain_id, state.height, round_, header.hash, valid_round, block
    )
    candidate = _candidate(state, proposal, ctx)
    if candidate is None:
        return state, (wait,)
    proof = tuple(Broadcast(v) for v in _proof_of_lock(state, proposal))
    state = replace(state, book=state.book.with_proposal(proposal, candidate))
    return state, (Broadcast(proposal), *proof, wait)


def _prevote(state: BftState, block_hash: BlockHash | None, ctx: BftContext) -> Transition:
    state = replace(state, step=Step.PREVOTE)
    if ctx.key is None or ctx.me not in state.validators:
        return state, ()
    held = state.book.prevotes.get(state.round, {}).get(ctx.me)
    if held:  # never sign twice in a round, even after a restart
        return state, (Broadcast(held[0]),)
    vote = sign_prevote(ctx.key, ctx.me, ctx.chain_id, state.height, state.round, block_hash)
    return replace(state, book=state.book.with_vote(vote)), (Broadcast(vote),)


def _precommit(state: BftState, block_hash: BlockHash | None, ctx: BftContext) -> Transition:
    state = replace(state, step=Step.PRECOMMIT)
    if ctx.key is None or ctx.me not in state.validators:
        return state, ()
    held = state.book.precommits.get(state.round, {}).get(ctx.me)
    if held:
        return state, (Broadcast(held[0]),)
    vote = sign_precommit(ctx.key, ctx.me, ctx.chain_id, state.height, state.round, block_hash)
    return replace(state, book=state.book.with_vote(vote)), (Broadcast(vote),)


def _decide(
    state: BftState,
    block_hash: BlockHash,
    block: bytes,
    certificate: CommitCertificate,
    ctx: BftContext,
) -> Transition:
    """Line 49: emit the decision and move to the next height with a fresh round."""
    height = state.height
    commits = {h: c for h, c in state.commits.items() if h > height - ctx.keep_commits}
    commits[height] = Committed(height, block, certificate)
    following = replace(initial_state(height + 1, ctx), commits=MappingProxyType(commits))
    relays = (Broadcast(v, lazy=True) for v in state.book.votes() if v.signer != ctx.me)
    return following, (
        Decide(height, block_hash, block, certificate),
        ScheduleTimeout(TimeoutCommit(height + 1), ctx.timeouts.commit_ms),
        *relays,
    )


# --- the upon-rules, applied until none fires -----------------------------------------

Rule = Callable[[BftState, BftContext], Transition | None]


def _progress(state: BftState, ctx: BftContext) -> Transition:
    """Fire rules until none applies; each one moves the step, round or height or sets
    a ``fired`` flag, so the loop ends."""
    out: list[Output] = []
    while state.validators:
        for rule in _RULES:
            result = rule(state, ctx)
            if result is not None:
                state, more = result
                out.extend(more)
                break
        else:
            break
    return state, tuple(out)


def _quorum(state: BftState) -> int:
    return quorum(len(state.validators))


def _rule_decide(state: BftState, ctx: BftContext) -> Transition | None:
    """Line 49: a valid proposal of any round with a quorum of precommits for it."""
    for round_, (_, candidate) in state.book.proposals.items():
        if not candidate.valid:
            continue
        votes = [p.as_vote() for p in state.book.precommits_for(round_, candidate.block_hash)]
        if len(votes) >= _quorum(state):
            certificate = make_certificate(round_, votes)
            return _decide(state, candidate.block_hash, candidate.block, certificate, ctx)
    return None


def _rule_skip_round(state: BftState, ctx: BftContext) -> Transition | None:
    """Line 55: f + 1 validators are in a later round, so at least one honest one is."""
    needed = max_faulty(len(state.validators)) + 1
    later = [r for r in state.book.rounds() if r > state.round]
    for round_ in sorted(later, reverse=True):
        if state.book.signers_in(round_) >= needed:
            return _start_round(state, round_, ctx)
    return None


def _rule_prevote(state: BftState, ctx: BftContext) -> Transition | None:
    """Lines 22 and 28: prevote the round's proposal if valid and the lock allows it."""
    entry = state.book.proposals.get(state.round)
    if state.step != Step.PROPOSE or entry is None:
        return None
    proposal, candidate = entry
    locked = state.locked
    if proposal.valid_round == NO_ROUND:
        free = locked is None or locked.block_hash == candidate.block_hash
    elif len(_proof_of_lock(state, proposal)) >= _quorum(state):
        free = (
            locked is None
            or locked.round <= proposal.valid_round
            or locked.block_hash == candidate.block_hash
        )
    else:
        return None
    return _prevote(state, candidate.block_hash if candidate.valid and free else None, ctx)


def _rule_lock(state: BftState, ctx: BftContext) -> Transition | None:
    """Line 36: a quorum prevoted the round's valid proposal: lock on it and precommit."""
    candidate = state.book.candidate(state.round)
    if state.step < Step.PREVOTE or _LOCK in state.fired or candidate is None:
        return None
    if not candidate.valid:
        return None
    if len(state.book.prevotes_for(state.round, candidate.block_hash)) < _quorum(state):
        return None
    state = replace(state, valid=candidate, fired=state.fired | {_LOCK})
    if state.step != Step.PREVOTE:
        return state, ()
    return _precommit(replace(state, locked=candidate), candidate.block_hash, ctx)


def _rule_precommit_nil(state: BftState, ctx: BftContext) -> Transition | None:
    """Line 44: a quorum prevoted nil."""
    if state.step != Step.PREVOTE:
        return None
    if len(state.book.prevotes_for(state.round, None)) < _quorum(state):
        return None
    return _precommit(state, None, ctx)


def _rule_prevote_timer(state: BftState, ctx: BftContext) -> Transition | None:
    """Line 34: a quorum prevoted, but for nothing in common yet."""
    if state.step != Step.PREVOTE or _PREVOTE_TIMER in state.fired:
        return None
    if state.book.prevoters(state.round) < _quorum(state):
        return None
    timer = ScheduleTimeout(
        TimeoutPrevote(state.height, state.round), ctx.timeouts.prevote(state.round)
    )
    return replace(state, fired=state.fired | {_PREVOTE_TIMER}), (timer,)


def _rule_precommit_timer(state: BftState, ctx: BftContext) -> Transition | None:
    """Line 47: a quorum precommitted in this round, but not for one block yet."""
    if state.step == Step.NEW_HEIGHT or _PRECOMMIT_TIMER in state.fired:
        return None
    if state.book.precommitters(state.round) < _quorum(state):
        return None
    timer = ScheduleTimeout(
        TimeoutPrecommit(state.height, state.round), ctx.timeouts.precommit(state.round)
    )
    return replace(state, fired=state.fired | {_PRECOMMIT_TIMER}), (timer,)


_RULES: Final[tuple[Rule, ...]] = (
    _rule_decide,
    _rule_skip_round,
    _rule_prevote,
    _rule_lock,
    _rule_precommit_nil,
    _rule_prevote_timer,
    _rule_precommit_timer,
)
