"""Content-addressed blob store: encrypted record blobs appended to pack files, found by CID.

Blobs are never deleted (a record version is never deleted), so the store is
append-only: each blob's bytes are appended to the current pack file
``root/packs/<n>.pack`` and an index (``root/index.sqlite``, WAL) maps its CID
to pack, offset and size. Every read re-hashes the bytes against the CID, so a
flipped bit, a truncated pack or an index row pointing at the wrong bytes is
reported, never returned; storing the same bytes again is a no-op when the
stored copy is intact and appends a fresh copy (repointing the index) when not.

Why packs and not one file per blob: creating an inode per blob made the
kernel's inode allocator the largest single cost of storing records on the
benchmark machine (ext4 without a journal scans for recently deleted inodes on
every create); an append costs a copy into the page cache. See BENCHMARKS.md.

Crash safety: the bytes are appended before the index row is committed, so
after a kill the index only names bytes that were written; a torn tail is
never indexed and the next append goes after it. Durability matches the
ledger's: by default a stored blob survives the process being killed (the
kernel has it); with ``durable=True`` the pack is fsynced before the index
commits (``synchronous=FULL``), so it also survives power loss.

Writers take an exclusive ``flock`` on the pack directory per batch, so two
processes never interleave appends; readers take no lock. The store only
ever sees ciphertext. Content ids are validated before they are looked up.
A store written by older versions (one file per blob in 1,024 shard
directories) is imported into packs when opened.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ehrchain.core import cid as cidmod
from ehrchain.core.types import Cid
from ehrchain.storage.errors import BlobCorrupt, BlobNotFound, BlobTooLarge

MAX_BLOB_SIZE: Final = 32 * 1024 * 1024
"""Largest blob accepted (32 MiB): bounds the memory one read or write may take."""
PACK_LIMIT: Final = 256 * 1024 * 1024
"""A pack is closed to new blobs once it holds this many bytes."""
PAGE: Final = 1_000
"""Content ids read from the index per query when listing the store."""

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS blobs ("
    " cid TEXT PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " size INTEGER NOT NULL) WITHOUT ROWID"
)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a blob's bytes are: ``size`` bytes at ``offset`` in the file ``pack``."""

    pack: Path
    offset: int
    size: int


class BlobStore:
    """Blobs appended to pack files under ``root``, indexed and checked by content id."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        self.root = root
        self.durable = durable
        self._packs = root / "packs"
        self._packs.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            root / "index.sqlite", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._writer: tuple[int, int] | None = None
        """(pack number, fd opened for appending) once this store has written."""
        _import_shard_files(self)

    # -- writing -----------------------------------------------------------

    def put(self, data: bytes) -> Cid:
        """Store ``data`` and return its content id; storing the same bytes again
        is a no-op, and repairs the blob if the stored copy was damaged."""
        return self.put_many([data])[0]

    def put_many(self, items: Sequence[bytes]) -> list[Cid]:
        """Store several blobs with one lock, one index commit and (when durable)
        one fsync; their content ids in order."""
        for data in items:
            if len(data) > MAX_BLOB_SIZE:
                raise BlobTooLarge(f"blob of {len(data)} bytes exceeds {MAX_BLOB_SIZE}")
        cids = [cidmod.cid_of(data) for data in items]
        stored = self._indexed(cids)
        todo = {
            cid: data
            for cid, data in zip(cids, items, strict=True)
            if cid not in stored or not self._intact(cid)
        }
        if todo:
            with self._lock:
                self._append(todo)
        return cids

    def _append(self, todo: dict[Cid, bytes]) -> None:
        rows: list[tuple[str, int, int, int]] = []
        with _flock(self._packs):
            number, fd = self._pack_for_append()
            offset = os.fstat(fd).st_size
            for cid, data in todo.items():
                if offset >= PACK_LIMIT:
                    number, fd = self._next_pack(number)
                    offset = 0
                _write_all(fd, data)
                rows.append((cid, number, offset, len(data)))
                offset += len(data)
            if self.durable:
                os.fsync(fd)
            with self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?, ?)", rows)

    def _pack_for_append(self) -> tuple[int, int]:
        """The newest pack, opened for appending (another process may have added one)."""
        newest = max(_pack_numbers(self._packs), default=1)
        if self._writer is not None and self._writer[0] == newest:
            return self._writer
        return self._open_pack(newest)

    def _next_pack(self, number: int) -> tuple[int, int]:
        if self.durable and self._writer is not None:
            os.fsync(self._writer[1])
        return self._open_pack(number + 1)

    def _open_pack(self, number: int) -> tuple[int, int]:
        if self._writer is not None:
            os.close(self._writer[1])
            self._writer = None
        path = self._pack_path(number)
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if created and self.durable:
            _fsync_dir(self._packs)
        self._writer = (number, fd)
        return self._writer

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- reading -----------------------------------------------------------

    def get(self, cid: str) -> bytes:
        """The blob's bytes, after checking they hash to ``cid``."""
        where = self.locate(cid)
        if where.size > MAX_BLOB_SIZE:
            raise BlobCorrupt(f"stored blob {cid} is larger than any valid blob")
        try:
            fd = os.open(where.pack, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise BlobCorrupt(f"the pack holding blob {cid} is missing") from exc
        try:
            data = os.pread(fd, where.size, where.offset)
        finally:
            os.close(fd)
        try:
            cidmod.check_cid(cid, data)
        except cidmod.BlobCorrupt as exc:
            raise BlobCorrupt(f"stored blob {cid} does not match its content id") from exc
        return data

    def locate(self, cid: str) -> Location:
        """Where the blob ``cid`` is stored (raises BlobNotFound when it is not)."""
        valid = cidmod.parse_cid(cid)
        with self._lock:
            row = self._db.execute(
                "SELECT pack, offset, size FROM blobs WHERE cid = ?", (valid,)
            ).fetchone()
        if row is None:
            raise BlobNotFound(f"no blob {cid}")
        return Location(self._pack_path(int(row[0])), int(row[1]), int(row[2]))

    def has(self, cid: str) -> bool:
        """Whether ``cid`` is stored (its bytes are checked only by ``get``)."""
        try:
            self.locate(cid)
        except BlobNotFound:
            return False
        return True

    def size(self, cid: str) -> int:
        """Size in bytes of the stored blob ``cid``."""
        return self.locate(cid).size

    def iter_cids(self) -> Iterator[Cid]:
        """Every stored content id in sorted order, read from the index a page at a time."""
        after = ""
        while True:
            with self._lock:
                page = [
                    str(row[0])
                    for row in self._db.execute(
                        "SELECT cid FROM blobs WHERE cid > ? ORDER BY cid LIMIT ?", (after, PAGE)
                    )
                ]
            for cid in page:
                yield Cid(cid)
            if len(page) < PAGE:
                return
            after = page[-1]

    def set_aside(self, cid: str, directory: Path) -> Path:
        """Copy the stored bytes of a damaged blob into ``directory`` and forget
        the blob, so it is fetched again (the pack keeps its bytes: append-only)."""
        where = self.locate(cid)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"blob-{cid}"
        with where.pack.open("rb") as pack:
            pack.seek(where.offset)
            target.write_bytes(pack.read(min(where.size, MAX_BLOB_SIZE)))
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM blobs WHERE cid = ?", (cid,))
        return target

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                os.close(self._writer[1])
                self._writer = None
            self._db.close()

    def _pack_path(self, number: int) -> Path:
        return self._packs / f"{number:06d}.pack"

    def _indexed(self, cids: Sequence[Cid]) -> set[str]:
        """Which of ``cids`` the index names, a few hundred per query."""
        found: set[str] = set()
        for start in range(0, len(cids), PAGE):
            chunk = json.dumps(list(cids[start : start + PAGE]))
            with self._lock:
                rows = self._db.execute(
                    "SELECT cid FROM blobs WHERE cid IN (SELECT value FROM json_each(?))", (chunk,)
                )
                found.update(str(row[0]) for row in rows)
        return found

    def _intact(self, cid: Cid) -> bool:
        try:
            self.get(cid)
        except (BlobNotFound, BlobCorrupt):
            return False
        return True


def _pack_numbers(packs: Path) -> Iterator[int]:
    for name in os.listdir(packs):
        stem, dot, suffix = name.partition(".")
        if dot and suffix == "pack" and stem.isdigit():
            yield int(stem)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextlib.contextmanager
def _flock(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: str | Path) -> None:
    """Make a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _import_shard_files(store: BlobStore) -> None:
    """Move blobs of the one-file-per-blob layout (``root/<2 chars>/<cid>``) into
    packs. A file whose bytes do not match its name is left where it is."""
    for entry in os.scandir(store.root):
        if not entry.is_dir() or len(entry.name) != 2:
            continue
        for name in os.listdir(entry.path):
            path = Path(entry.path) / name
            try:
                cidmod.parse_cid(name)
                data = path.read_bytes()
                cidmod.check_cid(name, data)
            except (cidmod.InvalidCid, cidmod.BlobCorrupt, OSError):
                continue
            store.put(data)
            path.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(entry.path)
