"""Same-run hardware ceilings, so each benchmark figure can be read as a ratio.

This machine is shared and noisy; absolute rates swing between runs. Each
ceiling measures the irreducible work of one path with the same libraries the
node uses, on the same machine, minutes apart from the figure it is compared to.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ehrchain.core import cid as cidmod
from ehrchain.crypto import signing
from ehrchain.crypto.signing import SigningKey


@dataclass(frozen=True, slots=True)
class Ceilings:
    ed25519_verify_per_s: float
    sqlite_insert_per_s: float
    blob_store_per_s: float
    """64 KiB blobs hashed to a CID and appended to a pack file, per second."""

    @property
    def verify_and_persist_per_s(self) -> float:
        return verify_then_persist(self.ed25519_verify_per_s, self.sqlite_insert_per_s)


def verify_then_persist(verify_per_s: float, insert_per_s: float) -> float:
    """Verifying then persisting each transaction, one after the other on one core."""
    return 1.0 / (1.0 / verify_per_s + 1.0 / insert_per_s)


def _rate(count: int, work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def ed25519_verify_rate(count: int = 20_000) -> float:
    """Signature checks per second through the node's verify (pynacl/libsodium)."""
    key = SigningKey.generate()
    public = key.public_key
    messages = [os.urandom(200) for _ in range(256)]
    signatures = [key.sign(m) for m in messages]

    def work() -> None:
        for i in range(count):
            signing.verify(public, messages[i & 255], signatures[i & 255])

    return _rate(count, work)


def sqlite_insert_rate(count: int = 50_000, batch: int = 5_000, row_bytes: int = 250) -> float:
    """Transaction-like rows per second, inserted in batches into a WAL file."""
    with tempfile.TemporaryDirectory(prefix="ehrchain-ceiling-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "ceiling.sqlite", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE txs (tx_id BLOB PRIMARY KEY, height INTEGER, idx INTEGER,"
            " sender TEXT, kind TEXT, data BLOB)"
        )
        rows = [
            (
                os.urandom(32),
                i // batch,
                i % batch,
                "ehr1sender",
                "record.read",
                os.urandom(row_bytes),
            )
            for i in range(count)
        ]

        def work() -> None:
            for start in range(0, count, batch):
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?)", rows[start : start + batch]
                )
                conn.execute("COMMIT")

        rate = _rate(count, work)
        conn.close()
    return rate


def blob_store_rate(count: int = 2_000, size: int = 64 * 1024) -> float:
    """64 KiB blobs per second: CID computed and the bytes appended to one file
    (what the pack store does per blob, without its index)."""
    blobs = [os.urandom(size) for _ in range(64)]
    with (
        tempfile.TemporaryDirectory(prefix="ehrchain-ceiling-") as tmp,
        (Path(tmp) / "ceiling.pack").open("ab") as pack,
    ):

        def work() -> None:
            for i in range(count):
                data = blobs[i & 63]
                cidmod.cid_of(data)
                pack.write(data)

        return _rate(count, work)


def measure() -> Ceilings:
    return Ceilings(
        ed25519_verify_per_s=ed25519_verify_rate(),
        sqlite_insert_per_s=sqlite_insert_rate(),
        blob_store_per_s=blob_store_rate(),
    )
