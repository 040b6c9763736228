"""Assemble a node from its settings: ledger, blobs, keys, engine, service."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from ehrchain.consensus.base import Engine, SealingLimits
from ehrchain.consensus.pow_engine import NAME as POW
from ehrchain.consensus.pow_engine import PowEngine
from ehrchain.consensus.solo import SoloEngine
from ehrchain.core import encoding
from ehrchain.core.types import Address
from ehrchain.crypto.keystore import Identity
from ehrchain.ehr.genesis import GenesisConfig
from ehrchain.node.errors import Rejected
from ehrchain.node.networked import NetworkedService
from ehrchain.node.service import NodeService
from ehrchain.node.settings import Settings
from ehrchain.node.setup import load_node_identity
from ehrchain.storage.blobs import BlobStore
from ehrchain.storage.ledger import Ledger


def validator_keys(ledger: Ledger) -> Callable[[], dict[Address, bytes]]:
    """Current validator set (address -> Ed25519 key) read from committed state."""

    def current() -> dict[Address, bytes]:
        raw = ledger.get_state("validators")
        if raw is None:
            return {}
        return {Address(entry[0]): bytes(entry[1]) for entry in encoding.decode(raw)}

    return current


def make_engine(settings: Settings, config: GenesisConfig, identity: Identity) -> Engine:
    """The engine ``settings.consensus`` names, refused if the chain's genesis disagrees.

    Whether a chain is proof of work is fixed by its genesis (``pow_target_bits``),
    so a node cannot run another engine on it, nor ``pow`` on a chain without one.
    """
    limits = SealingLimits(
        max_txs=settings.max_block_txs,
        max_bytes=settings.max_block_bytes,
        max_wait_ms=settings.max_wait_ms,
    )
    address = Address(identity.address)
    target = config.pow_target_bits
    if settings.consensus == POW:
        if target is None:
            raise Rejected("wrong_chain", "consensus pow, but genesis.json has no pow_target_bits")
        return PowEngine(identity.signing, address, limits, target)
    if target is not None:
        raise Rejected("wrong_chain", 'a proof-of-work chain: set consensus = "pow" in node.toml')
    return SoloEngine(identity.signing, address, limits)


def open_service(settings: Settings) -> NetworkedService:
    """Open the data directory and build the node service (does not start threads)."""
    return open_node(settings)[0]


def open_node(settings: Settings) -> tuple[NetworkedService, Identity]:
    """The node service and the node's own identity (its key signs peer requests)."""
    ledger = Ledger.open(settings.ledger_path, durable=settings.durable)
    stored = ledger.get_meta("chain_id")
    if stored is not None and stored.decode() != settings.chain_id:
        raise Rejected("wrong_chain", "data directory belongs to another chain")
    identity = load_node_identity(settings)
    config = GenesisConfig.from_json(settings.genesis_path.read_text())
    service = NetworkedService(
        settings,
        ledger,
        BlobStore(settings.blob_dir, durable=settings.durable),
        make_engine(settings, config, identity),
        validator_keys(ledger),
        Address(identity.address),
    )
    return service, identity


@dataclass
class Sealer:
    """Background thread that seals blocks when the engine says they are due."""

    service: NodeService
    poll_s: float = 0.01

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            sealed = self.service.seal_if_due()
            if sealed is None:
                self._stop.wait(self.poll_s)
