"""Crash-test writer: commits deterministic blocks to a ledger file until it is killed.

Run as ``python crash_writer.py LEDGER_FILE``. It resumes after the ledger's
head, prints ``ready <height>`` once the file is open, then commits blocks as
fast as it can, printing ``committed <height>`` after each commit returns. It
stops by itself after ``MAX_SECONDS`` so a forgotten process cannot linger.
The transactions, state writes and events of every height are pure functions
of the height, so the test can recompute exactly what a ledger with a given
head must hold.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Final

from ehrchain.core import tx as txmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.block import (
    GENESIS_PARENT,
    MAGIC,
    VERSION,
    Block,
    BlockHeader,
    tx_list_size,
    tx_root,
)
from ehrchain.core.types import ChainId
from ehrchain.crypto.signing import SigningKey
from ehrchain.storage import Event, Ledger

CHAIN: Final = "crash-test"
KEY: Final = SigningKey(hashlib.sha256(b"crash-test writer").digest())
SENDER: Final = address_from_public_key(KEY.public_key)
KEYS: Final = 600
WRITES_PER_BLOCK: Final = 300
MAX_TXS: Final = 4
MAX_SECONDS: Final = 60.0


def tx_count(height: int) -> int:
    return height % MAX_TXS + 1


def writes_for(height: int) -> dict[str, bytes | None]:
    """Rewrites a sliding window of keys; every third block also removes some."""
    writes: dict[str, bytes | None] = {"head": b"%d" % height}
    for j in range(WRITES_PER_BLOCK):
        writes[f"k/{(height * 37 + j) % KEYS:04d}"] = b"%d:%d;" % (height, j) * 8
    if height % 3 == 0:
        for j in range(10):
            writes[f"k/{(height * 11 + j * 53) % KEYS:04d}"] = None
    return writes


def subject_of(height: int, idx: int) -> str:
    return f"subject-{(height + idx) % 5}"


def txs_for(height: int) -> tuple[txmod.Transaction, ...]:
    return tuple(
        txmod.build("test.write", CHAIN, SENDER, height * MAX_TXS + i, {"h": height, "i": i}, KEY)
        for i in range(tx_count(height))
    )


def block_for(height: int, parent: BlockHeader | None) -> Block:
    txs = txs_for(height)
    header = BlockHeader(
        MAGIC,
        VERSION,
        ChainId(CHAIN),
        tx_list_size(txs),
        len(txs),
        height,
        GENESIS_PARENT if parent is None else parent.hash,
        tx_root(txs),
        1_000_000 + height,
        0,
        0,
        hashlib.sha256(b"root %d" % height).digest(),
        SENDER,
    )
    return Block(header, txs)


def events_for(block: Block) -> list[Event]:
    height = block.header.height
    return [
        Event(subject_of(height, i), "test.write", tx.sender, f"r{height}", i, tx.tx_id)
        for i, tx in enumerate(block.txs)
    ]


def main(path: Path) -> None:
    deadline = time.monotonic() + MAX_SECONDS
    with Ledger.open(path) as ledger:
        head = ledger.head()
        parent = None if head is None else ledger.header_at(head.height)
        print(f"ready {-1 if head is None else head.height}", flush=True)
        while time.monotonic() < deadline:
            height = 0 if parent is None else parent.height + 1
            block = block_for(height, parent)
            ledger.commit_block(block, writes_for(height), events_for(block))
            print(f"committed {height}", flush=True)
            parent = block.header


if __name__ == "__main__":
    main(Path(sys.argv[1]))
