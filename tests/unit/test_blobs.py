"""The content-addressed blob store: atomic idempotent writes, checked reads, safe ids."""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
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
from ehrchain.storage import blobs as blobs_module

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


def test_a_blob_is_stored_once(store: BlobStore) -> None:
    cid = store.put(b"same bytes")
    assert store.put(b"same bytes") == cid
    assert store.put_many([b"same bytes", b"same bytes"]) == [cid, cid]
    where = store.locate(cid)
    assert where.pack.stat().st_size == len(b"same bytes")
    assert where.offset == 0
    assert list(store.iter_cids()) == [cid]


def test_blobs_are_appended_to_one_pack(store: BlobStore) -> None:
    items = [os.urandom(100 + i) for i in range(10)]
    cids = store.put_many(items)
    places = [store.locate(cid) for cid in cids]
    assert {p.pack for p in places} == {places[0].pack}
    assert [p.offset for p in places] == [sum(len(b) for b in items[:i]) for i in range(10)]
    assert [store.get(cid) for cid in cids] == items


def test_a_full_pack_is_closed_and_the_next_one_started(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "PACK_LIMIT", 250)
    cids = store.put_many([os.urandom(100) for _ in range(7)])
    packs = [store.locate(cid).pack.name for cid in cids]
    assert packs == ["000001.pack"] * 3 + ["000002.pack"] * 3 + ["000003.pack"]
    assert [store.locate(cid).offset for cid in cids[3:6]] == [0, 100, 200]
    reopened = BlobStore(store.root)
    later = reopened.put(b"after reopening")
    assert reopened.locate(later).pack.name == "000003.pack"
    assert all(reopened.get(cid) for cid in cids)


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
    for operation in (store.get, store.has, store.size, store.locate):
        with pytest.raises(cidmod.InvalidCid):
            operation(bad)


def _damage(store: BlobStore, cid: str, at: int) -> None:
    where = store.locate(cid)
    with where.pack.open("r+b") as pack:
        pack.seek(where.offset + at)
        byte = pack.read(1)[0]
        pack.seek(where.offset + at)
        pack.write(bytes([byte ^ 0x01]))


def test_a_flipped_byte_on_disk_is_detected_on_read(store: BlobStore) -> None:
    data = bytes(range(256)) * 4
    cid = store.put(data)
    _damage(store, cid, 100)

    with pytest.raises(BlobCorrupt, match=cid) as caught:
        store.get(cid)
    assert isinstance(caught.value, cidmod.BlobCorrupt)
    assert store.has(cid)

    assert store.put(data) == cid
    assert store.get(cid) == data
    assert store.locate(cid).offset == len(data)  # a fresh copy, appended


def test_a_truncated_pack_or_a_wrong_index_row_is_detected(store: BlobStore) -> None:
    first = store.put(b"0123456789")
    second = store.put(b"abcdefghij")
    pack = store.locate(second).pack
    with pack.open("r+b") as file:
        file.truncate(15)
    with pytest.raises(BlobCorrupt):
        store.get(second)
    with sqlite3.connect(store.root / "index.sqlite") as db:
        db.execute("UPDATE blobs SET offset = 1 WHERE cid = ?", (first,))
    with pytest.raises(BlobCorrupt):
        store.get(first)
    with sqlite3.connect(store.root / "index.sqlite") as db:
        db.execute("UPDATE blobs SET size = ? WHERE cid = ?", (MAX_BLOB_SIZE + 1, first))
    with pytest.raises(BlobCorrupt, match="larger"):
        store.get(first)
    with sqlite3.connect(store.root / "index.sqlite") as db:
        db.execute("UPDATE blobs SET size = 10, offset = 0 WHERE cid = ?", (first,))
    assert store.get(first) == b"0123456789"
    pack.unlink()
    with pytest.raises(BlobCorrupt, match="missing"):
        store.get(first)


def test_a_blob_over_the_limit_is_refused_and_not_stored(store: BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        store.put(bytes(MAX_BLOB_SIZE + 1))
    assert list(store.iter_cids()) == []
    assert all(p.stat().st_size == 0 for p in stored_files(store.root / "packs"))


def test_iter_cids_lists_every_stored_blob_once_in_order(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blobs_module, "PAGE", 7)
    cids = {store.put(b"blob %d" % i) for i in range(30)}
    store.put(b"blob 3")
    assert list(store.iter_cids()) == sorted(cids)
    size = store.locate(sorted(cids)[0]).pack.stat().st_size
    assert set(store.put_many([b"blob %d" % i for i in range(30)])) == cids  # 5 lookups of 7
    assert store.locate(sorted(cids)[0]).pack.stat().st_size == size


def test_a_damaged_blob_set_aside_is_kept_and_forgotten(store: BlobStore, tmp_path: Path) -> None:
    cid = store.put(b"will be damaged")
    _damage(store, cid, 0)
    kept = store.set_aside(cid, tmp_path / "quarantine")
    assert kept.read_bytes() != b"will be damaged"
    assert len(kept.read_bytes()) == len(b"will be damaged")
    assert not store.has(cid)
    assert store.put(b"will be damaged") == cid
    assert store.get(cid) == b"will be damaged"


def test_a_store_of_one_file_per_blob_is_imported_into_packs(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    good = b"written by an older version"
    cid = cidmod.cid_of(good)
    (root / cid[-3:-1]).mkdir(parents=True)
    (root / cid[-3:-1] / cid).write_bytes(good)
    bad = cidmod.cid_of(b"other bytes")
    (root / bad[-3:-1]).mkdir(exist_ok=True)
    (root / bad[-3:-1] / bad).write_bytes(b"not those bytes")

    store = BlobStore(root)
    assert store.get(cid) == good
    assert not (root / cid[-3:-1] / cid).exists()
    assert not store.has(bad)
    assert (root / bad[-3:-1] / bad).exists()  # left for an operator to look at


def test_two_stores_on_one_directory_never_overwrite_each_other(tmp_path: Path) -> None:
    one, two = BlobStore(tmp_path / "b"), BlobStore(tmp_path / "b")
    a = one.put_many([os.urandom(500) for _ in range(5)])
    b = two.put_many([os.urandom(500) for _ in range(5)])
    c = one.put_many([os.urandom(500) for _ in range(5)])
    for cid in a + b + c:
        assert one.get(cid) == two.get(cid)


def test_concurrent_writers_in_threads_keep_every_blob(store: BlobStore) -> None:
    batches = [[os.urandom(300) for _ in range(20)] for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(store.put_many, batches))
    for items, cids in zip(batches, results, strict=True):
        assert [store.get(cid) for cid in cids] == items


def test_a_new_store_on_an_existing_directory_sees_its_blobs(tmp_path: Path) -> None:
    cid = BlobStore(tmp_path / "b").put(b"kept")
    assert BlobStore(tmp_path / "b").get(cid) == b"kept"


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=4096))
def test_any_bytes_round_trip(store: BlobStore, data: bytes) -> None:
    cid = store.put(data)
    assert store.get(cid) == data
    where = store.locate(cid)
    with where.pack.open("rb") as pack:
        pack.seek(where.offset)
        cidmod.check_cid(cid, pack.read(where.size))
