"""Results of the network bench: one row per (validators, block size), with ceilings
and the issue's targets; JSON for files, plain values for tables and plots."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ehrchain.node.bench import percentile
from ehrchain.node.bench_ceilings import verify_then_persist
from ehrchain.node.bench_load import Throughput
from ehrchain.node.settings import Settings

__all__ = ["CatchUp", "Machine", "NetworkBenchResult", "Row", "Target", "machine"]


@dataclass(frozen=True, slots=True)
class CatchUp:
    """A stopped validator restarted behind ``txs`` committed transactions."""

    txs: int
    degraded_tx_per_s: float
    """Committed tx/s of the others while it was stopped (its proposer turns time out)."""
    verified_txs: int
    """Transactions in the blocks it committed after it answered its first request."""
    seconds_after_ready: float
    seconds_from_spawn: float
    """Process start to the head of the others, including Python start-up."""

    @property
    def tx_per_s(self) -> float:
        """From readiness on; from process start when it had caught up before answering."""
        if self.verified_txs == 0:
            return self.txs / self.seconds_from_spawn
        return self.verified_txs / self.seconds_after_ready


@dataclass(frozen=True, slots=True)
class Row:
    validators: int
    block_txs: int
    throughput: Throughput
    idle_finality_ms: float
    offered_per_s: float
    finality_ms: tuple[float, ...]
    """Per transaction, submission to commit at the node it was sent to."""
    catch_up: CatchUp | None
    verify_per_s: float
    insert_per_s: float
    cores: int

    @property
    def verify_and_persist_per_s(self) -> float:
        return verify_then_persist(self.verify_per_s, self.insert_per_s)

    @property
    def tx_ceiling_per_s(self) -> float:
        """Every validator verifies and persists every transaction, on shared cores."""
        return self.verify_and_persist_per_s * self.cores / self.validators

    @property
    def catch_up_ceiling_per_s(self) -> float:
        """A catching-up node checks signatures in its verifier workers and persists in
        its main process: at best every core verifying and persisting."""
        return self.verify_and_persist_per_s * self.cores

    @property
    def finality_p50_ms(self) -> float:
        return statistics.median(self.finality_ms)

    @property
    def finality_p99_ms(self) -> float:
        return percentile(list(self.finality_ms), 99)

    def to_json(self) -> dict[str, Any]:
        catch_up = self.catch_up
        return {
            "validators": self.validators,
            "block_txs": self.block_txs,
            "txs": self.throughput.txs,
            "committed": self.throughput.committed,
            "blocks": self.throughput.blocks,
            "seconds": self.throughput.seconds,
            "tx_per_s": self.throughput.tx_per_s,
            "tx_ceiling_per_s": self.tx_ceiling_per_s,
            "tx_of_ceiling": self.throughput.tx_per_s / self.tx_ceiling_per_s,
            "idle_finality_ms": self.idle_finality_ms,
            "offered_per_s": self.offered_per_s,
            "finality_txs": len(self.finality_ms),
            "finality_p50_ms": self.finality_p50_ms,
            "finality_p99_ms": self.finality_p99_ms,
            "catch_up": None
            if catch_up is None
            else {
                "txs": catch_up.txs,
                "degraded_tx_per_s": catch_up.degraded_tx_per_s,
                "verified_txs": catch_up.verified_txs,
                "seconds_after_ready": catch_up.seconds_after_ready,
                "seconds_from_spawn": catch_up.seconds_from_spawn,
                "tx_per_s": catch_up.tx_per_s,
                "ceiling_per_s": self.catch_up_ceiling_per_s,
            },
            "ed25519_verify_per_s": self.verify_per_s,
            "sqlite_insert_per_s": self.insert_per_s,
            "verify_and_persist_per_s": self.verify_and_persist_per_s,
            "cores": self.cores,
        }


@dataclass(frozen=True, slots=True)
class Machine:
    cpu: str
    cores: int
    python: str
    system: str


def machine() -> Machine:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(cpu, os.cpu_count() or 1, platform.python_version(), platform.platform())


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    wanted: str
    value: float | None
    met: bool | None
    """None when the run did not measure it."""


DEFAULT_BLOCK_TXS: Final = Settings(data_dir=Path()).max_block_txs


def _target(name: str, wanted: str, value: float | None, ok: Callable[[float], bool]) -> Target:
    return Target(name, wanted, value, None if value is None else ok(value))


@dataclass(frozen=True, slots=True)
class NetworkBenchResult:
    started: str
    machine: Machine
    load_before: tuple[float, float, float]
    config: dict[str, object]
    rows: tuple[Row, ...]

    def target_row(self) -> Row | None:
        """The 4-validator row at the nodes' default block size, else the fastest one."""
        four = [r for r in self.rows if r.validators == 4]
        default = [r for r in four if r.block_txs == DEFAULT_BLOCK_TXS]
        if default:
            return default[0]
        return max(four, key=lambda r: r.throughput.tx_per_s, default=None)

    def targets(self) -> tuple[Target, ...]:
        """The issue's targets, read from ``target_row``."""
        row = self.target_row()
        catch_up = None if row is None else row.catch_up
        return (
            _target(
                "committed tx/s, 4 validators",
                ">= 3,000",
                None if row is None else row.throughput.tx_per_s,
                lambda v: v >= 3000,
            ),
            _target(
                "finality p50 at half that load",
                "<= 250 ms",
                None if row is None else row.finality_p50_ms,
                lambda v: v <= 250,
            ),
            _target(
                "finality p99 at half that load",
                "<= 1,000 ms",
                None if row is None else row.finality_p99_ms,
                lambda v: v <= 1000,
            ),
            _target(
                "catch-up of a restarted validator, verified tx/s",
                ">= 8,000",
                None if catch_up is None else catch_up.tx_per_s,
                lambda v: v >= 8000,
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "machine": {
                "cpu": self.machine.cpu,
                "cores": self.machine.cores,
                "python": self.machine.python,
                "system": self.machine.system,
            },
            "load_before": list(self.load_before),
            "config": self.config,
            "rows": [r.to_json() for r in self.rows],
            "targets": [
                {"name": t.name, "wanted": t.wanted, "value": t.value, "met": t.met}
                for t in self.targets()
            ],
        }
