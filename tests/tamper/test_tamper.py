"""Tamper evidence: every edit of a node's files is named by ``verify_data_dir``.

One pristine data directory is built once (the story, through an in-process
service); every case edits its own fresh copy, the way an attacker with write
access to the disk would (bytes of the SQLite file, rows through sqlite3, blob
files), and expects the verifier to name the block, transaction, state key or
blob it touched.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.crypto.hpke import EncryptionKey
from ehrchain.ehr.state import acct_key, grant_key
from ehrchain.ehr.values import ACTIVE, Grant, Scope
from ehrchain.node.settings import LEDGER_FILE, load
from ehrchain.node.setup import new_identity
from ehrchain.node.verify import VerifyReport, verify_data_dir
from ehrchain.node.wiring import open_service
from ehrchain.storage.blobs import BlobStore
from ehrchain.storage.errors import BlobCorrupt
from ehrchain.storage.view import LedgerView
from story import Story, forget_blob, write_story_data_dir


@dataclass(frozen=True)
class Pristine:
    data_dir: Path
    story: Story
    positions: Mapping[str, tuple[int, int]]
    """Label of each story transaction -> (block height, index in the block)."""
    headers: dict[int, bytes]
    """Header bytes of each block, as the ledger gives them back."""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    written = write_story_data_dir(tmp_path_factory.mktemp("pristine") / "node", "ehrchain-tamper")
    ledger = written.data_dir / LEDGER_FILE
    headers = {}
    with LedgerView.open(ledger) as view:
        head = view.head()
        assert head is not None
        for height in range(head.height + 1):
            header = view.header_at(height)
            assert header is not None
            headers[height] = header.to_bytes()
    return Pristine(written.data_dir, written.story, written.positions, headers)


@pytest.fixture
def copy(pristine: Pristine, tmp_path: Path) -> Path:
    """A fresh copy of the pristine data directory for one case."""
    return Path(shutil.copytree(pristine.data_dir, tmp_path / "node"))


def _flip_byte_inside(path: Path, needle: bytes) -> None:
    """Flip one bit in the middle of the only occurrence of ``needle`` in the file."""
    data = bytearray(path.read_bytes())
    start = data.find(needle)
    assert start >= 0, "needle not found"
    assert data.find(needle, start + 1) < 0, "needle must occur exactly once"
    data[start + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _failed(data_dir: Path) -> str:
    report = verify_data_dir(data_dir)
    assert not report.ok
    assert report.first_problem is not None
    return report.first_problem


def _names(problem: str, word: str, number: int) -> bool:
    return re.search(rf"\b{word} {number}\b", problem) is not None


def test_the_pristine_copy_verifies(pristine: Pristine, copy: Path) -> None:
    report = verify_data_dir(copy)

    story = pristine.story
    head = max(h for h, _ in pristine.positions.values())
    assert report == VerifyReport(True, None, head + 1, len(story.txs), len(story.records))


def test_a_flipped_bit_in_a_stored_transaction_names_its_block_and_index(
    pristine: Pristine, copy: Path
) -> None:
    data = (copy / LEDGER_FILE).read_bytes()
    # The grant carries re-wrapped keys; any story transaction stored contiguously
    # and exactly once will do (a page split can leave a stale copy of a row).
    unique = [
        label
        for label, t in pristine.story.txs.items()
        if len(t.to_bytes()) > 200 and data.count(t.to_bytes()) == 1
    ]
    assert unique
    label = "grant ada->okafor" if "grant ada->okafor" in unique else unique[0]
    height, index = pristine.positions[label]

    _flip_byte_inside(copy / LEDGER_FILE, pristine.story.txs[label].to_bytes())

    problem = _failed(copy)
    assert _names(problem, "block", height), problem
    assert _names(problem, "transaction", index), problem


def test_a_flipped_bit_in_a_block_header_names_the_block(pristine: Pristine, copy: Path) -> None:
    height = pristine.positions["Observation"][0]

    _flip_byte_inside(copy / LEDGER_FILE, pristine.headers[height])

    problem = _failed(copy)
    assert _names(problem, "block", height), problem
    assert "transaction" not in problem


def _update_state(data_dir: Path, key: str, value: bytes | None) -> None:
    """Write one row of the state table directly (None deletes it)."""
    conn = sqlite3.connect(data_dir / LEDGER_FILE)
    try:
        with conn:
            if value is None:
                changed = conn.execute("DELETE FROM state WHERE key = ?", (key,)).rowcount
            else:
                changed = conn.execute(
                    "INSERT INTO state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                ).rowcount
        assert changed == 1
    finally:
        conn.close()


def test_an_edited_account_row_names_its_state_key(pristine: Pristine, copy: Path) -> None:
    # Swap the patient's encryption key for an attacker's, so future versions
    # would be wrapped to the attacker.
    key = acct_key(pristine.story.patients[0].address)
    with sqlite3.connect(copy / LEDGER_FILE) as conn:
        (stored,) = conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
    conn.close()
    account = dict(encoding.decode(stored))
    account["encryption_key"] = EncryptionKey.generate().public_key

    _update_state(copy, key, encoding.encode(account))

    problem = _failed(copy)
    assert repr(key) in problem
    assert "differs" in problem


def test_a_forged_grant_row_names_its_state_key(pristine: Pristine, copy: Path) -> None:
    stranger = new_identity("stranger").address
    key = grant_key(pristine.story.patients[0].address, stranger)

    _update_state(copy, key, encoding.encode(Grant(Scope(all=True), 0, ACTIVE).to_value()))

    problem = _failed(copy)
    assert repr(key) in problem


def test_a_deleted_state_row_names_its_state_key(pristine: Pristine, copy: Path) -> None:
    story = pristine.story
    key = f"consent/{story.patients[1].address}/{story.providers[0].address}"

    _update_state(copy, key, None)

    problem = _failed(copy)
    assert repr(key) in problem
    assert "missing" in problem


def test_a_flipped_bit_in_a_blob_names_it_and_it_is_never_served(
    pristine: Pristine, copy: Path
) -> None:
    story = pristine.story
    record = story.record("Observation")
    with contextlib.closing(BlobStore(copy / "blobs")) as blobs:
        pack = blobs.locate(record.cid).pack

    _flip_byte_inside(pack, record.sealed.blob)

    problem = _failed(copy)
    assert f"blob {record.cid}" in problem
    patient = story.patients[0]
    service = open_service(load(copy))
    try:
        read = txmod.build(
            "record.read",
            story.chain_id,
            patient.address,
            service.next_nonce(patient.address),
            {"record_id": record.record_id, "version": record.version},
            patient.identity.signing,
        )
        with pytest.raises(BlobCorrupt):
            service.read(read.to_bytes())
    finally:
        service.ledger.close()


def test_a_deleted_blob_is_named_missing(pristine: Pristine, copy: Path) -> None:
    record = pristine.story.record("discharge-summary")

    forget_blob(copy / "blobs", record.cid)

    problem = _failed(copy)
    assert f"blob {record.cid}" in problem
    assert "missing" in problem


def test_a_deleted_pack_file_is_named_missing(pristine: Pristine, copy: Path) -> None:
    record = pristine.story.record("discharge-summary")
    with contextlib.closing(BlobStore(copy / "blobs")) as blobs:
        blobs.locate(record.cid).pack.unlink()

    problem = _failed(copy)
    assert "blob " in problem
    assert "missing" in problem


def test_each_case_starts_from_an_untouched_copy(pristine: Pristine) -> None:
    """The cases above edited their own copies; the pristine directory still verifies."""
    assert verify_data_dir(pristine.data_dir).ok
