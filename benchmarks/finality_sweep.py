"""Finality at several offered loads on one BFT consortium (the bench measures only half
of the measured throughput).

Usage: .venv/bin/python benchmarks/finality_sweep.py [--validators 4] [--block-txs 5000]
       [--commit-pause-ms MS] [--seconds 8] RATE [RATE ...]
       (default rates: 40 200 600 1300 tx/s)

Each rate is offered the way `ehrchain bench --network` offers half load: one connection
per node sends a batch every 100 ms; each transaction is timed from its batch's POST to
the commit of the batch's last transaction at that node. Also printed: the blocks the
phase committed and the median time between their timestamps (the height's length), and
the CPU the node processes and their verifier workers spent (cores, and ms per height).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path

from network_cpu import cpu_seconds, pause_setting  # beside this script

from ehrchain.client.http import EhrClient
from ehrchain.node import bench_network
from ehrchain.node.bench_load import commit_load, finality_under_load
from ehrchain.node.bench_workload import Signer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rates", type=float, nargs="*", default=[40, 200, 600, 1300])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--block-txs", type=int, default=5_000)
    parser.add_argument(
        "--commit-pause-ms", type=int, default=None, help="the nodes' commit_pause_ms"
    )
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    signer = Signer()
    with (
        tempfile.TemporaryDirectory(prefix="ehrchain-finality-") as tmp,
        closing(signer),
        bench_network.consortium(
            Path(tmp) / "net",
            args.validators,
            args.block_txs,
            max(8, 2 * args.validators),
            signer,
            **pause_setting(args.commit_pause_ms),
        ) as (net, workload),
    ):
        commit_load(net.urls, workload, 512 * args.validators)  # warm-up
        nodes = [p.pid for p in net.processes]
        for rate in args.rates:
            before = _height(net.urls[0])
            cpu_before, started = cpu_seconds(nodes), time.perf_counter()
            offered, latencies = finality_under_load(net.urls, workload, rate, args.seconds)
            cpu_after, elapsed = cpu_seconds(nodes), time.perf_counter() - started
            spent = sum(t - cpu_before.get(pid, 0.0) for pid, t in cpu_after.items())
            stamps = _timestamps(net.urls[0], before + 1, _height(net.urls[0]))
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99)]
            gaps = [b - a for a, b in itertools.pairwise(stamps)] or [0]
            print(
                f"offered {offered:,.0f} tx/s: finality p50 "
                f"{statistics.median(latencies):,.0f} ms, p99 {p99:,.0f} ms; "
                f"{len(stamps)} blocks, a height every {statistics.median(gaps):,.0f} ms; "
                f"CPU {spent / elapsed:.2f} cores, {spent / max(1, len(stamps)) * 1000:,.0f} ms "
                "per height",
                flush=True,
            )


def _height(url: str) -> int:
    with EhrClient(url) as client:
        return int(client.status()["height"])


def _timestamps(url: str, start: int, end: int) -> list[int]:
    """Block timestamps (ms, the proposer's clock) of heights ``start`` to ``end``."""
    stamps: list[int] = []
    with EhrClient(url) as client:
        while start <= end:
            blocks = client.chain(start, min(100, end - start + 1), full=False)["blocks"]
            if not blocks:
                break
            stamps += [int(b["header"]["timestamp_ms"]) for b in blocks]
            start += len(blocks)
    return stamps


if __name__ == "__main__":
    main()
