"""Content-addressed blob store: encrypted record blobs as files named by their CID.

A blob lives at ``root/<shard>/<cid>`` where the shard is the two base32
characters before the last one of the CID (the last carries padding bits, the
leading ``bafkrei`` is the same for every id), giving 1,024 evenly filled
directories. Writes go to a temporary file in the shard and are renamed over
the final name, so a reader sees either no file or the whole blob. Durability
matches the ledger's: by default a stored blob survives the node process being
killed (the kernel has it); with ``durable=True`` the file and its directory are
fsynced before ``put`` returns, so it also survives power loss, like the ledger's
``synchronous=FULL``. Every read re-hashes the bytes against the CID, so a
flipped bit on disk is reported, never returned.

The store only ever sees ciphertext; it gives the bytes no meaning. Content ids
are validated before they are turned into paths, so no id can name a file
outside the store (``core.cid.InvalidCid`` is raised for a malformed id).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from ehrchain.core import cid as cidmod
from ehrchain.core.types import Cid
from ehrchain.storage.errors import BlobCorrupt, BlobNotFound, BlobTooLarge

MAX_BLOB_SIZE: Final = 32 * 1024 * 1024
"""Largest blob accepted (32 MiB): bounds the memory one read or write may take."""
_TEMP_PREFIX: Final = ".tmp-"


class BlobStore:
    """Blobs stored as files under ``root``, named and checked by content id."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.durable = durable
        self._shards: set[str] = set()

    def path_of(self, cid: str) -> Path:
        """Where the blob ``cid`` is (or would be) stored."""
        valid = cidmod.parse_cid(cid)
        return self.root / valid[-3:-1] / valid

    def put(self, data: bytes) -> Cid:
        """Store ``data`` and return its content id; storing the same bytes again
        is a no-op, and repairs the file if the stored copy was damaged."""
        if len(data) > MAX_BLOB_SIZE:
            raise BlobTooLarge(f"blob of {len(data)} bytes exceeds {MAX_BLOB_SIZE}")
        cid = cidmod.cid_of(data)
        path = self.path_of(cid)
        if path.exists() and self._intact(cid):
            return cid
        self._ensure_shard(path.parent)
        temp = path.parent / f"{_TEMP_PREFIX}{cid}-{threading.get_ident()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                if self.durable:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if self.durable:
            _fsync_dir(path.parent)
        return cid

    def _ensure_shard(self, shard: Path) -> None:
        if shard.name in self._shards:
            return
        if not shard.is_dir():
            shard.mkdir(exist_ok=True)
            if self.durable:
                _fsync_dir(self.root)
        self._shards.add(shard.name)

    def get(self, cid: str) -> bytes:
        """The blob's bytes, after checking they hash to ``cid``."""
        path = self.path_of(cid)
        try:
            with path.open("rb") as file:
                if os.fstat(file.fileno()).st_size > MAX_BLOB_SIZE:
                    raise BlobCorrupt(f"stored blob {cid} is larger than any valid blob")
                data = file.read()
        except FileNotFoundError as exc:
            raise BlobNotFound(f"no blob {cid}") from exc
        try:
            cidmod.check_cid(cid, data)
        except cidmod.BlobCorrupt as exc:
            raise BlobCorrupt(f"stored blob {cid} does not match its content id") from exc
        return data

    def has(self, cid: str) -> bool:
        """Whether a file for ``cid`` exists (its bytes are checked only by ``get``)."""
        return self.path_of(cid).is_file()

    def size(self, cid: str) -> int:
        """Size in bytes of the stored file for ``cid``."""
        try:
            return self.path_of(cid).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFound(f"no blob {cid}") from exc

    def iter_cids(self) -> Iterator[Cid]:
        """Every stored content id, shard by shard in sorted order.

        Leftover temporary files of interrupted writes and stray files that are
        not content ids in their right shard are skipped.
        """
        for shard in sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir()):
            for name in sorted(os.listdir(self.root / shard)):
                if name.startswith(_TEMP_PREFIX) or name[-3:-1] != shard:
                    continue
                try:
                    yield cidmod.parse_cid(name)
                except cidmod.InvalidCid:
                    continue

    def _intact(self, cid: Cid) -> bool:
        try:
            self.get(cid)
        except (BlobNotFound, BlobCorrupt):
            return False
        return True


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
