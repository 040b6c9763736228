"""Run `ehrchain bench --network` once; write its JSON and plot, print a BENCHMARKS.md section.

Usage: .venv/bin/python benchmarks/record_network_bench.py [--validators 1,4,7]
       [--block-txs 500,2000,5000] [--txs N] [--latency-s S] [--no-catch-up]

Writes benchmarks/network-results.json and docs/img/network-bench.png (paths can
be changed), and prints the Markdown section: machine, load average before the
run, the exact command, each figure beside its same-run ceiling, the targets.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ehrchain.node.bench_network import NetworkBenchConfig, run_network_bench
from ehrchain.node.bench_report import markdown, plot, write_json

ROOT = Path(__file__).resolve().parent.parent


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--validators", default="1,4,7")
    parser.add_argument("--block-txs", default="500,2000,5000")
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument("--no-catch-up", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "network-results.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "network-bench.png")
    args = parser.parse_args()
    config = NetworkBenchConfig(
        validators=_counts(args.validators),
        block_txs=_counts(args.block_txs),
        txs=args.txs,
        latency_s=args.latency_s,
        catch_up=not args.no_catch_up,
    )
    with tempfile.TemporaryDirectory(prefix="ehrchain-netbench-") as tmp:
        result = run_network_bench(Path(tmp), config, lambda s, d, t: print(f"{s}: {d}/{t}"))
    write_json(result, args.json)
    plot(result, args.plot)
    command = (
        f".venv/bin/ehrchain bench --network --validators {args.validators}"
        f" --block-txs {args.block_txs} --txs {args.txs} --latency-s {args.latency_s:g}"
        f"{' --no-catch-up' if args.no_catch_up else ''} --data-dir DIR"
    )
    print()
    print(markdown(result, command))


if __name__ == "__main__":
    main()
