"""The network bench's workload: patients on a running consortium, and audited reads
signed ahead of time and sent in lanes.

A lane is one stream of batches from its own set of patients. A node refuses a
sequence number it has not reached yet, so one patient's transactions go to one
node, in order; different lanes go to different nodes at the same time.
Transactions are signed before any clock starts, in worker processes (one job
per patient), so client-side signing is never what the bench measures.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Final

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.client.identity import new_identity, public_identity
from ehrchain.core import tx as txmod
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity
from ehrchain.crypto.signing import SigningKey
from ehrchain.node.bench import fhir_document
from ehrchain.node.network import network_status

__all__ = ["Patient", "Signer", "Workload", "batches", "send_lane", "sign_reads", "wait_settled"]

SETTLE_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class Patient:
    """A throwaway bench patient with one record; the seed signs in worker processes."""

    seed: bytes
    address: str
    record_id: str


def sign_reads(chain_id: str, patient: Patient, first_nonce: int, count: int) -> list[bytes]:
    """``count`` signed ``record.read`` audit events of the patient's own record."""
    key = SigningKey(patient.seed)
    payload = {"record_id": patient.record_id, "version": 1}
    sender = Address(patient.address)
    return [
        txmod.build("record.read", chain_id, sender, first_nonce + i, payload, key).to_bytes()
        for i in range(count)
    ]


class Signer:
    """Worker processes that sign (spawned once: forking a threaded client is unsafe)."""

    def __init__(self, workers: int | None = None) -> None:
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def reads(self, chain_id: str, jobs: Sequence[tuple[Patient, int, int]]) -> list[list[bytes]]:
        """For each ``(patient, first_nonce, count)``, its signed reads, in order."""
        futures = [self._pool.submit(sign_reads, chain_id, *job) for job in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class Workload:
    """Patients with one record each on a running network; their next nonces are tracked
    here, on the assumption (checked by the bench) that every signed read commits."""

    def __init__(self, chain_id: str, patients: Sequence[Patient], signer: Signer) -> None:
        self.chain_id = chain_id
        self.patients = tuple(patients)
        self._signer = signer
        self._nonces: dict[str, int] = {}

    @classmethod
    def create(cls, urls: Sequence[str], admin: Identity, count: int, signer: Signer) -> Workload:
        """Admit a hospital, register ``count`` patients and give each a record, through
        the first node; return once every node has committed all of it."""
        with EhrClient(urls[0], timeout=120.0) as client:
            hospital_admin = new_identity("bench-hospital-admin", "hospital_admin")
            Actor(admin, client).admit_hospital(
                "bench-h1", "Bench Hospital", public_identity(hospital_admin)
            )
            hospital = Actor(hospital_admin, client)
            identities = [new_identity(f"bench-patient-{i}", "patient") for i in range(count)]
            registrations = [
                hospital.build("patient.register", public_identity(p).to_payload())
                for p in identities
            ]
            send_lane(client, [[t.to_bytes() for t in registrations]])
            records = [
                Actor(p, client).put_fhir(p.address, fhir_document(1024, i), wait=False)[0]
                for i, p in enumerate(identities)
            ]
            wait_settled(urls)
            if any(client.record(r) is None for r in records):
                raise RuntimeError("a bench record was not committed")
            workload = cls(
                client.chain_id,
                [
                    Patient(p.signing.seed, p.address, r)
                    for p, r in zip(identities, records, strict=True)
                ],
                signer,
            )
            workload._nonces = {p.address: client.next_nonce(p.address) for p in identities}
        return workload

    def lanes(self, count: int, lanes: int) -> list[list[bytes]]:
        """``count`` signed reads in ``lanes`` lanes; lane i holds the patients i, i + lanes, …,
        taking turns, each patient's reads in nonce order."""
        if lanes > len(self.patients):
            raise ValueError(f"{lanes} lanes need at least as many patients")
        members = [self.patients[i::lanes] for i in range(lanes)]
        sizes = [count // lanes + (1 if i < count % lanes else 0) for i in range(lanes)]
        jobs: list[tuple[Patient, int, int]] = []
        for group, size in zip(members, sizes, strict=True):
            for q, patient in enumerate(group):
                share = size // len(group) + (1 if q < size % len(group) else 0)
                jobs.append((patient, self._nonces[patient.address], share))
                self._nonces[patient.address] += share
        signed = iter(self._signer.reads(self.chain_id, jobs))
        out: list[list[bytes]] = []
        for group, size in zip(members, sizes, strict=True):
            own = [iter(next(signed)) for _ in group]
            out.append([next(own[j % len(group)]) for j in range(size)])
        return out


def batches(lane: Sequence[bytes], size: int) -> list[list[bytes]]:
    return [list(lane[i : i + size]) for i in range(0, len(lane), size)]


def send_lane(client: EhrClient, lane_batches: Sequence[Sequence[bytes]]) -> bytes | None:
    """Send a lane's batches in order; the id of its last transaction. Any refusal raises:
    a bench whose transactions are refused measures nothing."""
    last: bytes | None = None
    for batch in lane_batches:
        outcomes = client.submit_batch(list(batch))
        failed = [o.error for o in outcomes if o.error is not None]
        if failed:
            raise RuntimeError(f"bench transactions refused by {client.base_url}: {failed[0]}")
        last = outcomes[-1].tx_id
    return last


def wait_settled(urls: Sequence[str], timeout_s: float = SETTLE_TIMEOUT_S) -> int:
    """Wait until every node has an empty pool and the same head; return its height."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses = network_status(urls, include_peers=False)
        idle = all("error" not in s and s["pending"] == 0 for s in statuses)
        if idle and len({s["head_hash"] for s in statuses}) == 1:
            return int(statuses[0]["height"])
        time.sleep(0.05)
    raise TimeoutError(f"nodes did not settle within {timeout_s:.0f} s")
