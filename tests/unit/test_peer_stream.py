"""Peer streams (``/p2p/stream``): the handshake is checked like a signed request, each
frame is handled as its request would be, a frame that is not a batch ends the stream;
a gossip lane sends on its stream, and as requests while it has none."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from test_consensus_delivery import wait_for

from ehrchain.api.errors import install_error_handlers
from ehrchain.core import encoding
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity
from ehrchain.node import gossip as gossip_module
from ehrchain.node.errors import Rejected
from ehrchain.node.gossip import BLOCK, CONSENSUS, TX, _Lane
from ehrchain.node.intake import PeerIntake
from ehrchain.node.networked import NetworkedService
from ehrchain.node.p2p_api import POLICY_VIOLATION, PeerAuthMiddleware, p2p_router
from ehrchain.node.peer_client import STREAM_PATH, PeerClient, PeerError
from ehrchain.node.peers import PEER_HEADER, RequestChecker, sign_request

CHAIN = "ehrchain-stream-test"
NOW_MS = 1_700_000_000_000


# -- the receiving node ---------------------------------------------------------------


@dataclass
class StubService:
    """What the stream route asks of the node: whether it is catching up, add a block."""

    lagging: bool = False
    blocks: list[bytes] = field(default_factory=list)

    def is_lagging(self) -> bool:
        return self.lagging

    def add_block(self, data: bytes) -> None:
        if data == b"has it":
            raise Rejected("not_next", "this node has a block at that height")
        self.blocks.append(data)


@dataclass
class Receiver:
    app: FastAPI
    service: StubService
    admitted: list[Sequence[bytes]]
    consensus: list[Sequence[bytes]]
    member: Identity


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    member = new_identity("node")
    keys = {Address(member.address): member.signing.public_key}
    service = StubService()
    admitted: list[Sequence[bytes]] = []
    consensus: list[Sequence[bytes]] = []
    intake = PeerIntake(admitted.append)
    intake.start()

    def deliver(items: Sequence[bytes]) -> None:
        if items[0] == b"refused":
            raise Rejected("invalid_request", "not a consensus message")
        consensus.append(list(items))

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(p2p_router(cast(NetworkedService, service), intake, deliver))
    checker = RequestChecker(CHAIN, keys.get, lambda: NOW_MS)
    app.add_middleware(PeerAuthMiddleware, checker=checker, max_body_bytes=1 << 20)
    try:
        yield Receiver(app, service, admitted, consensus, member)
    finally:
        intake.stop()


def _handshake(identity: Identity, target: str = STREAM_PATH) -> dict[str, str]:
    return sign_request(identity, CHAIN, "GET", target, b"", NOW_MS)


def _frame(kind: bytes, *items: bytes) -> bytes:
    return encoding.encode([kind, *items])


def test_frames_are_handled_as_their_requests_and_refused_batches_are_dropped(
    receiver: Receiver,
) -> None:
    with (
        TestClient(receiver.app) as client,
        client.websocket_connect(STREAM_PATH, headers=_handshake(receiver.member)) as stream,
    ):
        stream.send_bytes(_frame(b"consensus", b"m1", b"m2"))
        stream.send_bytes(_frame(b"consensus", b"refused"))  # dropped, the stream goes on
        stream.send_bytes(_frame(b"txs", b"t1", b"t2"))
        stream.send_bytes(_frame(b"block", b"has it"))  # refused as /add_block: dropped
        stream.send_bytes(_frame(b"block", b"b1"))
        receiver.service.lagging = True
        stream.send_bytes(_frame(b"txs", b"t3"))  # a node catching up refuses it (503)
        stream.send_bytes(_frame(b"consensus", b"m3"))
        wait_for(lambda: len(receiver.consensus) == 2)
        assert receiver.consensus == [[b"m1", b"m2"], [b"m3"]]
        wait_for(lambda: len(receiver.admitted) == 1)
        assert [list(batch) for batch in receiver.admitted] == [[b"t1", b"t2"]]
        assert receiver.service.blocks == [b"b1"]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00 not CBOR",
        encoding.encode([b"votes", b"m1"]),  # an unknown kind
        encoding.encode([b"consensus"]),  # no batch
        encoding.encode(["consensus", b"m1"]),  # the kind as text
        encoding.encode({"consensus": [b"m1"]}),
    ],
)
def test_a_frame_that_is_not_a_batch_ends_the_stream(receiver: Receiver, frame: bytes) -> None:
    with (
        TestClient(receiver.app) as client,
        client.websocket_connect(STREAM_PATH, headers=_handshake(receiver.member)) as stream,
    ):
        stream.send_bytes(frame)
        with pytest.raises(WebSocketDisconnect) as closed:
            stream.receive_bytes()
        assert closed.value.code == POLICY_VIOLATION
        assert receiver.consensus == []


def test_a_text_frame_ends_the_stream(receiver: Receiver) -> None:
    with (
        TestClient(receiver.app) as client,
        client.websocket_connect(STREAM_PATH, headers=_handshake(receiver.member)) as stream,
    ):
        stream.send_text("consensus")
        with pytest.raises(WebSocketDisconnect) as closed:
            stream.receive_bytes()
        assert closed.value.code == POLICY_VIOLATION


def test_a_stream_is_refused_without_an_admitted_nodes_fresh_signature(
    receiver: Receiver,
) -> None:
    stranger = new_identity("stranger")
    signed = _handshake(receiver.member)
    refused = {
        "unsigned": {},
        "a stranger": _handshake(stranger),
        "signed for another path": _handshake(receiver.member, "/p2p/txs"),
        "malformed": {PEER_HEADER: "ehrchain-node garbage"},
    }
    with TestClient(receiver.app) as client:
        for why, headers in refused.items():
            with (
                pytest.raises(WebSocketDisconnect) as closed,
                client.websocket_connect(STREAM_PATH, headers=headers),
            ):
                pass
            assert closed.value.code == POLICY_VIOLATION, why
        with client.websocket_connect(STREAM_PATH, headers=signed) as stream:
            stream.send_bytes(_frame(b"consensus", b"m1"))
            wait_for(lambda: receiver.consensus == [[b"m1"]])
        with (  # the same handshake again is a replay
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect(STREAM_PATH, headers=signed),
        ):
            pass
        assert closed.value.code == POLICY_VIOLATION
    assert receiver.consensus == [[b"m1"]]


# -- the sending node -----------------------------------------------------------------


class StubStream:
    def __init__(self, peer: StreamingPeer) -> None:
        self.peer = peer
        self.closed = False

    def send(self, kind: str, items: Sequence[bytes]) -> None:
        if self.peer.break_next:
            self.peer.break_next = False
            self.closed = True
            raise PeerError(self.peer.url, 0, "stream_closed", "ConnectionClosed")
        self.peer.frames.append((kind, list(items)))

    def close(self) -> None:
        self.closed = True


class StreamingPeer:
    """A peer client that opens stub streams (or cannot, while ``refuse`` is set) and
    records frames and requests."""

    url = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.frames: list[tuple[str, list[bytes]]] = []
        self.requests: list[tuple[str, list[bytes]]] = []
        self.opened: list[StubStream] = []
        self.refuse = False
        self.break_next = False

    def stream(self) -> StubStream:
        if self.refuse:
            raise PeerError(self.url, 0, "no_stream", "ConnectionRefusedError")
        self.opened.append(StubStream(self))
        return self.opened[-1]

    def push_txs(self, items: Sequence[bytes]) -> None:
        self.requests.append(("txs", list(items)))

    def push_block(self, data: bytes) -> None:
        self.requests.append(("block", [data]))

    def push_consensus(self, data: bytes) -> None:
        self.requests.append(("consensus", [data]))

    def push_consensus_batch(self, items: Sequence[bytes]) -> None:
        self.requests.append(("consensus", list(items)))


def test_a_lane_sends_batches_on_its_streams_and_as_requests_when_one_breaks() -> None:
    peer = StreamingPeer()
    lane = _Lane(cast(PeerClient, peer), 100)
    try:
        lane.put([(TX, b"t1"), (TX, b"t2")])
        wait_for(lambda: lane.sent == 2)
        lane.put([(CONSENSUS, b"m1")])
        wait_for(lambda: lane.sent == 3)
        lane.put([(BLOCK, b"b1")])
        wait_for(lambda: lane.sent == 4)
        assert sorted(peer.frames) == [
            ("block", [b"b1"]),
            ("consensus", [b"m1"]),
            ("txs", [b"t1", b"t2"]),
        ]
        assert len(peer.opened) == 2  # one stream per sender thread
        assert peer.requests == []
        assert lane.streamed == 4

        peer.break_next = True
        lane.put([(CONSENSUS, b"m2")])  # its frame fails: it goes as a request
        wait_for(lambda: lane.sent == 5)
        assert peer.requests == [("consensus", [b"m2"])]
        lane.put([(CONSENSUS, b"m3")])  # on a new stream
        wait_for(lambda: lane.sent == 6)
        assert peer.frames[-1] == ("consensus", [b"m3"])
        assert len(peer.opened) == 3
    finally:
        lane.stop()
    assert all(stream.closed for stream in peer.opened)


def test_a_lane_without_a_stream_sends_requests_and_tries_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gossip_module, "STREAM_RETRY_S", 0.3)
    peer = StreamingPeer()
    peer.refuse = True
    lane = _Lane(cast(PeerClient, peer), 100)
    try:
        lane.put([(CONSENSUS, b"m1")])
        wait_for(lambda: lane.sent == 1)
        peer.refuse = False
        lane.put([(CONSENSUS, b"m2")])  # within the retry pause: no new attempt
        wait_for(lambda: lane.sent == 2)
        assert peer.requests == [("consensus", [b"m1"]), ("consensus", [b"m2"])]
        assert peer.opened == []
        threading.Event().wait(0.35)
        lane.put([(CONSENSUS, b"m3")])
        wait_for(lambda: lane.sent == 3)
        assert peer.frames == [("consensus", [b"m3"])]
    finally:
        lane.stop()
