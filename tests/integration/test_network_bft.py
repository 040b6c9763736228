"""Four BFT validators as real processes: the story through every node, a crash under load.

``network up --consensus bft`` semantics through ``network_up``: four nodes, all
validators (n = 4, f = 1, quorum 3). The patient story's steps go to the nodes
in turn (blobs and transactions replicate to the proposer, whichever it is).
Then, while a client keeps writing, one validator is killed with SIGKILL: the
other three keep deciding blocks. Restarted, it catches up to the identical
head, and all four ledgers verify from genesis.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from ehrchain.core import tx as txmod
from ehrchain.crypto.keystore import KdfParams, load_identity
from ehrchain.node.network import Network, network_up
from ehrchain.node.verify import verify_data_dir
from network_nodes import PASSWORD, free_ports, head, wait_same_head
from story import HttpNode, ReadResult, Story, build_story

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class EveryNode:
    """The story's phases through the nodes in turn: each phase (up to ``seal``) uses one node.

    One sender's transactions go to one node within a phase: a node refuses a
    sequence number it has not reached yet, so a client keeps its writes in order.
    ``seal`` waits until every node has committed the phase.
    """

    def __init__(self, urls: Sequence[str], chain_id: str) -> None:
        self.chain_id = chain_id
        self.nodes = [BftNode(url, chain_id) for url in urls]
        self._turn = itertools.cycle(self.nodes)
        self.current = next(self._turn)
        self.used: set[str] = set()
        self._unsealed: list[bytes] = []

    def submit(self, txs: Sequence[txmod.Transaction]) -> None:
        self.current.submit(txs)
        self.used.add(self.current.url)
        self._unsealed.extend(t.tx_id for t in txs)

    def seal(self) -> None:
        for node in self.nodes:
            for tx_id in self._unsealed:
                node.position(tx_id, wait=20)
            node._unsealed.clear()
        self._unsealed.clear()
        self.current = next(self._turn)

    def put_blob(self, blob: bytes) -> str:
        return self.current.put_blob(blob)

    def readers(
        self, patient: str, category: str, author: str, record_id: str
    ) -> tuple[int, dict[str, bytes]]:
        return self.current.readers(patient, category, author, record_id)

    def read(self, tx: txmod.Transaction) -> ReadResult:
        self._unsealed.append(tx.tx_id)
        self.used.add(self.current.url)
        return self.current.read(tx)

    def position(self, tx_id: bytes) -> tuple[int, int]:
        return self.nodes[0].position(tx_id, wait=20)


class BftNode(HttpNode):
    """Under BFT nobody mines: ``seal`` waits for the validators' decision."""

    def seal(self) -> None:
        for tx_id in self._unsealed:
            self.position(tx_id, wait=20)
        self._unsealed.clear()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    started = network_up(
        tmp_path / "net", 4, "bft", free_ports(4), password=PASSWORD, kdf=KdfParams.FAST_FOR_TESTS
    )
    try:
        yield started
    finally:
        started.stop()


class Load:
    """A client writing audited reads at one node until stopped; counts what committed."""

    def __init__(self, story: Story, url: str) -> None:
        self.node = BftNode(url, story.chain_id)
        self.story = story
        self.committed = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        _, okafor = self.story.providers
        record = self.story.record("Observation")
        payload = {"record_id": record.record_id, "version": record.version}
        while not self._stop.is_set():
            txs = [self.story.sign(okafor, "record.read", payload) for _ in range(10)]
            try:
                self.node.submit(txs)
                self.node.seal()
            except (httpx.HTTPError, AssertionError) as exc:
                self.errors.append(repr(exc))
                return
            self.committed += len(txs)


def test_four_validators_story_crash_under_load_and_rejoin(network: Network) -> None:
    urls = network.urls
    root = network.root
    admin = load_identity(root / "admin.key", PASSWORD)
    validator = load_identity(root / "node-0" / "keys" / "node.key", PASSWORD)
    every = EveryNode(urls, network.chain_id)
    story = build_story(every, admin, validator)
    assert set(story.reads) == {"read okafor Observation", "read ada discharge-summary"}
    assert every.used == set(urls)
    wait_same_head(urls)

    load = Load(story, urls[1])
    load.start()
    try:
        victim = network.processes[3]
        before_kill = head(urls[0])[0]
        victim.stop(signal.SIGKILL)
        survivors = urls[:3]
        # The three survivors (a quorum of 3 out of 4) keep deciding blocks.
        reached = _wait_height(survivors, before_kill + 5)
        assert reached >= before_kill + 5
        victim.start()
        _wait_height(survivors, reached + 3)
    finally:
        load.stop()
    assert not load.errors, load.errors
    assert load.committed > 0

    final = wait_same_head(urls, timeout_s=60)
    assert final[0] > before_kill
    network.stop()
    for process in network.processes:
        report = verify_data_dir(process.data_dir)
        assert report.ok, (process.data_dir.name, report.first_problem)
        assert report.blocks == final[0] + 1


def _wait_height(urls: Sequence[str], target: int, timeout_s: float = 60.0) -> int:
    """Poll until every node in ``urls`` is at ``target`` or above; their lowest height."""
    deadline = time.monotonic() + timeout_s
    lowest = -1
    while time.monotonic() < deadline:
        lowest = min(head(u)[0] for u in urls)
        if lowest >= target:
            return lowest
        time.sleep(0.1)
    raise AssertionError(f"nodes stayed below height {target} (lowest {lowest})")
