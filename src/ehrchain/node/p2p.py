"""The network side of one node: peers, gossip, catch-up, and joining through a peer.

``P2P`` is what ``NetworkedService`` calls (its ``Links``): it owns the peer
set, the signed clients, the gossip lanes and the background syncer. Settings
come from the ``[network]`` section of ``node.toml`` (the ``[node]`` section
is ``node.settings``'s).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from ehrchain.consensus.bft_types import Timeouts
from ehrchain.consensus.pow_engine import PowEngine
from ehrchain.core import block as blockmod
from ehrchain.crypto.keystore import Identity
from ehrchain.node.bft_driver import BftDriver
from ehrchain.node.errors import Rejected, Unavailable
from ehrchain.node.gossip import Gossip
from ehrchain.node.intake import PeerIntake
from ehrchain.node.networked import POW, SOLO, NetworkedService
from ehrchain.node.peer_client import ClientPool, PeerClient, PeerError
from ehrchain.node.peers import PEERS_FILE, PeerSet, RequestChecker, normalise_url
from ehrchain.node.pow_driver import PowDriver
from ehrchain.node.pow_sync import catch_up_by_work
from ehrchain.node.service import wall_clock_ms
from ehrchain.node.settings import CONFIG_FILE, Settings
from ehrchain.node.sync import BlobFetcher, GapGrace, Syncer, SyncError, catch_up, record_cids

__all__ = ["P2P", "NetworkSettings", "load_network_settings", "own_url"]

SECTION: Final = "network"
logger = logging.getLogger("ehrchain.node.p2p")


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """``[network]`` in node.toml; every key optional."""

    public_url: str = ""
    """How peers reach this node; default ``http(s)://host:port`` from ``[node]``."""
    tls_cert: str = ""
    """PEM certificate and key: serve HTTPS (peers then use an https URL)."""
    tls_key: str = ""
    tls_ca: str = ""
    """PEM bundle that signs the peers' certificates (default: the system's)."""
    sync_interval_ms: int = 2000
    pending_max_age_ms: int = 60_000
    peer_timeout_ms: int = 10_000
    proxy: str = ""
    """An HTTP proxy for every request to a peer (a hospital's egress proxy); none by default."""

    def verify(self) -> bool | ssl.SSLContext:
        """How to check peers' certificates: the configured CA, else the system's."""
        return ssl.create_default_context(cafile=self.tls_ca) if self.tls_ca else True


def load_network_settings(settings: Settings) -> NetworkSettings:
    path = settings.data_dir / CONFIG_FILE
    values: dict[str, Any] = {}
    if path.exists():
        with path.open("rb") as fh:
            values = tomllib.load(fh).get(SECTION, {})
    known = {f.name for f in fields(NetworkSettings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings in [{SECTION}] of {path}: {sorted(unknown)}")
    return NetworkSettings(**values)


def network_toml(net: NetworkSettings) -> str:
    """The ``[network]`` section for ``net`` (appended to node.toml by setup)."""
    lines = [f"[{SECTION}]"]
    for f in fields(NetworkSettings):
        value = getattr(net, f.name)
        lines.append(f"{f.name} = {value}" if isinstance(value, int) else f'{f.name} = "{value}"')
    return "\n".join(lines) + "\n"


def own_url(settings: Settings, net: NetworkSettings) -> str:
    if net.public_url:
        return normalise_url(net.public_url)
    scheme = "https" if net.tls_cert else "http"
    return f"{scheme}://{settings.host}:{settings.port}"


class P2P:
    """Peers, gossip and catch-up for ``service``, signing as ``identity``."""

    def __init__(
        self,
        service: NetworkedService,
        identity: Identity,
        net: NetworkSettings,
    ) -> None:
        settings = service.settings
        self.service = service
        self.identity = identity
        self.own_url = own_url(settings, net)
        self.peers = PeerSet(self.own_url, settings.data_dir / PEERS_FILE)
        self.clients = ClientPool(
            identity,
            settings.chain_id,
            timeout_s=net.peer_timeout_ms / 1000,
            verify=net.verify(),
            proxy=net.proxy,
        )
        self.fetcher = BlobFetcher(service.blobs, self._peer_clients, settings.max_blob_bytes)
        self.gossip = Gossip(self.peers.urls, self.clients)
        self.checker = RequestChecker(settings.chain_id, service.peer_key, wall_clock_ms)
        self._grace = GapGrace(net.sync_interval_ms / 1000 / 2)
        self.intake = PeerIntake(self._admit_gossip)
        self.driver: BftDriver | None = None
        self.pow: PowDriver | None = None
        if settings.consensus == "bft":
            timeouts = Timeouts(commit_ms=settings.commit_pause_ms)
            self.driver = BftDriver(service, identity, self.gossip, timeouts)
        elif settings.consensus == POW:
            engine = service.engine
            if not isinstance(engine, PowEngine):
                raise ValueError("consensus pow needs the proof-of-work engine")
            self.pow = PowDriver(service, identity, self.gossip, self._peer_clients, engine.target)
            service.follow(self.pow)
        elif settings.consensus != SOLO:
            raise ValueError(f"consensus {settings.consensus!r} is not available on nodes")
        self.syncer = Syncer(
            service,
            self._peer_clients,
            self.fetcher,
            interval_s=net.sync_interval_ms / 1000,
            pending_max_age_ms=net.pending_max_age_ms,
            can_seal=self.proposes_blocks,
            follow=self._catch_up,
        )
        service.attach(self)

    def start(self) -> None:
        self.intake.start()
        self.syncer.start()
        if self.driver is not None:
            self.driver.start()
        if self.pow is not None:
            self.pow.start()

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        if self.pow is not None:
            self.pow.stop()
        self.syncer.stop()
        self.intake.stop()
        self.gossip.stop()
        self.clients.close()

    def proposes_blocks(self) -> bool:
        """Whether this node's own pool reaches blocks without another node: the only
        validator under ``solo``, any validator under ``bft`` (it proposes in its turn)
        or ``pow`` (it mines).

        Only a node that does not propose drops pending transactions no block took in
        time (``Syncer``); a BFT validator that did so lost accepted transactions
        whenever a load took longer than ``pending_max_age_ms`` to commit.
        """
        if self.service.seals_alone():
            return True
        if self.pow is not None:
            return self.service.is_validator()
        return self.driver is not None and self.service.node_address in self.service.validator_set()

    def _admit_gossip(self, items: Sequence[bytes]) -> None:
        # Unavailable: catch-up started meanwhile, and these are in the blocks it fetches.
        with contextlib.suppress(Unavailable):
            self.service.submit_from_peer(items)

    def _peer_clients(self) -> list[PeerClient]:
        return self.clients.all(self.peers.urls())

    def _catch_up(self, client: PeerClient, stop: threading.Event | None) -> int:
        """Blocks from one peer: through the fork choice under proof of work, else in order."""
        if self.pow is not None:
            return catch_up_by_work(self.pow, self.service, client, stop)
        grace = self._grace if self.driver is not None and self.service.is_validator() else None
        return catch_up(self.service, client, self.fetcher, stop, grace)

    # -- Links (called by NetworkedService) --------------------------------------

    def admitted(self, items: Sequence[bytes]) -> None:
        self.gossip.txs(items)
        self.wake()

    def wake(self) -> None:
        """New pending transactions: a held BFT height or an idle miner may start."""
        if self.driver is not None:
            self.driver.poke()
        if self.pow is not None:
            self.pow.miner.poke()

    def committed(self, block: blockmod.Block, sealed_here: bool) -> None:
        if sealed_here:
            self.gossip.block(block.to_bytes())
        self.syncer.want_blobs(record_cids(block))

    def blob_stored(self, data: bytes) -> None:
        self.gossip.blob(data)

    def ensure_blobs(self, cids: Sequence[str]) -> None:
        still = self.fetcher.ensure(cids)
        if still:
            self.syncer.want_blobs(still)

    def peer_added(self, url: str) -> bool:
        if normalise_url(url) == self.peers.own_url:
            return False
        if self.peers.add(url):
            self.syncer.nudge()
        return True

    def peer_urls(self) -> list[str]:
        return self.peers.urls()

    def register_with(self, url: str) -> dict[str, Any]:
        """Join through ``url``: register there and with its peers, then catch up from it."""
        try:
            url = normalise_url(url)
        except ValueError as exc:
            raise Rejected("invalid_request", str(exc)) from None
        if url == self.own_url:
            raise Rejected("invalid_request", "a node cannot register with itself")
        client = self.clients.get(url)
        their_peers = self._register_at(client)
        self.service.register_node(url)
        for other in their_peers:
            if other not in (self.own_url, url) and other not in self.peers.urls():
                try:
                    self._register_at(self.clients.get(normalise_url(other)))
                except (Rejected, Unavailable, ValueError) as exc:
                    logger.info("could not register with a peer's peer", extra={"why": str(exc)})
                    continue
                self.service.register_node(other)
        try:
            synced = self._catch_up(client, None)
        except SyncError as exc:
            raise Rejected("invalid_block", f"sync from {url} failed: {exc}") from None
        except PeerError as exc:
            raise Unavailable(f"sync from {url} failed: {exc}") from None
        head = self.service.head()
        return {
            "peers": self.peers.urls(),
            "height": head.height,
            "head_hash": head.hash.hex(),
            "synced_blocks": synced,
        }

    def _register_at(self, client: PeerClient) -> list[str]:
        try:
            return client.register_node(self.own_url)
        except PeerError as exc:
            if exc.status in (401, 403):
                raise Rejected(
                    "not_authorised", f"{client.url} does not admit this node: {exc.code}"
                ) from None
            raise Unavailable(f"{client.url} could not be reached: {exc}") from None
