"""``ehrchain network up --detach``, ``network status`` and ``network down`` on real processes.

Three nodes of the embedded engine: node-0 seals, node-1 and node-2 are
followers admitted on-chain. A transaction sent to a follower is forwarded to
the validator and its block reaches every node; ``network down`` stops the
processes by the pids ``up`` recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import load_identity
from ehrchain.node.settings import PASSWORD_ENV
from network_nodes import PASSWORD, free_ports, wait_same_head

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def ehrchain(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ehrchain.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_network_up_status_down(tmp_path: Path) -> None:
    root = tmp_path / "net"
    base = free_ports(3)
    up = ehrchain(
        "network", "up", "--nodes", "3", "--consensus", "solo",
        "--base-port", str(base), "--data-dir", str(root), "--detach",
    )  # fmt: skip
    manifest = json.loads((root / "network.json").read_text()) if root.exists() else {}
    pids = [n["pid"] for n in manifest.get("nodes", [])]
    try:
        assert up.returncode == 0, up.stderr + up.stdout
        urls = [n["url"] for n in manifest["nodes"]]
        for url in urls:
            assert url in up.stdout
        assert all(isinstance(pid, int) and alive(pid) for pid in pids)

        shown = ehrchain("network", "status", "--data-dir", str(root))
        assert shown.returncode == 0, shown.stderr
        assert "different heads" not in shown.stdout
        # `ehrchain status` from one node shows every node it can reach through peers.
        one = ehrchain("status", "--node", urls[0])
        assert one.returncode == 0, one.stderr
        rows = [line for line in one.stdout.splitlines() if line.strip().startswith("127.0.0.1:")]
        assert {row.split()[0] for row in rows} == {u.removeprefix("http://") for u in urls}
        assert len({row.split()[2] for row in rows}) == 1  # one head hash

        # A write sent to a follower is forwarded to node-0 and committed everywhere.
        admin = load_identity(root / "admin.key", PASSWORD)
        with EhrClient(urls[2]) as client:
            sent = Actor(admin, client).admit_hospital("h-x", "Hospital X", new_identity("x"))
        assert sent.committed
        height, _ = wait_same_head(urls)
        assert height == sent.height
    finally:
        down = ehrchain("network", "down", "--data-dir", str(root))
    assert down.returncode == 0, down.stderr
    assert "stopped 3 node(s)" in down.stdout
    assert not any(alive(pid) for pid in pids if isinstance(pid, int))
