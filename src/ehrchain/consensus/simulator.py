"""The seeded, deterministic network simulator for both engines, in one import.

``simnet`` is the discrete-event network (virtual clock, faults), ``sim_bft``
and ``sim_pow`` drive the shipped handlers over it and check what they did.
A run is a pure function of its arguments: the same seed gives the same trace.
"""

from ehrchain.consensus.sim_bft import (
    BYZANTINE,
    Behaviour,
    BftRun,
    Decision,
    certificate_errors,
    chain_errors,
    run_bft,
    safety_violations,
)
from ehrchain.consensus.sim_pow import Miner, PowRun, convergence_errors, ledger_errors, run_pow
from ehrchain.consensus.simnet import Crash, Faults, NetStats, Partition, random_faults

__all__ = [
    "BYZANTINE",
    "Behaviour",
    "BftRun",
    "Crash",
    "Decision",
    "Faults",
    "Miner",
    "NetStats",
    "Partition",
    "PowRun",
    "certificate_errors",
    "chain_errors",
    "convergence_errors",
    "ledger_errors",
    "random_faults",
    "run_bft",
    "run_pow",
    "safety_violations",
]
