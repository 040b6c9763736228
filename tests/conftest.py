"""Shared fixtures: real node processes on loopback with fresh data directories."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.node.setup import init_node

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeProcess:
    url: str
    chain_id: str
    admin: Identity
    validator: Identity
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def start(self) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.process = spawn_node(self.data_dir, port, self.log_path)
        wait_ready(self.url, self.process, self.log_path)


def spawn_node(data_dir: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "EHRCHAIN_NODE_PASSWORD": PASSWORD}
    log = log_path.open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ehrchain.node.server",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"node exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"node did not start:\n{log_path.read_text()[-3000:]}")


def start_node(tmp: Path, chain_id: str = "ehrchain-test") -> NodeProcess:
    data_dir = tmp / "node"
    port = free_port()
    result = init_node(
        data_dir,
        password=PASSWORD,
        chain_id=chain_id,
        port=port,
        kdf=KdfParams.FAST_FOR_TESTS,
        timestamp_ms=1_700_000_000_000,
    )
    log_path = tmp / "node-process.log"
    url = f"http://127.0.0.1:{port}"
    process = spawn_node(data_dir, port, log_path)
    node = NodeProcess(url, chain_id, result.admin, result.validator, data_dir, process, log_path)
    try:
        wait_ready(url, process, log_path)
    except Exception:
        node.stop(signal.SIGKILL)
        raise
    return node


@pytest.fixture
def node_server(tmp_path: Path) -> Iterator[NodeProcess]:
    """A real node process on a free loopback port with a fresh data directory."""
    node = start_node(tmp_path)
    try:
        yield node
    finally:
        node.stop()
