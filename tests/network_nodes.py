"""Two real node processes of one chain: A, the embedded validator, and B, a follower.

A is made by ``init_node`` (its node key is the chain's only validator); B by
``node.network.init_member`` from A's genesis file, with its own node key.
B joins only after the consortium admin admits its node key on-chain. Helpers
wait for heads to match by polling, never by sleeping a fixed time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from ehrchain.client.actor import Actor as SdkActor
from ehrchain.client.http import EhrClient
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.node.network import init_member
from ehrchain.node.p2p import NetworkSettings
from ehrchain.node.process import NodeProcess, free_port
from ehrchain.node.process import free_ports as free_ports  # re-exported for the tests
from ehrchain.node.setup import init_node

PASSWORD = "correct horse battery staple"
FAST_SYNC = NetworkSettings(sync_interval_ms=300)


@dataclass
class Pair:
    chain_id: str
    a: NodeProcess
    b: NodeProcess
    admin: Identity
    validator: Identity
    """A's node key: the chain's one validator."""
    b_key: Identity

    def stop(self) -> None:
        self.b.stop()
        self.a.stop()

    def admit_b(self) -> None:
        """The consortium admin admits B's node key as a hospital's node (on-chain)."""
        with EhrClient(self.a.url) as client:
            SdkActor(self.admin, client).admit_hospital("hospital-b", "Hospital B", self.b_key)


def make_pair(tmp: Path, chain_id: str = "ehrchain-net") -> Pair:
    """Initialise A and B from one genesis (nothing started)."""
    port_a, port_b = free_port(), free_port()
    made = init_node(
        tmp / "a", password=PASSWORD, chain_id=chain_id, port=port_a, kdf=KdfParams.FAST_FOR_TESTS
    )
    genesis_json = (tmp / "a" / "genesis.json").read_text()
    member = init_member(
        tmp / "b",
        genesis_json,
        password=PASSWORD,
        port=port_b,
        kdf=KdfParams.FAST_FOR_TESTS,
        net=FAST_SYNC,
    )
    a = NodeProcess(tmp / "a", port_a, PASSWORD, tmp / "a.log")
    b = NodeProcess(tmp / "b", port_b, PASSWORD, tmp / "b.log")
    return Pair(chain_id, a, b, made.admin, made.validator, member.identity)


def status(url: str) -> dict[str, object]:
    answer = httpx.get(f"{url}/v1/status", timeout=10)
    answer.raise_for_status()
    result: dict[str, object] = answer.json()
    return result


def head(url: str) -> tuple[int, str]:
    s = status(url)
    return int(str(s["height"])), str(s["head_hash"])


def wait_same_head(urls: Sequence[str], timeout_s: float = 45.0) -> tuple[int, str]:
    """Poll until every node reports the same head; return it (fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    heads: list[tuple[int, str]] = []
    while time.monotonic() < deadline:
        heads = [head(u) for u in urls]
        if len(set(heads)) == 1:
            return heads[0]
        time.sleep(0.1)
    raise AssertionError(f"nodes did not reach one head: {heads}")


def register_with(url: str, peer: str) -> httpx.Response:
    return httpx.post(f"{url}/register_with", json={"url": peer}, timeout=60)
