"""Finality at several offered loads on one BFT consortium (the bench measures only half
of the measured throughput).

Usage: .venv/bin/python benchmarks/finality_sweep.py [--validators 4] [--block-txs 5000]
       [--seconds 8] RATE [RATE ...]      (default rates: 40 200 600 1300 tx/s)

Each rate is offered the way `ehrchain bench --network` offers half load: one connection
per node sends a batch every 100 ms; each transaction is timed from its batch's POST to
the commit of the batch's last transaction at that node.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from ehrchain.crypto.keystore import KdfParams, load_identity
from ehrchain.node import bench_network
from ehrchain.node.bench_load import commit_load, finality_under_load
from ehrchain.node.bench_workload import Signer, Workload
from ehrchain.node.network import network_up
from ehrchain.node.process import free_ports
from ehrchain.node.setup import ADMIN_KEY_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rates", type=float, nargs="*", default=[40, 200, 600, 1300])
    parser.add_argument("--validators", type=int, default=4)
    parser.add_argument("--block-txs", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ehrchain-finality-") as tmp:
        root = Path(tmp) / "net"
        net = network_up(
            root,
            args.validators,
            "bft",
            free_ports(args.validators),
            chain_id="ehrchain-netbench",
            password=bench_network.PASSWORD,
            kdf=KdfParams.FAST_FOR_TESTS,
            node_settings={"max_block_txs": args.block_txs},
        )
        signer = Signer()
        try:
            admin = load_identity(root / ADMIN_KEY_FILE, bench_network.PASSWORD)
            workload = Workload.create(net.urls, admin, max(8, 2 * args.validators), signer)
            commit_load(net.urls, workload, 512 * args.validators)  # warm-up
            for rate in args.rates:
                offered, latencies = finality_under_load(net.urls, workload, rate, args.seconds)
                latencies.sort()
                p99 = latencies[int(len(latencies) * 0.99)]
                print(
                    f"offered {offered:,.0f} tx/s: finality p50 "
                    f"{statistics.median(latencies):,.0f} ms, p99 {p99:,.0f} ms",
                    flush=True,
                )
        finally:
            signer.close()
            net.stop()


if __name__ == "__main__":
    main()
