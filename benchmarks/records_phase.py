"""Only the records phase of `ehrchain bench`, against a fresh node, with the CPU it cost.

Usage: .venv/bin/python benchmarks/records_phase.py [--records 4000] [--lanes 4]

Prints records/s and, for the timed upload, the node process's user and system CPU
and this client's, in cores (CPU seconds per second of the phase). Used to profile the
node while it stores records: the node's pid is printed first, for `perf record -p` or
`py-spy record -p` started while the phase runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from ehrchain.client.http import EhrClient
from ehrchain.crypto.keystore import KdfParams
from ehrchain.node import bench
from ehrchain.node.process import NodeProcess, free_port
from ehrchain.node.setup import init_node

TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=4_000)
    parser.add_argument("--lanes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ehrchain-records-") as tmp:
        port = free_port()
        setup = init_node(
            Path(tmp) / "node",
            password=bench.PASSWORD,
            chain_id="ehrchain-bench",
            port=port,
            kdf=KdfParams.FAST_FOR_TESTS,
        )
        node = NodeProcess(Path(tmp) / "node", port, bench.PASSWORD, Path(tmp) / "node.log")
        node.start()
        print(f"node pid {node.pid}", flush=True)
        try:
            with EhrClient(node.url, timeout=120.0) as client:
                consortium = bench._Consortium(client, setup.admin, 50)
                marks: list[tuple[float, tuple[float, float], resource.struct_rusage]] = []

                def mark() -> None:
                    marks.append((time.perf_counter(), cpu_times(node.pid), own()))

                rate, _ = bench.bench_records(
                    consortium, args.records, 64 * 1024, bench._noop, args.lanes, mark
                )
                mark()
        finally:
            node.stop()
    (t0, (u0, s0), c0), (t1, (u1, s1), c1) = marks
    wall = t1 - t0
    print(f"records/s {rate:,.0f} ({args.records} records, {args.lanes} upload connections)")
    print(
        f"cores during the upload: node user {(u1 - u0) / wall:.2f} system {(s1 - s0) / wall:.2f}; "
        f"client user {(c1.ru_utime - c0.ru_utime) / wall:.2f} "
        f"system {(c1.ru_stime - c0.ru_stime) / wall:.2f}"
    )


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def own() -> resource.struct_rusage:
    return resource.getrusage(resource.RUSAGE_SELF)


if __name__ == "__main__":
    main()
