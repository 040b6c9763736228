"""Seed 003's test scenarios with real node processes on loopback (embedded engine).

A is the chain's one validator, B a follower made from A's genesis file. B may
join only once the consortium admin has admitted its node key on-chain; then
``/register_with`` makes it sync and fully verify A's chain. Writes and reads
sent to B are forwarded to A and come back in A's blocks; blobs replicate both
ways by CID. B, stopped while A writes, catches up on restart, also after a
``kill -9`` in the middle of catching up; both ledgers then verify from genesis.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehrchain.node.verify import verify_data_dir
from network_nodes import Pair, head, make_pair, register_with, status, wait_same_head
from story import HttpNode, Story, WrittenRecord, build_story, fhir_examples

pytestmark = [pytest.mark.slow, pytest.mark.integration]


class FollowerNode(HttpNode):
    """A follower over HTTP: it does not seal, so ``seal`` waits for the validator's block."""

    def seal(self) -> None:
        for tx_id in self._unsealed:
            self.position(tx_id, wait=20)
        self._unsealed.clear()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    made = make_pair(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def test_seed003_register_sync_forward_stop_restart(pair: Pair) -> None:
    pair.a.start()
    story = build_story(HttpNode(pair.a.url, pair.chain_id), pair.admin, pair.validator)
    pair.b.start()

    # An unknown node cannot join: A refuses B's signed /register_node.
    refused = register_with(pair.b.url, pair.a.url)
    assert refused.status_code == 403, refused.text
    assert head(pair.b.url)[0] == 0

    # Admitted on-chain, B registers, syncs and verifies A's whole chain.
    pair.admit_b()
    joined = register_with(pair.b.url, pair.a.url)
    assert joined.status_code == 200, joined.text
    assert joined.json()["head_hash"] == head(pair.a.url)[1]
    assert status(pair.a.url)["peers"] == [pair.b.url]
    assert status(pair.b.url)["peers"] == [pair.a.url]

    # A read at B is served from B's replicated blob store; its audit tx reaches A's chain.
    _, okafor = story.providers
    at_b = FollowerNode(pair.b.url, pair.chain_id)
    story.node = at_b
    observation = story.record("Observation")
    assert story.read("b reads", okafor, observation) == observation.plaintext
    at_b.seal()
    assert story.node.position(story.txs["b reads"].tx_id) == HttpNode(
        pair.a.url, pair.chain_id
    ).position(story.txs["b reads"].tx_id)

    # A record written at B (blob stored at B, tx forwarded) is readable at A.
    written_at_b = _write(story, "Condition", at_b, "written at b")
    story.node = HttpNode(pair.a.url, pair.chain_id)
    assert story.read("a reads b's write", okafor, written_at_b) == written_at_b.plaintext
    story.node.seal()
    wait_same_head([pair.a.url, pair.b.url])

    # B is down while A writes; on restart B catches up to the identical head.
    pair.b.stop()
    written_at_a = _write(story, "MedicationRequest", story.node, "written while b was down")
    pair.b.start()
    wait_same_head([pair.a.url, pair.b.url])
    story.node = at_b
    assert story.read("b reads a's write", okafor, written_at_a) == written_at_a.plaintext
    at_b.seal()

    # kill -9 B while it is catching up on many blocks; the restarted B converges.
    before = head(pair.b.url)[0]
    pair.b.stop()
    story.node = HttpNode(pair.a.url, pair.chain_id)
    _many_blocks(story, blocks=80, per_block=40)
    target = head(pair.a.url)
    pair.b.start()
    height_at_kill = _kill_while_behind(pair, before, target[0])
    assert before <= height_at_kill <= target[0]
    pair.b.start()
    assert wait_same_head([pair.a.url, pair.b.url]) == target

    pair.stop()
    for node in (pair.a, pair.b):
        report = verify_data_dir(node.data_dir)
        assert report.ok, report.first_problem
    assert verify_data_dir(pair.b.data_dir).blocks == verify_data_dir(pair.a.data_dir).blocks


def _write(story: Story, resource: str, node: HttpNode, label: str) -> WrittenRecord:
    story.node = node
    chen, _ = story.providers
    ada, _ = story.patients
    story.write_fhir(label, chen, ada, fhir_examples()[resource])
    node.seal()
    return story.record(label)


def _many_blocks(story: Story, *, blocks: int, per_block: int) -> None:
    """``blocks`` blocks at A, each of ``per_block`` audited reads (record.read txs)."""
    _, okafor = story.providers
    observation = story.record("Observation")
    payload = {"record_id": observation.record_id, "version": observation.version}
    node = story.node
    assert isinstance(node, HttpNode)
    for _ in range(blocks):
        txs = [story.sign(okafor, "record.read", payload) for _ in range(per_block)]
        node.submit(txs)
        node.client.post("/mine").raise_for_status()
        node._unsealed.clear()
    node.position(txs[-1].tx_id, wait=20)


def _kill_while_behind(pair: Pair, before: int, target: int) -> int:
    """SIGKILL B as soon as it is seen past ``before`` (mid catch-up), or once caught up."""
    deadline = time.monotonic() + 30
    height = head(pair.b.url)[0]
    while height == before and time.monotonic() < deadline:
        height = head(pair.b.url)[0]
    pair.b.stop(signal.SIGKILL)
    return height
