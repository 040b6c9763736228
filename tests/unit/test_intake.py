"""Gossiped batches are queued, admitted in order on one thread, and bounded."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ehrchain.node.intake import PeerIntake


def test_batches_are_admitted_in_arrival_order() -> None:
    seen: list[list[bytes]] = []
    intake = PeerIntake(lambda items: seen.append(list(items)))
    intake.start()
    try:
        for i in range(5):
            assert intake.offer([bytes([i])] * (i + 1))
        assert intake.drain(5.0)
    finally:
        intake.stop()
    assert seen == [[bytes([i])] * (i + 1) for i in range(5)]


def test_a_full_queue_refuses_a_batch_and_takes_more_once_admitted() -> None:
    release = threading.Event()
    admitted: list[int] = []

    def slow(items: Sequence[bytes]) -> None:
        release.wait(5.0)
        admitted.append(len(items))

    intake = PeerIntake(slow, max_txs=10)
    intake.start()
    try:
        assert intake.offer([b"a"] * 6)
        assert intake.offer([b"b"] * 4)  # 10 queued or in progress: at the bound
        assert not intake.offer([b"c"])
        release.set()
        assert intake.drain(5.0)
        assert intake.offer([b"d"] * 10)
        assert intake.drain(5.0)
    finally:
        intake.stop()
    assert admitted == [6, 4, 10]


def test_a_failing_batch_does_not_stop_the_intake() -> None:
    admitted: list[bytes] = []

    def admit(items: Sequence[bytes]) -> None:
        if items[0] == b"bad":
            raise RuntimeError("boom")
        admitted.extend(items)

    intake = PeerIntake(admit)
    intake.start()
    try:
        intake.offer([b"bad"])
        intake.offer([b"good"])
        assert intake.drain(5.0)
    finally:
        intake.stop()
    assert admitted == [b"good"]


def test_a_stopped_intake_takes_nothing() -> None:
    intake = PeerIntake(lambda items: None)
    intake.start()
    intake.stop()
    assert not intake.offer([b"late"])
