"""A follower's tampered ledger is caught by verify and rebuilt from a peer (real processes, CLI).

B syncs the story from A, is stopped, and one byte of a stored transaction is
changed on disk. ``verify`` names the block; ``ehrchain node rebuild`` refuses
while B runs, then (B stopped) sets the damaged ledger aside, re-verifies A's
chain block by block and refetches the blobs; B then verifies, restarts at
A's head and serves a signed read. ``ehrchain network status`` shows both nodes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehrchain.node.settings import PASSWORD_ENV
from ehrchain.node.verify import verify_data_dir
from network_nodes import PASSWORD, Pair, make_pair, register_with, wait_same_head
from story import HttpNode, build_story

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    made = make_pair(tmp_path, "ehrchain-rebuild")
    try:
        yield made
    finally:
        made.stop()


def ehrchain(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "ehrchain.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def tamper_first_tx(ledger: Path) -> None:
    """Flip one byte inside the stored bytes of the first transaction of block 1."""
    with sqlite3.connect(ledger) as conn:
        (data,) = conn.execute("SELECT data FROM txs WHERE height = 1 AND idx = 0").fetchone()
        changed = bytes(data[:-10]) + bytes([data[-10] ^ 0x01]) + bytes(data[-9:])
        conn.execute("UPDATE txs SET data = ? WHERE height = 1 AND idx = 0", (changed,))


def test_tampered_ledger_is_detected_and_rebuilt_from_a_peer(pair: Pair) -> None:
    pair.a.start()
    story = build_story(HttpNode(pair.a.url, pair.chain_id), pair.admin, pair.validator)
    pair.admit_b()
    pair.b.start()
    assert register_with(pair.b.url, pair.a.url).status_code == 200
    head = wait_same_head([pair.a.url, pair.b.url])

    shown = ehrchain("network", "status", "--node", pair.a.url)
    assert shown.returncode == 0, shown.stderr
    assert pair.a.url.removeprefix("http://") in shown.stdout
    assert pair.b.url.removeprefix("http://") in shown.stdout

    refused = ehrchain("node", "rebuild", "--data-dir", str(pair.b.data_dir), "--from", pair.a.url)
    assert refused.returncode == 1, refused.stdout
    assert "stop the node first" in refused.stderr

    pair.b.stop()
    ledger = pair.b.data_dir / "ledger.sqlite"
    tamper_first_tx(ledger)
    report = verify_data_dir(pair.b.data_dir)
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.startswith("block 1")

    rebuilt = ehrchain("node", "rebuild", "--data-dir", str(pair.b.data_dir), "--from", pair.a.url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert list((pair.b.data_dir / "quarantine").glob("ledger-*.sqlite"))
    after = verify_data_dir(pair.b.data_dir)
    assert after.ok, after.first_problem
    assert after.blocks == head[0] + 1
    assert after.blobs == len(story.records)

    pair.b.start()
    assert wait_same_head([pair.a.url, pair.b.url]) == head
    _, okafor = story.providers
    story.node = HttpNode(pair.b.url, pair.chain_id)
    observation = story.record("Observation")
    assert story.read("read after rebuild", okafor, observation) == observation.plaintext
