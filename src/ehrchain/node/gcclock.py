"""The node's cycle-collector settings and the CPU time its passes take.

``tune`` runs once a node has started: it collects, freezes what start-up built
(modules, routes, the web UI's templates) so no later pass scans it again, sets
``GC_THRESHOLDS`` and starts the clock that ``/metrics`` reports
(``ehrchain_gc_cpu_seconds_total``). A pass runs on the thread that triggered
it and holds the GIL throughout, so that thread's CPU time over the pass is
the pass's cost.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Final

__all__ = ["GC_THRESHOLDS", "collections", "cpu_seconds", "tune"]

GC_THRESHOLDS: Final = (10_000, 20, 50)
"""When a pass runs (Python's defaults: 700, 10, 10). Under load a node makes a few
dozen containers per transaction at each step, nearly all freed at once by
reference counting. With the defaults, ``benchmarks/network_cpu.py`` (4
validators, a throughput and a half-load phase) saw 16 full passes over heaps of
pending transactions, 61 ms of CPU each with the GIL held, and 1.7 s of CPU in
the collector across the four nodes; with these thresholds, no full pass and
0.6 s. Cycles are still found, only less often."""

_seconds = [0.0, 0.0, 0.0]
_began = [0.0]
"""Written only by ``_on_pass``. Python runs one pass at a time (no other starts
until this one's callbacks have returned), so one start time is enough and no lock
is needed; a lock here could deadlock, as a pass may start on a thread holding it."""
_installed = False


def _on_pass(phase: str, info: dict[str, Any]) -> None:
    now = time.thread_time()
    if phase == "start":
        _began[0] = now
    else:
        _seconds[info["generation"]] += now - _began[0]


def tune() -> None:
    """Collect, freeze, set ``GC_THRESHOLDS`` and start the clock (once)."""
    global _installed
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if not _installed:
        gc.callbacks.append(_on_pass)
        _installed = True


def cpu_seconds() -> tuple[float, ...]:
    """CPU seconds spent in passes of each generation since ``tune`` (zeros before)."""
    return tuple(_seconds)


def collections() -> tuple[int, ...]:
    """Passes of each generation since the process started."""
    return tuple(int(s["collections"]) for s in gc.get_stats())
