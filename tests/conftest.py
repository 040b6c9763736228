"""Shared fixtures: real node processes on loopback with fresh data directories."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.node.process import NodeProcess, free_port
from ehrchain.node.setup import init_node

PASSWORD = "correct horse battery staple"


@dataclass
class RunningNode:
    """A started node process plus the genesis identities of its chain."""

    process: NodeProcess
    chain_id: str
    admin: Identity
    validator: Identity

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def data_dir(self) -> Path:
        return self.process.data_dir

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def start(self) -> None:
        self.process.start()


def start_node(tmp: Path, chain_id: str = "ehrchain-test") -> RunningNode:
    """Initialise a fresh single-validator data directory and start its node process."""
    port = free_port()
    result = init_node(
        tmp / "node",
        password=PASSWORD,
        chain_id=chain_id,
        port=port,
        kdf=KdfParams.FAST_FOR_TESTS,
    )
    process = NodeProcess(tmp / "node", port, PASSWORD, tmp / "node-process.log")
    node = RunningNode(process, chain_id, result.admin, result.validator)
    try:
        process.start()
    except Exception:
        process.kill()
        raise
    return node


@pytest.fixture
def node_server(tmp_path: Path) -> Iterator[RunningNode]:
    """A real node process on a free loopback port with a fresh data directory."""
    node = start_node(tmp_path)
    try:
        yield node
    finally:
        node.stop()
