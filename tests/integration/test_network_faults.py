"""Four BFT validators as real processes under faults: two down, a 2/2 partition, a double-signer.

n = 4, f = 1, quorum 3. Every node sends its peer requests through its own
egress proxy (``partition_proxy.Egress``), so the test can cut the links
between two halves while all four processes keep running.

- Two validators down: the other two commit nothing and do not diverge;
  when one returns the three commit what was waiting, and the fourth catches up.
- A 2/2 partition: neither half reaches a quorum, so neither commits; the
  heads stay equal. Healed, both halves' transactions commit on one chain.
- A validator signs two different prevotes at one height: an honest node
  catches it and records the evidence on chain (``validator.evidence``),
  and every node serves it from ``/v1/evidence``.

"Nothing committed" is observed over a fixed window (nodes are given time to
misbehave); everything else waits by polling.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator, Sequence

import httpx
import pytest

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.consensus.messages import sign_prevote
from ehrchain.consensus.wire import encode_message
from ehrchain.core.identity import new_identity
from ehrchain.core.types import Address, BlockHash
from ehrchain.crypto.keystore import Identity, KdfParams, load_identity
from ehrchain.node.network import Network, network_up
from ehrchain.node.p2p import NetworkSettings
from ehrchain.node.peer_client import PeerClient
from ehrchain.node.verify import verify_data_dir
from network_nodes import PASSWORD, free_ports, head, wait_same_head
from partition_proxy import Egress

pytestmark = [pytest.mark.slow, pytest.mark.integration]

QUIET_WINDOW_S = 6.0
"""How long a node without a quorum is watched for commits it must not make."""


class Consortium:
    """The running network, its egress proxies and the people who write to it."""

    def __init__(self, network: Network, proxies: list[Egress], ports: list[int]) -> None:
        self.network = network
        self.proxies = proxies
        self.ports = ports
        self.urls = network.urls
        self.admin = load_identity(network.root / "admin.key", PASSWORD)
        self._clients: list[EhrClient] = []

    def node_key(self, i: int) -> Identity:
        return load_identity(self.network.root / f"node-{i}" / "keys" / "node.key", PASSWORD)

    def actor(self, identity: Identity, node: int) -> Actor:
        client = EhrClient(self.urls[node])
        self._clients.append(client)
        return Actor(identity, client, wait_s=60)

    def partition(self, *groups: Sequence[int]) -> None:
        """Cut every link between nodes of different groups (both directions)."""
        for group in groups:
            others = [self.ports[j] for j in range(len(self.ports)) if j not in group]
            for i in group:
                self.proxies[i].cut(others)

    def heal(self) -> None:
        for proxy in self.proxies:
            proxy.heal()

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    proxies = [Egress().start() for _ in range(4)]
    base = free_ports(4)
    network = network_up(
        tmp_path_factory.mktemp("faults") / "net",
        4,
        "bft",
        base,
        password=PASSWORD,
        kdf=KdfParams.FAST_FOR_TESTS,
        net_for=lambda i: NetworkSettings(sync_interval_ms=500, proxy=proxies[i].url),
    )
    made = Consortium(network, proxies, [base + i for i in range(4)])
    try:
        yield made
    finally:
        made.close()
        network.stop()
        for proxy in proxies:
            proxy.stop()
    for process in network.processes:
        report = verify_data_dir(process.data_dir)
        assert report.ok, (process.data_dir.name, report.first_problem)


def _admit(admin: Actor, name: str) -> tuple[bytes, Identity]:
    """The consortium admin admits a new hospital (a cheap valid write); its tx id."""
    hospital_admin = new_identity(f"admin-{name}", "hospital_admin")
    sent = admin.send(
        "hospital.admit",
        {"hospital_id": name, "name": f"Hospital {name}", "admin": _card(hospital_admin)},
        wait=False,
    )
    return sent.tx_id, hospital_admin


def _card(identity: Identity) -> dict[str, object]:
    return {
        "address": identity.address,
        "signing_key": identity.signing.public_key,
        "encryption_key": identity.encryption.public_key,
    }


def _committed(url: str, tx_id: bytes, wait_s: float = 60) -> int:
    """The height of the block that commits ``tx_id`` at ``url``; fails after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/v1/txs/{tx_id.hex()}", params={"wait": 5}, timeout=30)
        if answer.status_code == 200:
            return int(answer.json()["height"])
        assert answer.status_code == 404, answer.text
    raise AssertionError(f"{tx_id.hex()[:12]} not committed at {url} within {wait_s} s")


def _quiet(urls: Sequence[str], expected: tuple[int, str]) -> None:
    """Over the window, every node in ``urls`` stays at the ``expected`` head."""
    deadline = time.monotonic() + QUIET_WINDOW_S
    while time.monotonic() < deadline:
        for url in urls:
            assert head(url) == expected, f"{url} moved without a quorum"
        time.sleep(0.3)


def test_two_validators_down_no_commit_no_divergence_then_recovery(
    consortium: Consortium,
) -> None:
    urls = consortium.urls
    admin = consortium.actor(consortium.admin, 0)
    first, _ = _admit(admin, "before-crash")
    _committed(urls[0], first)
    before = wait_same_head(urls)

    down = consortium.network.processes[2:]
    for process in down:
        process.stop(signal.SIGKILL)
    waiting, _ = _admit(admin, "while-two-down")
    _quiet(urls[:2], before)

    down[0].start()  # three of four: a quorum again
    height = _committed(urls[0], waiting)
    assert _committed(urls[2], waiting) == height
    down[1].start()
    final = wait_same_head(urls, timeout_s=60)
    assert final[0] >= height


def test_partition_two_two_no_divergence_then_heals(consortium: Consortium) -> None:
    urls = consortium.urls
    admin = consortium.actor(consortium.admin, 0)
    admitted, hospital_admin = _admit(admin, "west")
    _committed(urls[2], admitted)
    west = consortium.actor(hospital_admin, 2)
    before = wait_same_head(urls)

    consortium.partition([0, 1], [2, 3])
    try:
        side_a, _ = _admit(admin, "during-partition")
        side_b = west.send(
            "patient.register", _card(new_identity("patient", "patient")), wait=False
        ).tx_id
        _quiet(urls, before)
        assert sum(p.refused for p in consortium.proxies) > 0  # the cut was exercised
    finally:
        consortium.heal()
    height_a = _committed(urls[3], side_a)
    height_b = _committed(urls[0], side_b)
    final = wait_same_head(urls, timeout_s=60)
    assert final[0] >= max(height_a, height_b) > before[0]


def test_double_signer_is_caught_and_its_evidence_recorded(consortium: Consortium) -> None:
    urls = consortium.urls
    byzantine = consortium.network.processes[3]
    byzantine.stop()  # its key now signs only what the test makes it sign
    key = consortium.node_key(3)
    height = head(urls[0])[0] + 1
    chain_id = consortium.network.chain_id
    votes = [
        sign_prevote(
            key.signing, Address(key.address), chain_id, height, 0, BlockHash(os.urandom(32))
        )
        for _ in range(2)
    ]
    with PeerClient(urls[0], key, chain_id) as as_node_3:
        for vote in votes:
            as_node_3.push_consensus(encode_message(vote))

    live = urls[:3]
    deadline = time.monotonic() + 60
    recorded: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(recorded) < len(live):
        recorded = [e for u in live for e in _evidence(u) if e["offender"] == key.address]
        time.sleep(0.3)
    assert len(recorded) == len(live), recorded
    assert {e["height"] for e in recorded} == {height}
    reporters = {str(e["reporter"]) for e in recorded}
    assert len(reporters) == 1
    assert reporters <= {consortium.node_key(i).address for i in range(3)}

    byzantine.start()
    wait_same_head(urls, timeout_s=60)
    assert _evidence(urls[3]) == _evidence(urls[0])


def _evidence(url: str) -> list[dict[str, object]]:
    with EhrClient(url) as client:
        return client.evidence()
