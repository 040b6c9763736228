"""Audit a node's data directory without trusting anything in it but genesis.json.

The verifier walks the stored chain and, for each block, in order:
1. decodes the stored header and checks it links to the previous block's hash;
2. decodes every transaction and verifies its signature;
3. recomputes the size and Merkle root and compares them with the header;
4. checks the commit certificate against the validator set of the replayed state
   (on a proof-of-work chain: the chain's target is met and the miner, a
   validator, sealed the block);
5. re-executes every transaction on a scratch replica and compares the state root.
Then it compares the replica's state with the stored state table row by row,
checks that the blob of every version the chain records is stored, and checks
every blob against its content id. The first problem found is named.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ehrchain.consensus.certificate import check_certificate
from ehrchain.consensus.errors import ConsensusError
from ehrchain.consensus.pow import check_header_seal, check_work
from ehrchain.consensus.wire import evidence_check
from ehrchain.core import block as blockmod
from ehrchain.core import encoding
from ehrchain.core import tx as txmod
from ehrchain.core.errors import CoreError
from ehrchain.core.types import Address
from ehrchain.crypto.errors import CryptoError
from ehrchain.ehr.errors import EhrError
from ehrchain.ehr.executor import execute_block
from ehrchain.ehr.genesis import GenesisConfig
from ehrchain.ehr.state import BlockContext, LedgerReader
from ehrchain.node.genesis import commit_genesis, genesis_block
from ehrchain.node.settings import load
from ehrchain.storage.blobs import BlobStore
from ehrchain.storage.errors import BlobCorrupt, StorageError
from ehrchain.storage.ledger import Ledger
from ehrchain.storage.rows import RawBlock
from ehrchain.storage.view import LedgerView

Progress = Callable[[str, int, int], None]
PAGE = 200


class Tampered(Exception):
    """The first problem the verifier found; its message names the culprit."""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    first_problem: str | None
    blocks: int
    txs: int
    blobs: int


def _noop(stage: str, done: int, total: int) -> None:
    return None


def verify_data_dir(data_dir: Path, progress: Progress = _noop) -> VerifyReport:
    """Verify everything under data_dir; never raises for tampering, reports it."""
    settings = load(data_dir)
    counts = {"blocks": 0, "txs": 0, "blobs": 0}
    try:
        config = GenesisConfig.from_json(settings.genesis_path.read_text())
        with (
            contextlib.closing(BlobStore(settings.blob_dir)) as blobs,
            tempfile.TemporaryDirectory(prefix="ehrchain-verify-") as scratch,
        ):
            replica = Ledger.open(Path(scratch) / "replica.sqlite")
            try:
                stored = LedgerView.open(settings.ledger_path)
                try:
                    _verify_chain(stored, replica, config, counts, progress)
                    _compare_state(stored, replica)
                finally:
                    stored.close()
                _verify_version_blobs(replica, blobs)
            finally:
                replica.close()
            _verify_blobs(blobs, counts, progress)
    except Tampered as exc:
        return VerifyReport(False, str(exc), counts["blocks"], counts["txs"], counts["blobs"])
    except (StorageError, CoreError, OSError, ValueError, sqlite3.Error) as exc:
        problem = f"data directory unreadable: {type(exc).__name__}: {exc}"
        return VerifyReport(False, problem, counts["blocks"], counts["txs"], counts["blobs"])
    return VerifyReport(True, None, counts["blocks"], counts["txs"], counts["blobs"])


def _verify_chain(
    stored: LedgerView,
    replica: Ledger,
    config: GenesisConfig,
    counts: dict[str, int],
    progress: Progress,
) -> None:
    head = stored.head()
    if head is None:
        raise Tampered("ledger holds no genesis block")
    expected_genesis, _ = genesis_block(config)
    genesis_rows = stored.raw_block_rows(0, 1)
    if not genesis_rows or genesis_rows[0].hash != expected_genesis.hash:
        raise Tampered("block 0 (genesis) does not match genesis.json")
    commit_genesis(replica, config)
    counts["blocks"] = 1
    prev_hash: bytes = expected_genesis.hash
    height = 1
    while height <= head.height:
        rows = stored.raw_block_rows(height, PAGE)
        if not rows:
            raise Tampered(f"block {height} is missing")
        for raw in rows:
            prev_hash = _verify_block(raw, prev_hash, replica, counts, config.pow_target_bits)
            height += 1
            counts["blocks"] += 1
        progress("blocks", height - 1, head.height)


def _verify_block(
    raw: RawBlock,
    prev_hash: bytes,
    replica: Ledger,
    counts: dict[str, int],
    pow_target: int | None,
) -> bytes:
    where = f"block {raw.height}"
    try:
        header = blockmod.BlockHeader.from_fields(encoding.decode(raw.header))
    except CoreError as exc:
        raise Tampered(f"{where}: header does not decode ({exc})") from exc
    if header.hash != raw.hash:
        raise Tampered(f"{where}: header does not hash to its stored hash {raw.hash.hex()}")
    if header.height != raw.height or header.prev_hash != prev_hash:
        raise Tampered(f"{where}: does not link to block {raw.height - 1}")
    txs = tuple(_verify_tx(where, i, data, header.chain_id) for i, data in enumerate(raw.txs))
    counts["txs"] += len(txs)
    if blockmod.tx_list_size(txs) != header.size or blockmod.tx_root(txs) != header.tx_root:
        raise Tampered(f"{where}: transactions do not match the header's size or Merkle root")
    cert = _verify_finality(where, header, raw.certificate, replica, pow_target)
    ctx = BlockContext(
        header.chain_id, header.height, header.timestamp_ms, header.proposer, evidence_check
    )
    prev_root = replica.head()
    assert prev_root is not None
    try:
        result = execute_block(LedgerReader(replica), txs, ctx, prev_root=prev_root.state_root)
    except EhrError as exc:
        raise Tampered(f"{where}: a transaction breaks a ledger rule ({exc})") from exc
    if result.state_root != header.state_root:
        raise Tampered(f"{where}: state root does not match the re-executed transactions")
    replica.commit_block(blockmod.Block(header, txs, cert), result.writes, [])
    return header.hash


def _verify_finality(
    where: str,
    header: blockmod.BlockHeader,
    raw_certificate: bytes,
    replica: Ledger,
    pow_target: int | None,
) -> blockmod.CommitCertificate:
    """A quorum certificate (solo, BFT), or work and the miner's seal (proof of work)."""
    if pow_target is not None:
        try:
            check_work(header, pow_target)
        except ConsensusError as exc:
            raise Tampered(f"{where}: proof of work invalid ({exc})") from exc
    try:
        cert = blockmod.CommitCertificate.from_fields(encoding.decode(raw_certificate))
        if pow_target is not None:
            check_header_seal(header, cert, _validators(replica))
        else:
            check_certificate(header, cert, _validators(replica))
    except Exception as exc:  # tampered bytes may fail in any way: report, never crash
        raise Tampered(f"{where}: commit certificate invalid ({exc})") from exc
    return cert


def _verify_tx(where: str, index: int, data: bytes, chain_id: str) -> txmod.Transaction:
    try:
        return txmod.verified_from_bytes(data, chain_id)
    except (CoreError, CryptoError) as exc:
        raise Tampered(
            f"{where}: transaction {index} (stored bytes hash "
            f"{hashlib.sha256(data).hexdigest()[:16]}…) is invalid ({exc})"
        ) from exc


def _validators(ledger: Ledger) -> dict[Address, bytes]:
    raw = ledger.get_state("validators")
    if raw is None:
        return {}
    return {Address(entry[0]): bytes(entry[1]) for entry in encoding.decode(raw)}


def _compare_state(stored: LedgerView, replica: Ledger) -> None:
    mine = replica.iter_state()
    for key, value in stored.iter_state():
        expected = next(mine, None)
        if expected is not None and expected[0] < key:
            raise Tampered(f"state entry {expected[0]!r} is missing from the stored state")
        if expected is None or expected[0] != key:
            raise Tampered(f"state entry {key!r} is not produced by the chain")
        if expected[1] != value:
            raise Tampered(f"state entry {key!r} differs from the replayed chain")
    extra = next(mine, None)
    if extra is not None:
        raise Tampered(f"state entry {extra[0]!r} is missing from the stored state")


def _verify_version_blobs(replica: Ledger, blobs: BlobStore) -> None:
    """Every version the replayed chain records has its blob in the store."""
    after = ""
    while True:
        page = replica.scan_prefix("version/", PAGE, after)
        for key, value in page:
            cid = str(encoding.decode(value)["cid"])
            if not blobs.has(cid):
                raise Tampered(f"blob {cid} of state entry {key!r} is missing")
        if len(page) < PAGE:
            return
        after = page[-1][0]


def _verify_blobs(blobs: BlobStore, counts: dict[str, int], progress: Progress) -> None:
    for cid in blobs.iter_cids():
        try:
            blobs.get(cid)
        except BlobCorrupt as exc:
            raise Tampered(str(exc)) from exc
        counts["blobs"] += 1
        if counts["blobs"] % 100 == 0:
            progress("blobs", counts["blobs"], 0)
