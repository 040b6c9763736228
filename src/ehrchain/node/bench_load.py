"""The timed phases of the network bench: committed throughput and finality latency.

Every transaction is signed before its phase's clock starts (``bench_workload``).
"Committed at a node" is read from that node: ``GET /v1/txs/{id}?wait=`` answers
when a block holding the transaction is in its ledger, and a node commits a BFT
block only with its commit certificate.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from ehrchain.client.http import EhrClient
from ehrchain.node.bench_workload import Workload, batches, send_lane

__all__ = [
    "Throughput",
    "commit_load",
    "finality_under_load",
    "idle_finality",
    "txs_between",
]

LANES_PER_NODE: Final = 2
"""Two connections per node, so one batch is verified while the previous is admitted."""
BATCH: Final = 1_000
PACE_S: Final = 0.1
"""Finality phase: each lane sends one batch per period."""
WAITERS_PER_NODE: Final = 8
"""Concurrent long-polls per node, well under the node's 40 worker threads."""
COMMIT_TIMEOUT_S: Final = 600.0
IDLE_SAMPLES: Final = 5


@dataclass(frozen=True, slots=True)
class Throughput:
    txs: int
    """Submitted."""
    committed: int
    """Counted in the blocks the phase added."""
    blocks: int
    seconds: float

    @property
    def tx_per_s(self) -> float:
        return self.committed / self.seconds


def commit_load(urls: Sequence[str], workload: Workload, count: int) -> Throughput:
    """Send ``count`` reads on two lanes per node at once; the time until every node has
    committed them all."""
    lanes = workload.lanes(count, len(urls) * LANES_PER_NODE)
    clients = [EhrClient(urls[i % len(urls)], timeout=120.0) for i in range(len(lanes))]
    try:
        with EhrClient(urls[0], timeout=120.0) as first:
            low = int(first.status()["height"])
            start = time.perf_counter()
            with ThreadPoolExecutor(len(lanes)) as pool:
                list(pool.map(_send_and_wait, clients, lanes))
            high = _wait_counted(first, low, count)
            _wait_height(urls, high)
            seconds = time.perf_counter() - start
            committed = txs_between(first, low, high)
    finally:
        for client in clients:
            client.close()
    return Throughput(count, committed, high - low, seconds)


def _send_and_wait(client: EhrClient, lane: Sequence[bytes]) -> None:
    last = send_lane(client, batches(lane, BATCH))
    if last is not None:
        client.wait_for_tx(last, COMMIT_TIMEOUT_S)


def _wait_counted(client: EhrClient, low: int, count: int) -> int:
    """The height at which the blocks above ``low`` hold ``count`` transactions."""
    deadline = time.monotonic() + COMMIT_TIMEOUT_S
    seen, total = low, 0
    while total < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{total} of {count} bench transactions committed")
        height = int(client.status()["height"])
        total += txs_between(client, seen, height)
        seen = height
        if total < count:
            time.sleep(0.01)
    return seen


def _wait_height(urls: Sequence[str], height: int) -> None:
    deadline = time.monotonic() + COMMIT_TIMEOUT_S
    for url in urls:
        with EhrClient(url) as client:
            while int(client.status()["height"]) < height:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not reach height {height}")
                time.sleep(0.01)


def txs_between(client: EhrClient, low: int, high: int) -> int:
    """Transactions in the blocks above height ``low`` up to ``high``."""
    total = 0
    start = low + 1
    while start <= high:
        page = client.chain(start, min(500, high - start + 1), full=False)["blocks"]
        if not page:
            break
        total += sum(int(b["tx_count"]) for b in page)
        start = int(page[-1]["height"]) + 1
    return total


def idle_finality(urls: Sequence[str], workload: Workload) -> float:
    """Median ms from submitting one transaction to its commit, on an idle network."""
    lane = workload.lanes(IDLE_SAMPLES, 1)[0]
    latencies: list[float] = []
    for i, tx in enumerate(lane):
        with EhrClient(urls[i % len(urls)]) as client:
            start = time.perf_counter()
            last = send_lane(client, [[tx]])
            assert last is not None
            client.wait_for_tx(last, COMMIT_TIMEOUT_S)
            latencies.append((time.perf_counter() - start) * 1000)
    return statistics.median(latencies)


class _Waiters:
    """Long-polls of each node on their own threads, one client per thread and node."""

    def __init__(self, urls: Sequence[str]) -> None:
        self._pools = {url: ThreadPoolExecutor(WAITERS_PER_NODE) for url in urls}
        self._local = threading.local()
        self._clients: list[EhrClient] = []
        self._lock = threading.Lock()

    def submit(self, url: str, tx_id: bytes, sent: float, size: int) -> Future[list[float]]:
        return self._pools[url].submit(self._wait, url, tx_id, sent, size)

    def _wait(self, url: str, tx_id: bytes, sent: float, size: int) -> list[float]:
        clients: dict[str, EhrClient] = self._local.__dict__.setdefault("clients", {})
        if url not in clients:
            clients[url] = EhrClient(url, timeout=120.0)
            with self._lock:
                self._clients.append(clients[url])
        clients[url].wait_for_tx(tx_id, COMMIT_TIMEOUT_S)
        return [(time.perf_counter() - sent) * 1000] * size

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown()
        for client in self._clients:
            client.close()


def finality_under_load(
    urls: Sequence[str], workload: Workload, rate: float, seconds: float
) -> tuple[float, list[float]]:
    """Offer ``rate`` tx/s for ``seconds`` on one paced lane per node; return the rate
    actually offered and each transaction's ms from its batch's submission to the
    commit of the batch's last transaction at the node it went to."""
    per_batch = max(1, round(rate * PACE_S / len(urls)))
    rounds = max(1, math.ceil(seconds / PACE_S))
    lanes = workload.lanes(per_batch * rounds * len(urls), len(urls))
    waiters = _Waiters(urls)
    start = time.perf_counter() + 0.05
    try:
        with ThreadPoolExecutor(len(urls)) as senders:
            paced = [
                senders.submit(
                    _paced_lane, url, lane, per_batch, start + i * PACE_S / len(urls), waiters
                )
                for i, (url, lane) in enumerate(zip(urls, lanes, strict=True))
            ]
            sent = [p.result() for p in paced]
        latencies = [ms for _, futures in sent for f in futures for ms in f.result()]
        last_sent = max(t for t, _ in sent)
    finally:
        waiters.close()
    offered = len(latencies) / (last_sent - start + PACE_S)
    return offered, latencies


def _paced_lane(
    url: str, lane: Sequence[bytes], per_batch: int, first: float, waiters: _Waiters
) -> tuple[float, list[Future[list[float]]]]:
    futures: list[Future[list[float]]] = []
    sent = first
    with EhrClient(url, timeout=120.0) as client:
        for k, batch in enumerate(batches(lane, per_batch)):
            pause = first + k * PACE_S - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent = time.perf_counter()
            last = send_lane(client, [batch])
            assert last is not None
            futures.append(waiters.submit(url, last, sent, len(batch)))
    return sent, futures
