"""Gossip lanes and consensus messages between nodes: a batch of transactions queued at
once, never twice; consensus messages on their own sender per peer (never behind a batch
of transactions in flight), queued ones batched into one request, and the batch route."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any, cast

import pytest
import test_bft
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ehrchain.api.errors import install_error_handlers
from ehrchain.api.middleware import CatchAllMiddleware
from ehrchain.consensus import bft
from ehrchain.consensus.messages import Status
from ehrchain.consensus.wire import encode_message
from ehrchain.core import encoding
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.node import gossip as gossip_module
from ehrchain.node.bft_driver import (
    MAX_AHEAD,
    MAX_EARLY,
    BftDriver,
    consensus_router,
    peer_messages,
)
from ehrchain.node.errors import Rejected
from ehrchain.node.gossip import CONSENSUS, TX, Gossip, _Lane
from ehrchain.node.peer_client import ClientPool, PeerClient

WAIT_S = 5.0
ME = Address(new_identity("node").address)


def _status(height: int) -> bytes:
    return encode_message(Status(height, ME))


class SlowPeer:
    """A peer client whose sends block until released, recording what was sent."""

    url = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.entered = {kind: threading.Event() for kind in ("txs", "consensus")}
        self.release = {kind: threading.Event() for kind in ("txs", "consensus")}

    def _hold(self, kind: str, what: Any) -> None:
        self.sent.append((kind, what))
        self.entered[kind].set()
        assert self.release[kind].wait(WAIT_S)

    def stream(self) -> None:
        """No stream (a peer reached through an HTTP proxy): every batch is a request."""
        return None

    def push_txs(self, items: Sequence[bytes]) -> None:
        self._hold("txs", list(items))

    def push_consensus(self, data: bytes) -> None:
        self._hold("consensus", [data])

    def push_consensus_batch(self, items: Sequence[bytes]) -> None:
        self._hold("consensus", list(items))


def wait_for(predicate: Any) -> None:
    """Poll ``predicate`` until it holds; fail after ``WAIT_S``."""
    done = threading.Event()
    for _ in range(int(WAIT_S / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


class Peers:
    """A client pool of SlowPeers, one per URL."""

    def __init__(self) -> None:
        self.peers: dict[str, SlowPeer] = {}

    def get(self, url: str) -> SlowPeer:
        return self.peers.setdefault(url, SlowPeer())


def test_a_batch_of_transactions_goes_to_every_peer_once_in_one_request() -> None:
    urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    pool = Peers()
    gossip = Gossip(lambda: urls, cast(ClientPool, pool))
    try:
        for peer in (pool.get(u) for u in urls):
            peer.release["txs"].set()
        gossip.txs([b"a", b"b", b"a", b"c"])  # a repeat in the batch goes once
        gossip.txs([b"b", b"d"])  # and an item sent before is not queued again
        for url in urls:
            wait_for(lambda url=url: gossip.stats()[url]["sent"] == 4)
            sent = [item for _, items in pool.get(url).sent for item in items]
            assert sent == [b"a", b"b", b"c", b"d"]
            assert pool.get(url).sent[0][1][:3] == [b"a", b"b", b"c"]  # queued at once
    finally:
        gossip.stop()


def test_a_full_lane_drops_its_oldest_items_and_counts_them() -> None:
    peer = SlowPeer()
    lane = _Lane(cast(PeerClient, peer), 3)
    try:
        lane.put([(TX, b"first")])
        assert peer.entered["txs"].wait(WAIT_S)  # in flight: the queue is now empty
        lane.put([(TX, data) for data in (b"1", b"2", b"3", b"4", b"5")])
        assert lane.dropped == 2
        peer.release["txs"].set()
        wait_for(lambda: lane.sent == 4)
        assert peer.sent[-1] == ("txs", [b"3", b"4", b"5"])
    finally:
        for event in peer.release.values():
            event.set()
        lane.stop()


def test_relays_travel_with_the_next_message_or_alone_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peer = SlowPeer()
    peer.release["consensus"].set()
    lane = _Lane(cast(PeerClient, peer), 100)
    try:
        lane.put([(CONSENSUS, _status(1)), (CONSENSUS, _status(2))], lazy=True)
        lane.put([(CONSENSUS, _status(3))])
        wait_for(lambda: len(peer.sent) == 1)
        assert peer.sent == [("consensus", [_status(3), _status(1), _status(2)])]
        monkeypatch.setattr(gossip_module, "LAZY_WAIT_S", 0.05)
        lane.put([(CONSENSUS, _status(4))], lazy=True)  # nothing else to go with
        wait_for(lambda: len(peer.sent) == 2)
        assert peer.sent[1] == ("consensus", [_status(4)])
    finally:
        lane.stop()


def test_a_vote_is_sent_while_transactions_to_that_peer_are_in_flight() -> None:
    peer = SlowPeer()
    lane = _Lane(cast(PeerClient, peer), 100)
    try:
        lane.put([(TX, b"tx-1")])
        assert peer.entered["txs"].wait(WAIT_S)
        lane.put([(CONSENSUS, _status(7))])
        assert peer.entered["consensus"].wait(WAIT_S)  # the tx push is still blocked
        assert ("consensus", [_status(7)]) in peer.sent
    finally:
        for event in peer.release.values():
            event.set()
        lane.stop()


def test_consensus_messages_queued_meanwhile_go_in_one_request_in_order() -> None:
    peer = SlowPeer()
    lane = _Lane(cast(PeerClient, peer), 100)
    try:
        lane.put([(CONSENSUS, _status(1))])
        assert peer.entered["consensus"].wait(WAIT_S)
        for height in (2, 3, 4):
            lane.put([(CONSENSUS, _status(height))])
        peer.release["consensus"].set()
        wait_for(lambda: len(peer.sent) == 2)
        assert peer.sent == [
            ("consensus", [_status(1)]),
            ("consensus", [_status(2), _status(3), _status(4)]),
        ]
    finally:
        for event in peer.release.values():
            event.set()
        lane.stop()


def test_peer_messages_decodes_bft_messages_and_refuses_anything_else() -> None:
    assert peer_messages([_status(5), _status(6)]) == [Status(5, ME), Status(6, ME)]
    for bad in (b"", b"\x01\xa0", encoding.encode(["ehrchain/not-a-message", 1])):
        with pytest.raises(Rejected):
            peer_messages([_status(5), bad])


class InboxStub:
    def __init__(self) -> None:
        self.delivered: list[list[bytes]] = []

    def deliver(self, data: bytes) -> None:
        self.deliver_many([data])

    def deliver_many(self, items: Sequence[bytes]) -> None:
        peer_messages(items)
        self.delivered.append(list(items))


@pytest.fixture
def stub() -> InboxStub:
    return InboxStub()


@pytest.fixture
def client(stub: InboxStub) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(CatchAllMiddleware)  # turns Rejected into its problem answer
    app.include_router(consensus_router(lambda: cast(BftDriver, stub)))
    return TestClient(app)


CBOR = {"content-type": "application/cbor"}


def test_the_batch_route_delivers_every_message_in_order(
    client: TestClient, stub: InboxStub
) -> None:
    body = encoding.encode([_status(1), _status(2)])
    assert client.post("/consensus/messages", content=body, headers=CBOR).status_code == 202
    assert stub.delivered == [[_status(1), _status(2)]]


@pytest.mark.parametrize(
    "body",
    [
        b"not cbor",
        encoding.encode([]),
        encoding.encode([_status(1)] * 257),
        encoding.encode(["text, not bytes"]),
        encoding.encode([_status(1), b"\x01garbage"]),
    ],
)
def test_a_bad_batch_is_refused_whole(client: TestClient, stub: InboxStub, body: bytes) -> None:
    answer = client.post("/consensus/messages", content=body, headers=CBOR)
    assert answer.status_code == 422
    assert stub.delivered == []


class _Head:
    def __init__(self, height: int) -> None:
        self.height = height


class _Service:
    """What a driver asks its node while it hands messages to the handler."""

    def __init__(self, height: int) -> None:
        self.at = _Head(height)

    def head(self) -> _Head:
        return self.at

    def pending_count(self) -> int:
        return 0


class _Sink:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def consensus(self, items: Sequence[bytes], to: object = None, *, lazy: bool = False) -> None:
        self.sent.extend(items)

    def append(self, msg: object) -> None:  # the signed log
        return None


def _driver_deciding(height: int, me: Address) -> BftDriver:
    """A driver on its handler alone: its node, log and gossip are stand-ins."""
    ctx, _ = test_bft.node(me)
    driver = object.__new__(BftDriver)
    driver.ctx = ctx
    driver.state = bft.initial_state(height, ctx)
    driver._service = cast(Any, _Service(height - 1))
    driver._gossip = driver._log = cast(Any, _Sink())
    driver._held = None
    driver._peer_heights = set()
    driver._early = {}
    driver._early_bytes = 0
    driver._timers = []
    driver._seq = itertools.count()
    return driver


def test_a_proposal_for_the_next_height_waits_for_this_node_to_get_there() -> None:
    me = test_bft.follower_of(0)
    driver = _driver_deciding(test_bft.H - 1, me)  # still committing the height below
    proposal = test_bft.proposal_for(0)
    driver._step(proposal)
    assert list(driver._early) == [proposal]
    assert driver.state.book.proposals == {}
    cast(_Service, driver._service).at = _Head(test_bft.H - 1)  # that block is committed
    driver._follow_ledger()
    assert driver.state.height == test_bft.H
    assert list(driver._early) == []
    assert driver.state.book.proposals[0][0] == proposal  # handed over on arrival


def test_next_height_messages_are_held_within_bounds_and_older_ones_pass_through() -> None:
    me = test_bft.follower_of(0)
    driver = _driver_deciding(test_bft.H - 1, me)
    votes = test_bft.prevotes(0, None, test_bft.ORDER)
    for vote in votes * 3:  # each relayed by other peers too
        driver._step(vote)
    assert list(driver._early) == votes  # held once each
    rounds = MAX_EARLY // len(votes) + 1
    for round_ in range(1, rounds + 1):
        for vote in test_bft.prevotes(round_, None, test_bft.ORDER):
            driver._step(vote)
    assert len(driver._early) == MAX_EARLY
    behind = _driver_deciding(test_bft.H + 1, me)
    behind._step(votes[0])  # a height already decided here: the handler drops it
    assert list(behind._early) == []
    far = _driver_deciding(test_bft.H - MAX_AHEAD - 1, me)
    far._step(votes[0])  # too far ahead to hold: catch-up brings that height
    assert list(far._early) == []


def test_messages_held_for_later_heights_wait_for_theirs() -> None:
    me = test_bft.follower_of(0)
    driver = _driver_deciding(test_bft.H - 2, me)
    proposal = test_bft.proposal_for(0)
    driver._step(proposal)
    cast(_Service, driver._service).at = _Head(test_bft.H - 2)
    driver._follow_ledger()  # one height on: the proposal is still for a later one
    assert (driver.state.height, list(driver._early)) == (test_bft.H - 1, [proposal])
    cast(_Service, driver._service).at = _Head(test_bft.H - 1)
    driver._follow_ledger()
    assert list(driver._early) == []
    assert driver.state.book.proposals[0][0] == proposal
