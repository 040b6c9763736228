"""Run `ehrchain bench` once and print a Markdown section for BENCHMARKS.md.

Usage: .venv/bin/python benchmarks/record_bench.py [--txs N] [--records N] [--reads N]

The section names the machine (CPU model, cores, load average before the run)
and the exact command, and prints each figure beside its same-run ceiling.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from ehrchain.node.bench import run_bench, summary


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--txs", type=int, default=40_000)
    parser.add_argument("--records", type=int, default=2_000)
    parser.add_argument("--reads", type=int, default=500)
    args = parser.parse_args()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ehrchain-bench-") as tmp:
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        result = run_bench(Path(tmp), txs=args.txs, records=args.records, reads=args.reads)
    print(f"### Run of {started}\n")
    print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"- load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"- command: `.venv/bin/ehrchain bench --txs {args.txs} --records {args.records}"
        f" --reads {args.reads} --data-dir DIR`\n"
    )
    print("| measure | value | target | same-run ceiling | of ceiling |")
    print("| --- | ---: | --- | ---: | ---: |")
    for name, (value, target, ceiling, ratio) in summary(result).items():
        ceiling_text = "-" if ceiling is None else f"{ceiling:,.0f}"
        ratio_text = "-" if ratio is None else f"{ratio:.0%}"
        print(f"| {name} | {value:,.1f} | {target} | {ceiling_text} | {ratio_text} |")


if __name__ == "__main__":
    main()
