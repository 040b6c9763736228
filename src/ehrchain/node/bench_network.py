"""`ehrchain bench --network`: a real BFT consortium of node processes on loopback.

For each configuration (number of validators, block size) a fresh network is
started and measured in four phases, each beside a same-run ceiling:

1. throughput: audited reads signed before the clock, sent in batches on two
   lanes per node at once; the clock stops when every node has committed a
   block holding the last of them (a decided block carries its commit
   certificate). The committed count is read back from the blocks.
2. idle finality: one transaction at a time on an idle network.
3. finality under load: batches sent on a fixed schedule at half the measured
   throughput; each batch is timed from its submission until the node it went
   to has committed its last transaction (``GET /v1/txs/{id}?wait=``).
4. catch-up (four or more validators, which tolerate one stopped): one
   validator is stopped, the others commit more transactions, the stopped one
   is restarted; the verified history it commits after it answers, per second
   until its head equals the others'.

The ceiling of a throughput figure is the machine's verify-then-persist rate:
one core's, times the cores, divided by the validators, since every validator
verifies and persists every transaction. Catch-up checks signatures in the
node's verifier workers beside its main process: its ceiling is every core's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ehrchain.client.http import EhrClient
from ehrchain.crypto.keystore import KdfParams, load_identity
from ehrchain.node import bench_ceilings
from ehrchain.node.bench_load import (
    commit_load,
    finality_under_load,
    idle_finality,
    txs_between,
)
from ehrchain.node.bench_results import CatchUp, NetworkBenchResult, Row, machine
from ehrchain.node.bench_workload import Signer, Workload, wait_settled
from ehrchain.node.network import Network, network_up
from ehrchain.node.process import free_ports
from ehrchain.node.setup import ADMIN_KEY_FILE

__all__ = ["NetworkBenchConfig", "consortium", "run_network_bench"]

Progress = Callable[[str, int, int], None]
PASSWORD: Final = "bench-only-password"  # noqa: S105 (throwaway bench keystores)
PHASES: Final = 5
"""Progress steps of a row: ceilings, start-up, throughput, finality, catch-up."""
BFT_QUORUM_SPARE: Final = 4
"""Fewest validators that keep deciding with one stopped (n = 3f + 1, f = 1)."""


@dataclass(frozen=True, slots=True)
class NetworkBenchConfig:
    validators: tuple[int, ...] = (1, 4, 7)
    block_txs: tuple[int, ...] = (500, 2000, 5000)
    txs: int = 20_000
    """Transactions of the throughput phase (and of the catch-up history)."""
    latency_s: float = 10.0
    """Length of the finality-under-load phase."""
    patients: int = 50
    catch_up: bool = True

    def __post_init__(self) -> None:
        if not self.validators or min(self.validators) < 1:
            raise ValueError("validators: one or more counts, each at least 1")
        if not self.block_txs or min(self.block_txs) < 1:
            raise ValueError("block sizes: one or more, each at least 1 transaction")
        if self.txs < 1 or self.latency_s <= 0:
            raise ValueError("txs and latency_s must be positive")


def _noop(stage: str, done: int, total: int) -> None:
    return None


def run_network_bench(
    data_dir: Path, config: NetworkBenchConfig, progress: Progress = _noop
) -> NetworkBenchResult:
    """Every (validators, block size) row of ``config``, each on a fresh network
    under a new run directory in ``data_dir``."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    run_dir = data_dir / time.strftime("net-%Y%m%d-%H%M%S")
    rows: list[Row] = []
    signer = Signer()
    try:
        for validators in config.validators:
            for block_txs in config.block_txs:
                root = run_dir / f"v{validators}-b{block_txs}"
                rows.append(_row(root, validators, block_txs, config, signer, progress))
    finally:
        signer.close()
    return NetworkBenchResult(started, machine(), load_before, config_json(config), tuple(rows))


def config_json(config: NetworkBenchConfig) -> dict[str, object]:
    return {
        "validators": list(config.validators),
        "block_txs": list(config.block_txs),
        "txs": config.txs,
        "latency_s": config.latency_s,
        "patients": config.patients,
        "catch_up": config.catch_up,
    }


def _row(
    root: Path,
    validators: int,
    block_txs: int,
    config: NetworkBenchConfig,
    signer: Signer,
    progress: Progress,
) -> Row:
    stage = f"{validators} validators, blocks of {block_txs}"
    progress(stage, 0, PHASES)
    verify_rate = bench_ceilings.ed25519_verify_rate()
    insert_rate = bench_ceilings.sqlite_insert_rate()
    progress(stage, 1, PHASES)
    patients = max(config.patients, 2 * validators)
    with consortium(root, validators, block_txs, patients, signer) as (net, workload):
        commit_load(net.urls, workload, min(config.txs, 256 * 2 * validators))  # warm-up
        progress(stage, 2, PHASES)
        throughput = commit_load(net.urls, workload, config.txs)
        idle_ms = idle_finality(net.urls, workload)
        progress(stage, 3, PHASES)
        offered, latencies = finality_under_load(
            net.urls, workload, throughput.tx_per_s / 2, config.latency_s
        )
        catch_up = None
        if config.catch_up and validators >= BFT_QUORUM_SPARE:
            progress(stage, 4, PHASES)
            catch_up = measure_catch_up(net, workload, config.txs)
    progress(stage, PHASES, PHASES)
    return Row(
        validators=validators,
        block_txs=block_txs,
        throughput=throughput,
        idle_finality_ms=idle_ms,
        offered_per_s=offered,
        finality_ms=tuple(latencies),
        catch_up=catch_up,
        verify_per_s=verify_rate,
        insert_per_s=insert_rate,
        cores=os.cpu_count() or 1,
    )


@contextmanager
def consortium(
    root: Path,
    validators: int,
    block_txs: int,
    patients: int,
    signer: Signer,
    **node_settings: int,
) -> Iterator[tuple[Network, Workload]]:
    """A fresh BFT consortium in ``root`` (every node a validator, blocks of at most
    ``block_txs``, ``node_settings`` over the other defaults) with ``patients`` bench
    patients on it; stopped on exit."""
    with _network(root, validators, block_txs, node_settings) as net:
        admin = load_identity(root / ADMIN_KEY_FILE, PASSWORD)
        yield net, Workload.create(net.urls, admin, patients, signer)


@contextmanager
def _network(
    root: Path, validators: int, block_txs: int, node_settings: Mapping[str, int] | None = None
) -> Iterator[Network]:
    net = network_up(
        root,
        validators,
        "bft",
        free_ports(validators),
        chain_id="ehrchain-netbench",
        password=PASSWORD,
        kdf=KdfParams.FAST_FOR_TESTS,
        node_settings={**(node_settings or {}), "max_block_txs": block_txs},
    )
    try:
        yield net
    finally:
        net.stop()


def measure_catch_up(net: Network, workload: Workload, txs: int) -> CatchUp:
    """Stop the last validator, commit ``txs`` with the others, restart it and time how
    fast it verifies and commits the history it missed."""
    victim = net.processes[-1]
    survivors = net.urls[:-1]
    victim.stop()
    degraded = commit_load(survivors, workload, txs)
    target = wait_settled(survivors)
    spawned = time.perf_counter()
    victim.start(timeout_s=120.0)
    ready = time.perf_counter()
    with EhrClient(victim.url) as client:
        from_height = int(client.status()["height"])
        while int(client.status()["height"]) < target:
            time.sleep(0.02)
    done = time.perf_counter()
    wait_settled(net.urls)
    with EhrClient(survivors[0]) as client:
        history = txs_between(client, from_height, target)
    return CatchUp(
        txs=txs,
        degraded_tx_per_s=degraded.tx_per_s,
        verified_txs=history,
        seconds_after_ready=done - ready,
        seconds_from_spawn=done - spawned,
    )
