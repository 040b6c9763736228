"""The content-addressed blob store: atomic idempotent writes, checked reads, safe ids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrchain.core import cid as cidmod
from ehrchain.storage import (
    MAX_BLOB_SIZE,
    BlobCorrupt,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
)

MISSING = cidmod.cid_of(b"never stored")


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_put_returns_the_content_id_and_get_returns_the_bytes(store: BlobStore) -> None:
    data = b"\x00ciphertext\xff" * 100
    cid = store.put(data)
    assert cid == cidmod.cid_of(data)
    assert cid.startswith("bafkrei")
    assert store.get(cid) == data
    assert store.has(cid)
    assert store.size(cid) == len(data)


def test_a_blob_is_stored_once_in_its_shard(store: BlobStore) -> None:
    cid = store.put(b"same bytes")
    assert store.put(b"same bytes") == cid
    path = store.path_of(cid)
    assert stored_files(store.root) == [path]
    assert path.parent.parent == store.root
    assert path.name == cid
    assert path.parent.name == cid[-3:-1]


def test_the_empty_blob_is_a_blob(store: BlobStore) -> None:
    cid = store.put(b"")
    assert store.get(cid) == b""
    assert store.size(cid) == 0


def test_a_missing_blob_is_reported(store: BlobStore) -> None:
    assert not store.has(MISSING)
    with pytest.raises(BlobNotFound):
        store.get(MISSING)
    with pytest.raises(BlobNotFound):
        store.size(MISSING)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../../etc/passwd",
        "/etc/passwd",
        MISSING.upper(),
        MISSING[:-1],
        MISSING[:-2] + "/" + MISSING[-1],
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # dag-pb codec
    ],
)
def test_a_malformed_content_id_never_becomes_a_path(store: BlobStore, bad: str) -> None:
    for operation in (store.get, store.has, store.size, store.path_of):
        with pytest.raises(cidmod.InvalidCid):
            operation(bad)


def test_a_flipped_byte_on_disk_is_detected_on_read(store: BlobStore) -> None:
    data = bytes(range(256)) * 4
    cid = store.put(data)
    path = store.path_of(cid)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0x01
    path.write_bytes(bytes(damaged))

    with pytest.raises(BlobCorrupt, match=cid) as caught:
        store.get(cid)
    assert isinstance(caught.value, cidmod.BlobCorrupt)
    assert store.has(cid)

    assert store.put(data) == cid
    assert store.get(cid) == data


def test_a_truncated_or_oversized_file_is_detected(store: BlobStore) -> None:
    cid = store.put(b"0123456789")
    path = store.path_of(cid)
    path.write_bytes(b"01234")
    with pytest.raises(BlobCorrupt):
        store.get(cid)
    with path.open("r+b") as file:
        file.truncate(MAX_BLOB_SIZE + 1)
    with pytest.raises(BlobCorrupt, match="larger"):
        store.get(cid)


def test_a_blob_over_the_limit_is_refused_and_not_stored(store: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        store.put(bytes(MAX_BLOB_SIZE + 1))
    assert stored_files(store.root) == []


def test_iter_cids_lists_stored_blobs_and_skips_debris(store: BlobStore) -> None:
    cids = {store.put(b"blob %d" % i) for i in range(30)}
    some = sorted(cids)[0]
    shard = store.path_of(some).parent
    (shard / ".tmp-abandoned").write_bytes(b"half a write")
    (shard / "notes.txt").write_bytes(b"junk")
    misplaced = store.root / "zz" / some
    misplaced.parent.mkdir()
    misplaced.write_bytes(b"a copy in the wrong shard")

    listed = list(store.iter_cids())
    assert sorted(listed) == sorted(cids)
    assert len(listed) == len(set(listed))


def test_no_temporary_files_are_left_behind(store: BlobStore) -> None:
    for i in range(5):
        store.put(os.urandom(1000 + i))
    assert not [p for p in stored_files(store.root) if p.name.startswith(".tmp-")]


def test_a_new_store_on_an_existing_directory_sees_its_blobs(tmp_path: Path) -> None:
    cid = BlobStore(tmp_path / "b").put(b"kept")
    assert BlobStore(tmp_path / "b").get(cid) == b"kept"


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(store: BlobStore, data: bytes) -> None:
    cid = store.put(data)
    assert store.get(cid) == data
    cidmod.check_cid(cid, store.path_of(cid).read_bytes())
