"""One BFT row with CPU accounting: committed tx/s, finality at half load, and the CPU
every node and verifier process spent per committed transaction.

Usage: .venv/bin/python benchmarks/network_cpu.py [--validators 4] [--block-txs 5000]
       [--commit-pause-ms MS] [--txs 20000] [--latency-s 10] [--data-dir DIR]

The steps in BENCHMARKS.md ("Where the time goes") were measured with this, one run
per step. CPU is user + system time from /proc of each node process and its children
(the verifier workers), read before and after the throughput phase and again after the
half-load phase (whose small paced batches cost more per transaction).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
from contextlib import closing
from pathlib import Path

import httpx

from ehrchain.node import bench_network
from ehrchain.node.bench_load import commit_load, finality_under_load
from ehrchain.node.bench_workload import Signer

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process and its descendants, by pid."""
    seen: dict[int, float] = {}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seen[pid] = (int(fields[11]) + int(fields[12])) / TICKS
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--block-txs", type=int, default=5_000)
    parser.add_argument(
        "--commit-pause-ms", type=int, default=None, help="the nodes' commit_pause_ms"
    )
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    signer = Signer()
    with (
        tempfile.TemporaryDirectory(prefix="ehrchain-netcpu-") as tmp,
        closing(signer),
        bench_network.consortium(
            args.data_dir or Path(tmp) / "net",
            args.validators,
            args.block_txs,
            max(8, 2 * args.validators),
            signer,
            **pause_setting(args.commit_pause_ms),
        ) as (net, workload),
    ):
        commit_load(net.urls, workload, min(args.txs, 512 * args.validators))  # warm-up
        nodes = [p.pid for p in net.processes]
        before, gc_before = cpu_seconds(nodes), gc_seconds(net.urls)
        result = commit_load(net.urls, workload, args.txs)
        after, gc_after = cpu_seconds(nodes), gc_seconds(net.urls)
        offered, latencies = finality_under_load(
            net.urls, workload, result.tx_per_s / 2, args.latency_s
        )
        paced, gc_paced = cpu_seconds(nodes), gc_seconds(net.urls)
    latencies.sort()
    print(f"validators {args.validators}, blocks of {args.block_txs}, {args.txs} reads")
    print(f"committed tx/s {result.tx_per_s:,.0f} ({result.blocks} blocks, {result.seconds:.2f} s)")
    print(f"CPU {_per_tx(before, after, nodes, result.committed)}")
    print(f"  in the cycle collector {gc_after - gc_before:.2f} s")
    print(
        f"finality at {offered:,.0f} tx/s offered: p50 {statistics.median(latencies):,.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)]:,.0f} ms"
    )
    print(f"CPU at that load {_per_tx(after, paced, nodes, len(latencies))}")
    print(f"  in the cycle collector {gc_paced - gc_after:.2f} s")


def pause_setting(commit_pause_ms: int | None) -> dict[str, int]:
    """The node setting to pass, when one was asked for (else the nodes' default)."""
    return {} if commit_pause_ms is None else {"commit_pause_ms": commit_pause_ms}


def gc_seconds(urls: list[str]) -> float:
    """CPU seconds the nodes' cycle collectors have spent, from their /metrics."""
    total = 0.0
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=30).text
        total += sum(float(v) for v in _GC_SAMPLE.findall(text))
    return total


_GC_SAMPLE = re.compile(r"^ehrchain_gc_cpu_seconds_total\{[^}]*\} (\S+)$", re.MULTILINE)


def _per_tx(before: dict[int, float], after: dict[int, float], nodes: list[int], txs: int) -> str:
    spent = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    main_spent = sum(after.get(p, 0.0) - before.get(p, 0.0) for p in nodes)
    return (
        f"{spent:.1f} s (node main processes {main_spent:.1f} s): "
        f"{spent / txs * 1e6:,.0f} us per committed transaction"
    )


if __name__ == "__main__":
    main()
