"""The SQLite ledger: linkage checks, atomic block commits, reads, paging, events, rollback."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.address import address_from_public_key
from ehrchain.core.block import (
    GENESIS_PARENT,
    MAGIC,
    VERSION,
    Block,
    BlockHeader,
    CommitCertificate,
    Vote,
    tx_list_size,
    tx_root,
)
from ehrchain.core.types import BlockHash, ChainId
from ehrchain.crypto.signing import SigningKey
from ehrchain.storage import (
    MAX_BLOCK_PAGE,
    MAX_PAGE,
    Event,
    Ledger,
    LedgerCorrupt,
    LedgerError,
    LedgerView,
)
from ehrchain.storage import view as view_module
from ehrchain.storage.view import prefix_upper_bound

CHAIN = "ledger-test"
KEY = SigningKey(bytes(range(32)))
ADDR = address_from_public_key(KEY.public_key)
OTHER_KEY = SigningKey(bytes(range(1, 33)))
OTHER = address_from_public_key(OTHER_KEY.public_key)
POOL = tuple(txmod.build("test.op", CHAIN, ADDR, n, {"n": n}, KEY) for n in range(40))
"""Distinct signed transactions; each may appear in a chain once."""


def next_block(
    parent: BlockHeader | None,
    txs: Sequence[txmod.Transaction] = (),
    certificate: CommitCertificate = CommitCertificate(0, ()),
) -> Block:
    height = 0 if parent is None else parent.height + 1
    header = BlockHeader(
        MAGIC,
        VERSION,
        ChainId(CHAIN),
        tx_list_size(txs),
        len(txs),
        height,
        GENESIS_PARENT if parent is None else parent.hash,
        tx_root(txs),
        1_000_000 + 1_000 * height,
        0,
        0,
        hashlib.sha256(b"state %d" % height).digest(),
        ADDR,
    )
    return Block(header, tuple(txs), certificate)


def read_event(tx: txmod.Transaction, subject: str = "patient-a") -> Event:
    return Event(subject, "record.read", tx.sender, f"r{tx.nonce:04d}", 1, tx.tx_id)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(tmp_path / "chain" / "ledger.db")


def commit_chain(
    ledger: Ledger, bodies: Sequence[tuple[Sequence[txmod.Transaction], Mapping[str, bytes | None]]]
) -> list[Block]:
    """Commit one block per (txs, writes), each tx with a read event; return the blocks."""
    head = ledger.head()
    parent = None if head is None else ledger.header_at(head.height)
    blocks = []
    for txs, writes in bodies:
        block = next_block(parent, txs)
        ledger.commit_block(block, writes, [read_event(t) for t in txs])
        blocks.append(block)
        parent = block.header
    return blocks


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
            for t in ("blocks", "txs", "state", "undo", "events", "meta")
        }


# opening


def test_a_new_ledger_is_empty_and_configured(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "chain" / "ledger.db"
    assert ledger.head() is None
    assert ledger.block_at(0) is None
    assert ledger.blocks(0, 10) == []
    assert ledger.get_state("k") is None
    assert ledger.events_for("patient-a") == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_durable_flag_selects_full_sync(tmp_path: Path) -> None:
    for durable, expected in ((False, 1), (True, 2)):
        with Ledger.open(tmp_path / f"l{durable}.db", durable=durable) as ledger:
            assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == expected
            assert ledger._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_contents_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        blocks = commit_chain(ledger, [(POOL[:2], {"a": b"1"}), (POOL[2:3], {"b": b"2"})])
        ledger.set_meta("chain_id", CHAIN.encode())
    with Ledger.open(path) as ledger:
        head = ledger.head()
        assert head is not None
        assert head.hash == blocks[-1].hash
        assert ledger.get_many(["a", "b"]) == {"a": b"1", "b": b"2"}
        assert ledger.get_meta("chain_id") == CHAIN.encode()
        assert ledger.blocks(0, 10) == blocks


def test_only_one_writer_per_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = Ledger.open(path)
    with pytest.raises(LedgerError, match="already open"):
        Ledger.open(path)
    first.close()
    Ledger.open(path).close()


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(LedgerError, match="not a ledger"):
        Ledger.open(path)


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerError, match="schema version 99"):
        Ledger.open(path)
    with pytest.raises(LedgerError, match="schema version 99"):
        LedgerView.open(path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"not a database at all, just some bytes" * 100)
    with pytest.raises(LedgerError):
        Ledger.open(path)


def test_a_closed_ledger_refuses_work(ledger: Ledger) -> None:
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.commit_block(next_block(None), {}, [])
    with pytest.raises(LedgerError, match="closed"), ledger.reader():
        pass


# committing


def test_committed_blocks_read_back_identically(ledger: Ledger) -> None:
    certificate = CommitCertificate(2, (Vote(ADDR, bytes(64)), Vote(OTHER, b"\x01" * 64)))
    genesis = next_block(None, POOL[:3], certificate)
    ledger.commit_block(genesis, {"x": b"1"}, [])
    empty = next_block(genesis.header)
    ledger.commit_block(empty, {}, [])

    assert ledger.block_at(0) == genesis
    assert ledger.block_at(1) == empty
    assert ledger.block_at(2) is None
    assert ledger.block_by_hash(genesis.hash) == genesis
    assert ledger.block_by_hash(bytes(32)) is None
    assert ledger.header_at(1) == empty.header
    assert ledger.header_at(5) is None
    head = ledger.head()
    assert head is not None
    assert (head.height, head.hash) == (1, empty.hash)
    assert (head.state_root, head.timestamp_ms) == (
        empty.header.state_root,
        empty.header.timestamp_ms,
    )


def test_a_genesis_block_must_have_the_zero_parent(ledger: Ledger) -> None:
    wrong = Block(replace(next_block(None).header, prev_hash=BlockHash(b"\x01" * 32)), ())
    with pytest.raises(LedgerError, match="does not extend"):
        ledger.commit_block(wrong, {"a": b"1"}, [])
    assert ledger.head() is None


@pytest.mark.parametrize("height", [0, 2, 7])
def test_a_block_at_the_wrong_height_is_rejected_with_nothing_written(
    ledger: Ledger, tmp_path: Path, height: int
) -> None:
    (genesis,) = commit_chain(ledger, [(POOL[:1], {"a": b"1"})])
    before = table_counts(tmp_path / "chain" / "ledger.db")
    block = next_block(genesis.header, POOL[1:3])
    block = Block(replace(block.header, height=height), block.txs)
    with pytest.raises(LedgerError, match="not the next height 1"):
        ledger.commit_block(block, {"a": b"2", "b": b"3"}, [read_event(POOL[1])])
    assert table_counts(tmp_path / "chain" / "ledger.db") == before
    assert ledger.get_many(["a", "b"]) == {"a": b"1", "b": None}
    assert ledger.tx(POOL[1].tx_id) is None


def test_a_block_with_the_wrong_parent_is_rejected_with_nothing_written(
    ledger: Ledger, tmp_path: Path
) -> None:
    genesis, first = commit_chain(ledger, [((), {"a": b"1"}), (POOL[:1], {"a": b"2"})])
    before = table_counts(tmp_path / "chain" / "ledger.db")
    sibling = next_block(genesis.header, POOL[1:2])  # height 1 again, parent = block 0
    grandchild = next_block(sibling.header)  # height 2, but parent is not the head
    with pytest.raises(LedgerError, match="does not extend the head"):
        ledger.commit_block(grandchild, {"a": b"3"}, [])
    assert table_counts(tmp_path / "chain" / "ledger.db") == before
    assert ledger.get_state("a") == b"2"
    head = ledger.head()
    assert head is not None
    assert head.hash == first.hash


def test_a_failing_insert_rolls_back_the_whole_block(ledger: Ledger, tmp_path: Path) -> None:
    (genesis,) = commit_chain(ledger, [(POOL[:2], {"a": b"1"})])
    before = table_counts(tmp_path / "chain" / "ledger.db")
    replay = next_block(genesis.header, (POOL[2], POOL[0]))  # POOL[0] is already stored
    with pytest.raises(LedgerError, match="block 1 could not be stored"):
        ledger.commit_block(replay, {"a": b"2", "new": b"x"}, [read_event(POOL[2])])
    assert table_counts(tmp_path / "chain" / "ledger.db") == before
    assert ledger.get_many(["a", "new"]) == {"a": b"1", "new": None}
    assert ledger.tx(POOL[2].tx_id) is None


def test_a_value_that_is_not_bytes_is_rejected(ledger: Ledger) -> None:
    bad: dict[str, object] = {"a": "text, not bytes"}
    with pytest.raises(LedgerError, match="could not be stored"):
        ledger.commit_block(next_block(None), bad, [])  # type: ignore[arg-type]
    assert ledger.head() is None


def test_an_event_must_name_a_transaction_of_its_block(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="not in the block"):
        ledger.commit_block(next_block(None, POOL[:1]), {}, [read_event(POOL[1])])
    assert ledger.head() is None


def test_writes_set_and_remove_keys(ledger: Ledger) -> None:
    commit_chain(
        ledger,
        [((), {"a": b"1", "b": b"2", "c": b""}), ((), {"a": b"3", "b": None, "gone": None})],
    )
    assert ledger.get_many(["a", "b", "c", "gone"]) == {
        "a": b"3",
        "b": None,
        "c": b"",
        "gone": None,
    }
    assert ledger.get_state("c") == b""


# state reads


def test_get_many_answers_every_key_across_chunks(ledger: Ledger) -> None:
    writes: dict[str, bytes | None] = {f"k/{i:04d}": b"%d" % i for i in range(0, 1_300, 2)}
    commit_chain(ledger, [((), writes)])
    keys = [f"k/{i:04d}" for i in range(1_300)] + ["k/0000"]
    found = ledger.get_many(keys)
    assert len(found) == 1_300
    assert all(found[f"k/{i:04d}"] == (b"%d" % i if i % 2 == 0 else None) for i in range(1_300))
    assert ledger.get_many([]) == {}


def test_scan_prefix_pages_in_key_order(ledger: Ledger) -> None:
    inside = {f"grant/p/{i:02d}": b"%d" % i for i in range(25)}
    outside = {"grant/o": b"o", "grant/q/1": b"q", "grant": b"g", "grant/": b"", "gran": b"x"}
    commit_chain(ledger, [((), {**inside, **outside})])

    pages, after = [], ""
    while True:
        page = ledger.scan_prefix("grant/p/", 10, after)
        if not page:
            break
        pages.append(page)
        after = page[-1][0]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [kv for page in pages for kv in page] == sorted(inside.items())
    assert ledger.scan_prefix("grant/", 3) == [
        ("grant/", b""),
        ("grant/o", b"o"),
        ("grant/p/00", b"0"),
    ]
    assert [k for k, _ in ledger.scan_prefix("", MAX_PAGE)][:3] == ["gran", "grant", "grant/"]
    assert ledger.scan_prefix("zzz", 5) == []


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE + 1])
def test_scans_refuse_unbounded_or_empty_pages(ledger: Ledger, limit: int) -> None:
    with pytest.raises(LedgerError, match="limit"):
        ledger.scan_prefix("a", limit)
    with pytest.raises(LedgerError, match="limit"):
        ledger.events_for("a", limit=limit)


def test_scan_prefix_handles_the_largest_code_point(ledger: Ledger) -> None:
    top = "\U0010ffff"
    commit_chain(ledger, [((), {f"a{top}": b"1", f"a{top}{top}x": b"2", "b": b"3"})])
    assert [k for k, _ in ledger.scan_prefix(f"a{top}", 10)] == [f"a{top}", f"a{top}{top}x"]
    assert [k for k, _ in ledger.scan_prefix(top, 10)] == []


@given(st.text(max_size=6), st.text(max_size=6))
def test_prefix_upper_bound_brackets_exactly_the_prefixed_strings(prefix: str, text: str) -> None:
    def utf8(s: str) -> bytes:
        return s.encode("utf-8", "surrogatepass")

    upper = prefix_upper_bound(prefix)
    below = utf8(prefix) <= utf8(text) and (upper is None or utf8(text) < utf8(upper))
    assert below == text.startswith(prefix)


def test_iter_state_yields_everything_in_order_in_batches(ledger: Ledger) -> None:
    writes: dict[str, bytes | None] = {f"s/{i:03d}": bytes([i % 256]) for i in range(23)}
    commit_chain(ledger, [((), writes)])
    assert list(ledger.iter_state(batch=5)) == sorted(writes.items())
    assert list(ledger.iter_state(batch=23)) == sorted(writes.items())


def test_meta_is_set_and_overwritten(ledger: Ledger) -> None:
    assert ledger.get_meta("genesis") is None
    ledger.set_meta("genesis", b"\x00" * 32)
    ledger.set_meta("genesis", b"\x01" * 32)
    assert ledger.get_meta("genesis") == b"\x01" * 32


# blocks and transactions


def test_blocks_are_paged_and_raw_rows_are_the_stored_bytes(ledger: Ledger) -> None:
    blocks = commit_chain(ledger, [(POOL[i : i + 2], {}) for i in range(0, 10, 2)])
    assert ledger.blocks(0, 2) == blocks[:2]
    assert ledger.blocks(2, 2) == blocks[2:4]
    assert ledger.blocks(4, 2) == blocks[4:]
    assert ledger.blocks(5, 2) == []
    raw = ledger.raw_block_rows(1, 3)
    assert [r.height for r in raw] == [1, 2, 3]
    for row, block in zip(raw, blocks[1:4], strict=True):
        assert row.hash == block.hash
        assert row.header == block.header.to_bytes()
        assert row.txs == tuple(t.to_bytes() for t in block.txs)
    with pytest.raises(LedgerError, match="limit"):
        ledger.blocks(0, MAX_BLOCK_PAGE + 1)


def test_a_page_of_blocks_stops_at_the_byte_budget(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = commit_chain(ledger, [(POOL[i : i + 2], {}) for i in range(0, 10, 2)])
    two_blocks = blocks[0].header.size + blocks[1].header.size
    monkeypatch.setattr(view_module, "MAX_PAGE_BYTES", two_blocks)
    assert ledger.blocks(0, 10) == blocks[:2]
    assert ledger.blocks(2, 10) == blocks[2:4]
    monkeypatch.setattr(view_module, "MAX_PAGE_BYTES", 1)
    assert ledger.blocks(3, 10) == blocks[3:4]


def test_transactions_are_found_by_id_and_by_block(ledger: Ledger) -> None:
    blocks = commit_chain(ledger, [(POOL[:3], {}), ((), {}), (POOL[3:5], {})])
    assert ledger.tx(POOL[4].tx_id) == (POOL[4], 2, 1)
    assert ledger.tx(POOL[0].tx_id) == (POOL[0], 0, 0)
    assert ledger.tx(POOL[9].tx_id) is None
    assert ledger.txs_of_block(0) == list(POOL[:3])
    assert ledger.txs_of_block(1) == []
    assert ledger.tx_ids_of_block(2) == [POOL[3].tx_id, POOL[4].tx_id]
    assert tx_root(ledger.txs_of_block(2)) == blocks[2].header.tx_root


def test_a_tampered_header_is_reported_as_corrupt(ledger: Ledger, tmp_path: Path) -> None:
    commit_chain(ledger, [((), {}), ((), {})])
    with sqlite3.connect(tmp_path / "chain" / "ledger.db") as conn:
        header = conn.execute("SELECT header FROM blocks WHERE height = 1").fetchone()[0]
        stored = BlockHeader.from_fields(encoding.decode(header))
        forged = replace(stored, timestamp_ms=stored.timestamp_ms + 1).to_bytes()
        conn.execute("UPDATE blocks SET header = ? WHERE height = 1", (forged,))
    with pytest.raises(LedgerCorrupt, match="block 1"):
        ledger.block_at(1)
    with pytest.raises(LedgerCorrupt, match="block 1"):
        ledger.header_at(1)
    assert ledger.block_at(0) is not None


# events


def test_events_come_newest_first_with_height_and_time(ledger: Ledger) -> None:
    genesis = next_block(None, POOL[:2])
    ledger.commit_block(genesis, {}, [read_event(POOL[0], "alice"), read_event(POOL[1], "bob")])
    second = next_block(genesis.header, POOL[2:5])
    ledger.commit_block(second, {}, [read_event(t, "alice") for t in POOL[2:5]])

    events = ledger.events_for("alice")
    assert [(e.height, e.idx, e.record_id) for e in events] == [
        (1, 2, "r0004"),
        (1, 1, "r0003"),
        (1, 0, "r0002"),
        (0, 0, "r0000"),
    ]
    assert events[0].timestamp_ms == second.header.timestamp_ms
    assert events[-1].timestamp_ms == genesis.header.timestamp_ms
    assert (events[0].tx_id, events[0].actor, events[0].kind) == (
        POOL[4].tx_id,
        ADDR,
        "record.read",
    )
    assert ledger.events_for("alice", offset=1, limit=2) == events[1:3]
    assert ledger.events_for("alice", offset=4) == []
    assert [e.record_id for e in ledger.events_for("bob")] == ["r0001"]
    assert ledger.events_for("carol") == []


# rollback


def test_rollback_restores_state_and_removes_blocks_txs_and_events(
    ledger: Ledger, tmp_path: Path
) -> None:
    blocks = commit_chain(
        ledger,
        [
            (POOL[:1], {"a": b"1", "b": b"1"}),
            (POOL[1:2], {"a": b"2", "c": b"2"}),
            (POOL[2:4], {"b": None, "c": b"3", "d": b"3"}),
        ],
    )
    removed = ledger.rollback_to(0)
    assert removed == [blocks[2], blocks[1]]
    assert list(ledger.iter_state()) == [("a", b"1"), ("b", b"1")]
    head = ledger.head()
    assert head is not None
    assert head.hash == blocks[0].hash
    assert ledger.tx(POOL[2].tx_id) is None
    assert [e.height for e in ledger.events_for("patient-a")] == [0]
    counts = table_counts(tmp_path / "chain" / "ledger.db")
    assert (counts["blocks"], counts["txs"], counts["undo"], counts["events"]) == (1, 1, 2, 1)

    assert ledger.rollback_to(0) == []
    assert ledger.rollback_to(5) == []
    with pytest.raises(LedgerError, match="non-negative"):
        ledger.rollback_to(-1)

    fork = next_block(blocks[0].header, POOL[5:6])
    ledger.commit_block(fork, {"a": b"fork"}, [])
    assert ledger.get_state("a") == b"fork"


def test_rollback_of_an_empty_ledger_removes_nothing(ledger: Ledger) -> None:
    assert ledger.rollback_to(0) == []


block_writes = st.dictionaries(
    st.sampled_from([f"k/{i}" for i in range(8)]), st.none() | st.binary(max_size=6), max_size=6
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(block_writes, st.booleans()), min_size=1, max_size=10), st.data())
def test_rollback_equals_the_state_snapshot_at_that_height(
    chain: list[tuple[dict[str, bytes | None], bool]], data: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp, Ledger.open(Path(tmp) / "l.db") as ledger:
        model: dict[str, bytes] = {}
        snapshots: list[dict[str, bytes]] = []
        blocks: list[tuple[Block, dict[str, bytes | None]]] = []
        parent = None
        for height, (writes, with_tx) in enumerate(chain):
            block = next_block(parent, POOL[height : height + 1] if with_tx else ())
            ledger.commit_block(block, writes, [])
            for key, value in writes.items():
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
            assert dict(ledger.iter_state()) == model
            snapshots.append(dict(model))
            blocks.append((block, writes))
            parent = block.header

        target = data.draw(st.integers(0, len(chain) - 1), label="rollback to")
        removed = ledger.rollback_to(target)

        assert [b.header.height for b in removed] == list(range(len(chain) - 1, target, -1))
        assert dict(ledger.iter_state()) == snapshots[target]
        head = ledger.head()
        assert head is not None
        assert head.hash == blocks[target][0].hash
        assert all(ledger.tx(t.tx_id) is None for b in removed for t in b.txs)

        for block, writes in blocks[target + 1 :]:
            ledger.commit_block(block, writes, [])
        assert dict(ledger.iter_state()) == snapshots[-1]


# concurrent readers


def test_readers_see_consistent_snapshots_while_the_writer_commits(ledger: Ledger) -> None:
    count = 60
    failures: list[str] = []
    observed: list[int] = []

    def write() -> None:
        parent = None
        for height in range(count):
            block = next_block(parent)
            ledger.commit_block(block, {"counter": b"%d" % height, f"h/{height}": b"x"}, [])
            parent = block.header

    def read() -> None:
        with ledger.reader() as view:
            last = -1
            while last < count - 1:
                with view.snapshot():
                    head = view.head()
                    counter = view.get_state("counter")
                    rows = len(view.scan_prefix("h/", MAX_PAGE))
                if head is None:
                    continue
                if counter != b"%d" % head.height or rows != head.height + 1:
                    failures.append(f"head {head.height} with counter {counter!r}, {rows} rows")
                if head.height < last:
                    failures.append(f"head went back from {last} to {head.height}")
                last = head.height
                observed.append(head.height)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    write()
    for thread in readers:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in readers)
    assert failures == []
    assert observed
    assert max(observed) == count - 1


def test_reader_views_are_pooled_and_see_commits(ledger: Ledger) -> None:
    with ledger.reader() as first:
        assert first.head() is None
        commit_chain(ledger, [((), {"a": b"1"})])
        assert first.get_state("a") == b"1"
    with ledger.reader() as again:
        assert again is first
        with ledger.reader() as second:
            assert second is not first


def test_a_read_only_view_can_open_the_file_beside_the_writer(
    ledger: Ledger, tmp_path: Path
) -> None:
    commit_chain(ledger, [(POOL[:1], {"a": b"1"})])
    with LedgerView.open(tmp_path / "chain" / "ledger.db") as view:
        assert view.get_state("a") == b"1"
        assert view.txs_of_block(0) == [POOL[0]]
    with pytest.raises(LedgerError, match="no ledger file"):
        LedgerView.open(tmp_path / "missing.db")


def test_recently_committed_blocks_are_served_from_memory_exactly_as_stored(
    ledger: Ledger, tmp_path: Path
) -> None:
    blocks = commit_chain(ledger, [(POOL[i : i + 2], {}) for i in range(0, 10, 2)])
    stored = LedgerView.open(tmp_path / "chain" / "ledger.db")
    try:
        for start, limit in ((0, 10), (1, 2), (3, 1), (4, 5), (5, 3)):
            assert ledger.blocks(start, limit) == stored.blocks(start, limit)
    finally:
        stored.close()
    # After a rollback and a different block at the same height, memory follows the ledger.
    ledger.rollback_to(2)
    assert ledger.blocks(0, 10) == blocks[:3]
    other = next_block(blocks[2].header, POOL[10:11])
    ledger.commit_block(other, {}, [])
    assert ledger.blocks(3, 10) == [other]
    assert ledger.blocks(0, 10) == [*blocks[:3], other]
