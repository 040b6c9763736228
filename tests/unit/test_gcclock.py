"""The node's cycle-collector settings and clock, in a fresh interpreter (``tune``
changes process-wide state that the test process must keep as it is)."""

from __future__ import annotations

import json
import subprocess
import sys

from ehrchain.node.gcclock import GC_THRESHOLDS

PROGRAM = """
import gc, json
from ehrchain.node import gcclock
before = gcclock.cpu_seconds()
gcclock.tune()
frozen = gc.get_freeze_count()
passes = gcclock.collections()
for _ in range(2_000):
    a = []; a.append(a)  # garbage only the cycle collector can free
gc.collect()
print(json.dumps({
    "before": before, "after": gcclock.cpu_seconds(), "threshold": gc.get_threshold(),
    "frozen": frozen, "passes": passes, "passes_after": gcclock.collections(),
}))
"""


def test_tune_sets_thresholds_freezes_start_up_and_clocks_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(out.stdout)
    assert seen["before"] == [0.0, 0.0, 0.0]
    assert tuple(seen["threshold"]) == GC_THRESHOLDS
    assert seen["frozen"] > 1_000  # the imported modules' objects
    assert seen["passes_after"][2] == seen["passes"][2] + 1
    assert seen["after"][2] > 0.0
    assert seen["after"][0] == seen["after"][1] == 0.0
