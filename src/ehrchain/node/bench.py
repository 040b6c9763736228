"""`ehrchain bench`: one real node process, measured from a client over loopback HTTP.

Three workloads, each beside a same-run ceiling (see bench_ceilings):
1. committed signed transactions/s: audit-event reads (``record.read``) by many
   patients, signed before the clock starts, sent in batches, timed until the
   last one is committed;
2. records/s of 64 KiB FHIR documents: sealed (AES-256-GCM + HPKE) before the
   clock starts; the clock covers blob upload, transaction and commit;
3. read latency: a full SDK read (sign, fetch, unwrap, decrypt, check) one at a time.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.client.identity import new_identity, public_identity
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity, KdfParams
from ehrchain.ehr.fhir import FHIR_MEDIA_TYPE
from ehrchain.ehr.kinds import record_id_for
from ehrchain.ehr.records import SealedVersion, seal_version
from ehrchain.node import bench_ceilings
from ehrchain.node.process import NodeProcess, free_port
from ehrchain.node.setup import init_node

Progress = Callable[[str, int, int], None]
PASSWORD = "bench-only-password"  # noqa: S105 (throwaway bench keystore)
BATCH = 2_000
WARM_UP = 256
"""Transactions per lane sent before timing, so worker start-up is not measured."""


@dataclass(frozen=True, slots=True)
class BenchResult:
    tx_per_s: float
    txs: int
    records_per_s: float
    records: int
    record_bytes: int
    seal_per_s: float
    read_p50_ms: float
    read_p99_ms: float
    reads: int
    ed25519_verify_per_s: float
    sqlite_insert_per_s: float
    verify_and_persist_per_s: float
    blob_store_per_s: float

    def ratios(self) -> dict[str, float]:
        return {
            "tx_vs_verify_and_persist": self.tx_per_s / self.verify_and_persist_per_s,
            "records_vs_blob_store": self.records_per_s / self.blob_store_per_s,
        }


def _noop(stage: str, done: int, total: int) -> None:
    return None


def fhir_document(size: int, index: int) -> bytes:
    """A synthetic FHIR R4 Binary resource of about ``size`` bytes (no health data)."""
    raw = (f"synthetic-bench-{index}-".encode() * (size // 16 + 1))[: size * 3 // 4 - 200]
    doc = {
        "resourceType": "Binary",
        "id": f"bench-{index}",
        "contentType": "application/octet-stream",
        "data": base64.b64encode(raw).decode(),
    }
    return json.dumps(doc).encode()


class _Consortium:
    """A hospital, patients with one record each, reached through the SDK."""

    def __init__(self, client: EhrClient, admin: Identity, patients: int) -> None:
        self.client = client
        self.admin = Actor(admin, client)
        hospital_admin = new_identity("bench-hospital-admin", "hospital_admin")
        self.admin.admit_hospital("bench-h1", "Bench Hospital", public_identity(hospital_admin))
        self.hospital = Actor(hospital_admin, client)
        self.patients: list[Actor] = []
        for i in range(patients):
            identity = new_identity(f"bench-patient-{i}", "patient")
            self.hospital.register_patient(public_identity(identity))
            self.patients.append(Actor(identity, client))
        self.records: dict[str, str] = {}
        for patient in self.patients:
            record_id, _ = patient.put_fhir(patient.address, fhir_document(1024, 0))
            self.records[patient.address] = record_id


def _sign_reads(consortium: _Consortium, count: int, lanes: int) -> list[list[list[bytes]]]:
    """Signed record.read txs in per-patient nonce order, batched, in ``lanes``
    independent streams (disjoint patients), so streams may be sent concurrently."""
    chain_id = consortium.client.chain_id
    nonces = {p.address: consortium.client.next_nonce(p.address) for p in consortium.patients}
    streams: list[list[bytes]] = [[] for _ in range(lanes)]
    for i in range(count):
        lane_patients = consortium.patients[i % lanes :: lanes]
        patient = lane_patients[(i // lanes) % len(lane_patients)]
        payload = {"record_id": consortium.records[patient.address], "version": 1}
        nonce = nonces[patient.address]
        nonces[patient.address] += 1
        tx = txmod.build(
            "record.read",
            chain_id,
            Address(patient.identity.address),
            nonce,
            payload,
            patient.identity.signing,
        )
        streams[i % lanes].append(tx.to_bytes())
    return [[s[i : i + BATCH] for i in range(0, len(s), BATCH)] for s in streams]


def _send(client: EhrClient, batches: list[list[bytes]]) -> int:
    for batch in batches:
        outcomes = client.submit_batch(batch)
        failed = [o.error for o in outcomes if o.error is not None]
        if failed:
            raise RuntimeError(f"bench transactions rejected: {failed[0]}")
    return sum(len(b) for b in batches)


def _wait_idle(client: EhrClient, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.status()["pending"] > 0:
        if time.monotonic() > deadline:
            raise TimeoutError("node did not drain its pending pool")
        time.sleep(0.005)


def bench_txs(consortium: _Consortium, count: int, progress: Progress, lanes: int = 2) -> float:
    """Two client connections send their own patients' batches concurrently."""
    warm_up = _sign_reads(consortium, WARM_UP * lanes, lanes)
    clients = [EhrClient(consortium.client.base_url, timeout=120.0) for _ in range(lanes)]
    try:
        for client, batches in zip(clients, warm_up, strict=True):
            _send(client, batches)  # starts the node's verifier processes before the clock
        _wait_idle(consortium.client)
        streams = _sign_reads(consortium, count, lanes)
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            sent = sum(pool.map(_send, clients, streams))
        progress("txs", sent, count)
        _wait_idle(consortium.client)
        return count / (time.perf_counter() - start)
    finally:
        for client in clients:
            client.close()


def _seal_records(
    consortium: _Consortium, count: int, size: int
) -> tuple[list[tuple[Actor, SealedVersion, int]], float]:
    chain_id = consortium.client.chain_id
    readers_of = {
        p.address: consortium.client.readers(p.address, category="general", author=p.address).keys
        for p in consortium.patients
    }
    nonces = {p.address: consortium.client.next_nonce(p.address) for p in consortium.patients}
    sealed: list[tuple[Actor, SealedVersion, int]] = []
    start = time.perf_counter()
    for i in range(count):
        patient = consortium.patients[i % len(consortium.patients)]
        nonce = nonces[patient.address]
        nonces[patient.address] += 1
        record_id = record_id_for(chain_id, patient.address, nonce)
        version = seal_version(
            chain_id=chain_id,
            record_id=record_id,
            version=1,
            content=fhir_document(size, i),
            kind="fhir",
            media_type=FHIR_MEDIA_TYPE,
            fhir_version="4.0.1",
            resource_type="Binary",
            category="general",
            readers=readers_of[patient.address],
        )
        sealed.append((patient, version, nonce))
    return sealed, count / (time.perf_counter() - start)


def bench_records(
    consortium: _Consortium,
    count: int,
    size: int,
    progress: Progress,
    lanes: int = 4,
    timed: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """Upload blobs and submit their record.create transactions in chunks, on
    ``lanes`` connections with disjoint patients, so uploads and admission overlap.
    ``timed`` is called as the clock starts (after sealing and signing)."""
    sealed, seal_rate = _seal_records(consortium, count, size)
    chain_id = consortium.client.chain_id
    streams: list[list[tuple[bytes, bytes]]] = [[] for _ in range(lanes)]
    patient_lane = {p.address: i % lanes for i, p in enumerate(consortium.patients)}
    for actor, version, nonce in sealed:
        tx = txmod.build(
            "record.create",
            chain_id,
            Address(actor.address),
            nonce,
            version.payload(0),
            actor.identity.signing,
        )
        streams[patient_lane[actor.address]].append((version.blob, tx.to_bytes()))
    clients = [EhrClient(consortium.client.base_url, timeout=120.0) for _ in range(lanes)]
    try:
        timed()
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            list(pool.map(_upload_and_create, clients, streams))
        _wait_idle(consortium.client)
        progress("records", count, count)
        return count / (time.perf_counter() - start), seal_rate
    finally:
        for client in clients:
            client.close()


def _upload_and_create(client: EhrClient, items: list[tuple[bytes, bytes]]) -> None:
    for i in range(0, len(items), 32):
        chunk = items[i : i + 32]
        client.put_blobs([blob for blob, _ in chunk])
        outcomes = client.submit_batch([tx for _, tx in chunk])
        failed = [o.error for o in outcomes if o.error is not None]
        if failed:
            raise RuntimeError(f"bench records rejected: {failed[0]}")


def bench_reads(consortium: _Consortium, count: int, progress: Progress) -> list[float]:
    latencies: list[float] = []
    for patient in consortium.patients:
        patient.forget_nonce()
    for i in range(count):
        patient = consortium.patients[i % len(consortium.patients)]
        start = time.perf_counter()
        patient.get(consortium.records[patient.address], 1)
        latencies.append((time.perf_counter() - start) * 1000)
        if i % 50 == 0:
            progress("reads", i, count)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_bench(
    data_dir: Path,
    *,
    txs: int = 40_000,
    records: int = 2_000,
    reads: int = 500,
    patients: int = 50,
    record_kib: int = 64,
    json_out: Path | None = None,
    progress: Progress = _noop,
) -> BenchResult:
    """Start a fresh node in a new run directory under data_dir, run the three
    workloads and the ceilings."""
    progress("ceilings", 0, 1)
    ceilings = bench_ceilings.measure()
    progress("ceilings", 1, 1)
    port = free_port()
    run_dir = data_dir / time.strftime("run-%Y%m%d-%H%M%S")
    setup = init_node(
        run_dir / "node",
        password=PASSWORD,
        chain_id="ehrchain-bench",
        port=port,
        kdf=KdfParams.FAST_FOR_TESTS,
    )
    process = NodeProcess(run_dir / "node", port, PASSWORD, run_dir / "node-process.log")
    process.start()
    try:
        with EhrClient(process.url, timeout=120.0) as client:
            consortium = _Consortium(client, setup.admin, patients)
            tx_rate = bench_txs(consortium, txs, progress)
            record_rate, seal_rate = bench_records(consortium, records, record_kib * 1024, progress)
            latencies = bench_reads(consortium, reads, progress)
    finally:
        process.stop()
    result = BenchResult(
        tx_per_s=tx_rate,
        txs=txs,
        records_per_s=record_rate,
        records=records,
        record_bytes=record_kib * 1024,
        seal_per_s=seal_rate,
        read_p50_ms=statistics.median(latencies),
        read_p99_ms=percentile(latencies, 99),
        reads=reads,
        ed25519_verify_per_s=ceilings.ed25519_verify_per_s,
        sqlite_insert_per_s=ceilings.sqlite_insert_per_s,
        verify_and_persist_per_s=ceilings.verify_and_persist_per_s,
        blob_store_per_s=ceilings.blob_store_per_s,
    )
    if json_out is not None:
        json_out.write_text(json.dumps({**asdict(result), **result.ratios()}, indent=2) + "\n")
    return result


def summary(result: BenchResult) -> dict[str, Any]:
    """The figures with their targets and same-run ceilings, for printing."""
    ratios = result.ratios()
    return {
        "committed tx/s": (
            result.tx_per_s,
            ">= 9000",
            result.verify_and_persist_per_s,
            ratios["tx_vs_verify_and_persist"],
        ),
        f"records/s ({result.record_bytes // 1024} KiB)": (
            result.records_per_s,
            ">= 1500",
            result.blob_store_per_s,
            ratios["records_vs_blob_store"],
        ),
        "read p50 ms": (result.read_p50_ms, "<= 5", None, None),
        "read p99 ms": (result.read_p99_ms, "", None, None),
        "client seal/s": (result.seal_per_s, "", None, None),
    }
