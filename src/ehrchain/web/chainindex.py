"""A read model the web pages need and the node's queries do not offer, built from blocks.

The follower reads committed blocks through the node service (never storage),
in order, and keeps small indexes: which patients granted a provider access,
who asked whom, which hospitals and providers exist, and which transaction
holds each version's wrapped keys. It is rebuilt from the chain at start, so
it is never a second source of truth: pages check every relationship against
the service's state before acting on it. New blocks after start become
notices for the notification hub.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ehrchain.core import tx as txmod
from ehrchain.core.block import Block

log = logging.getLogger("ehrchain.web")

PAGE: Final = 200
REWRAP_READER: Final = {
    "access.grant": "grantee",
    "delegate.add": "caregiver",
    "keys.rewrap": "grantee",
}
"""Kinds that re-wrap keys for a reader, and the payload field naming the reader."""


class ChainSource(Protocol):
    """The service methods the follower reads."""

    def head(self) -> Any: ...

    def blocks(self, start: int, limit: int) -> list[Block]: ...


@dataclass(frozen=True, slots=True)
class Seen:
    """One committed transaction, in chain order."""

    tx: txmod.Transaction
    height: int
    timestamp_ms: int


@dataclass(slots=True)
class Indexes:
    hospitals: dict[str, dict[str, str]] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)
    """patient address -> hospital admin that registered it."""
    validators: set[str] = field(default_factory=set)
    patients_of: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """grantee, requester, delegate or emergency provider -> patients they relate to."""
    related_to: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """patient -> every address that was granted, asked, delegated or broke glass."""
    emergencies: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """patient -> providers that broke glass."""
    delegates: defaultdict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    """patient -> caregiver -> active?"""
    version_tx: dict[tuple[str, int], bytes] = field(default_factory=dict)
    rewrap_tx: dict[tuple[str, int, str], bytes] = field(default_factory=dict)
    record_patient: dict[str, str] = field(default_factory=dict)


def patient_of(tx: txmod.Transaction) -> str:
    """The patient a transaction is about: its ``patient`` field, else its sender."""
    named = tx.payload.get("patient")
    return str(named) if isinstance(named, str) else str(tx.sender)


class ChainIndex:
    """Follows the chain; ``catch_up`` is safe from any thread."""

    def __init__(self, source: ChainSource) -> None:
        self._source = source
        self._lock = threading.RLock()
        self._next_height = 0
        self.ix = Indexes()
        self._listeners: list[Callable[[Seen], None]] = []
        self._notify_from = source.head().height + 1

    def on_tx(self, listener: Callable[[Seen], None]) -> None:
        """Call ``listener`` for each transaction committed after the index was created."""
        self._listeners.append(listener)

    def catch_up(self) -> int:
        """Apply every committed block not yet seen; return the height applied up to."""
        with self._lock:
            head = self._source.head().height
            while self._next_height <= head:
                blocks = self._source.blocks(self._next_height, PAGE)
                if not blocks:
                    break
                for block in blocks:
                    self._apply(block)
                    self._next_height = block.header.height + 1
            return self._next_height - 1

    def _apply(self, block: Block) -> None:
        notify = bool(self._listeners) and block.header.height >= self._notify_from
        for tx in block.txs:
            try:
                self._index(tx)
            except (KeyError, TypeError, ValueError):
                log.warning("web index skipped a transaction", extra={"kind": tx.kind})
            if notify:
                seen = Seen(tx, block.header.height, block.header.timestamp_ms)
                for listener in self._listeners:
                    try:
                        listener(seen)
                    except Exception:
                        log.exception("notification listener failed")

    def _index(self, tx: txmod.Transaction) -> None:
        kind = tx.kind
        if kind == "record.read":
            return  # most of the chain, and nothing the pages look up
        ix, p, sender = self.ix, tx.payload, str(tx.sender)
        if kind == "hospital.admit":
            ix.hospitals[str(p["hospital_id"])] = {
                "name": str(p["name"]),
                "admin": str(p["admin"]["address"]),
            }
        elif kind == "patient.register":
            ix.patients[str(p["address"])] = sender
        elif kind == "provider.register":
            ix.providers[str(p["address"])] = {
                "licence": str(p["licence"]),
                "registered_by": sender,
            }
        elif kind == "validator.add":
            ix.validators.add(str(p["address"]))
        elif kind == "validator.remove":
            ix.validators.discard(str(p["address"]))
        elif kind in ("access.grant", "access.revoke"):
            self._relate(patient_of(tx), str(p["grantee"]))
        elif kind in ("access.deny", "consent.authorise", "consent.withdraw"):
            self._relate(patient_of(tx), str(p["provider"]))
        elif kind == "access.request":
            self._relate(str(p["patient"]), sender)
        elif kind in ("delegate.add", "delegate.remove"):
            self._relate(sender, str(p["caregiver"]))
            ix.delegates[sender][str(p["caregiver"])] = kind == "delegate.add"
        elif kind == "access.break_glass":
            self._relate(str(p["patient"]), sender)
            ix.emergencies[str(p["patient"])].add(sender)
        elif kind == "record.create":
            ix.version_tx[(str(p["record_id"]), 1)] = tx.tx_id
            ix.record_patient[str(p["record_id"])] = patient_of(tx)
        elif kind == "record.amend":
            ix.version_tx[(str(p["record_id"]), int(p["version"]))] = tx.tx_id
        self._index_rewraps(tx)

    def _index_rewraps(self, tx: txmod.Transaction) -> None:
        reader = REWRAP_READER.get(tx.kind)
        if reader is None:
            return
        for record_id, version, _wrapped in tx.payload.get("rewraps", ()):
            self.ix.rewrap_tx[(str(record_id), int(version), str(tx.payload[reader]))] = tx.tx_id

    def _relate(self, patient: str, other: str) -> None:
        self.ix.patients_of[other].add(patient)
        self.ix.related_to[patient].add(other)

    # -- lookups (callers catch up first when they need the newest blocks) --

    def patients_of(self, address: str) -> list[str]:
        with self._lock:
            return sorted(self.ix.patients_of.get(address, set()))

    def related_to(self, patient: str) -> list[str]:
        with self._lock:
            return sorted(self.ix.related_to.get(patient, set()))

    def emergency_providers(self, patient: str) -> list[str]:
        with self._lock:
            return sorted(self.ix.emergencies.get(patient, set()))

    def delegates(self, patient: str) -> list[str]:
        """Caregivers whose delegation is active (delegation has no expiry)."""
        with self._lock:
            return sorted(c for c, on in self.ix.delegates.get(patient, {}).items() if on)

    def hospitals(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return dict(self.ix.hospitals)

    def providers(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.ix.providers)

    def registered_by(self, admin: str) -> list[str]:
        with self._lock:
            patients = [a for a, by in self.ix.patients.items() if by == admin]
            providers = [a for a, v in self.ix.providers.items() if v["registered_by"] == admin]
            return patients + providers

    def validators(self) -> list[str]:
        with self._lock:
            return sorted(self.ix.validators)

    def version_tx(self, record_id: str, version: int) -> bytes | None:
        with self._lock:
            return self.ix.version_tx.get((record_id, version))

    def rewrap_tx(self, record_id: str, version: int, reader: str) -> bytes | None:
        with self._lock:
            return self.ix.rewrap_tx.get((record_id, version, reader))

    def record_patient(self, record_id: str) -> str:
        """The patient whose file holds ``record_id`` ("" if not seen yet)."""
        with self._lock:
            return self.ix.record_patient.get(record_id, "")

    def all_patients(self) -> Iterable[str]:
        with self._lock:
            return list(self.ix.patients)


class Follower:
    """Background thread that keeps a ChainIndex caught up with the node."""

    def __init__(self, index: ChainIndex, poll_s: float) -> None:
        self._index = index
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._index.catch_up()
            except Exception:
                log.exception("web follower could not read the chain")
            self._stop.wait(self._poll_s)
