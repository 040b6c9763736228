"""How long storing one 64 KiB blob takes in three layouts, in this process alone.

Usage: .venv/bin/python benchmarks/blob_layouts.py [--blobs 4000] [--dir DIR]

- the blob store as it is (append-only pack files and an SQLite index);
- one file per blob in 1,024 shard directories (the store's layout until 2026-12-06);
- an SQLite table of blobs (WAL, batches of 32).

Each figure is wall time and system CPU per blob. The file-per-blob figure depends on
the file system's state (how many inodes were freed recently), so run it more than once.
DIR defaults to a new temporary directory, left behind on purpose: deleting thousands of
files just before the next run would slow that run's file creation.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ehrchain.core import cid as cidmod
from ehrchain.storage.blobs import BlobStore

BATCH = 32


def measure(label: str, count: int, work: Callable[[], None]) -> None:
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    work()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    system = (after.ru_stime - before.ru_stime) / count * 1e6
    print(f"{label:<22} {wall / count * 1e6:7.0f} us/blob wall, {system:6.0f} us system")


def pack_store(root: Path, blobs: Sequence[bytes]) -> None:
    store = BlobStore(root)
    try:
        for start in range(0, len(blobs), BATCH):
            store.put_many(blobs[start : start + BATCH])
    finally:
        store.close()


def file_per_blob(root: Path, blobs: Sequence[bytes]) -> None:
    for data in blobs:
        cid = cidmod.cid_of(data)
        shard = root / cid[-3:-1]
        shard.mkdir(parents=True, exist_ok=True)
        temp = shard / f".tmp-{cid}"
        temp.write_bytes(data)
        os.replace(temp, shard / cid)


def sqlite_table(root: Path, blobs: Sequence[bytes]) -> None:
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "blobs.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE blobs (cid TEXT PRIMARY KEY, data BLOB) WITHOUT ROWID")
    for start in range(0, len(blobs), BATCH):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO blobs VALUES (?, ?)",
            [(cidmod.cid_of(b), b) for b in blobs[start : start + BATCH]],
        )
        db.execute("COMMIT")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=4_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="ehrchain-blob-layouts-"))
    blobs = [os.urandom(64 * 1024 + 100) for _ in range(args.blobs)]
    print(f"{args.blobs} blobs of {len(blobs[0]):,} bytes under {base}")
    measure("pack store", args.blobs, lambda: pack_store(base / "packs", blobs))
    measure("file per blob", args.blobs, lambda: file_per_blob(base / "files", blobs))
    measure("sqlite table", args.blobs, lambda: sqlite_table(base / "table", blobs))


if __name__ == "__main__":
    main()
