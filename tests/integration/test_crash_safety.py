"""kill -9 a real process in the middle of committing blocks; the ledger must stay whole.

A separate Python process (``crash_writer.py``) commits deterministic blocks
to a real ledger file; the test SIGKILLs it at seeded random moments, reopens
the file and checks that the head is a complete block, every block up to it
has all its rows, nothing of a later block exists, every block the writer
reported as committed survived, and the state is exactly the one the
deterministic writes give for that head.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from ehrchain.core.block import GENESIS_PARENT, check_body
from ehrchain.storage import Ledger

WRITER = Path(__file__).with_name("crash_writer.py")
ITERATIONS = 10
SEED = 20_240_601


def load_writer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_writer", WRITER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_and_kill(path: Path, delay_s: float) -> int:
    """Start the writer, SIGKILL it after ``delay_s``; return the last height it
    reported as committed (-1 if none)."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready.startswith("ready"), proc.communicate(timeout=30)[1]
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    heights = [int(line.split()[1]) for line in out.splitlines() if line.startswith("committed")]
    return max(heights, default=int(ready.split()[1]))


def check_rows(path: Path, writer: ModuleType, head: int) -> None:
    """Per-height row counts match the deterministic block; nothing lies above the head."""
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for table, expected in (
            ("txs", writer.tx_count),
            ("events", writer.tx_count),
            ("undo", lambda h: len(writer.writes_for(h))),
        ):
            counts = dict(
                conn.execute(f"SELECT height, count(*) FROM {table} GROUP BY height").fetchall()  # noqa: S608
            )
            assert counts == {h: expected(h) for h in range(head + 1)}, table


def check_chain(ledger: Ledger, writer: ModuleType, head: int) -> None:
    """Every block links to its parent, holds all its transactions, and its events."""
    prev = GENESIS_PARENT
    for height in range(head + 1):
        block = ledger.block_at(height)
        assert block is not None
        check_body(block)
        assert block.header.prev_hash == prev
        assert len(block.txs) == writer.tx_count(height)
        assert [t.payload for t in block.txs] == [
            {"h": height, "i": i} for i in range(writer.tx_count(height))
        ]
        assert ledger.tx_ids_of_block(height) == [t.tx_id for t in block.txs]
        prev = block.hash


@pytest.mark.slow
def test_sigkill_during_commits_leaves_a_complete_prefix(tmp_path: Path) -> None:
    writer = load_writer()
    rng = random.Random(SEED)
    path = tmp_path / "ledger.sqlite"
    model: dict[str, bytes] = {}
    applied = -1
    for _ in range(ITERATIONS):
        reported = run_and_kill(path, rng.uniform(0.05, 0.6))
        with Ledger.open(path) as ledger:
            head_row = ledger.head()
            assert head_row is not None
            head = head_row.height
            assert head >= reported, "a block the writer saw committed was lost"
            assert head >= applied
            check_chain(ledger, writer, head)
            for height in range(applied + 1, head + 1):
                for key, value in writer.writes_for(height).items():
                    if value is None:
                        model.pop(key, None)
                    else:
                        model[key] = value
            applied = head
            assert dict(ledger.iter_state()) == model
            assert ledger.get_state("head") == b"%d" % head
        check_rows(path, writer, head)
    assert applied >= ITERATIONS, "the writer made too little progress to test anything"
