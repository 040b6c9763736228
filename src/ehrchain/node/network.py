"""A local consortium: N node processes on loopback that share one genesis and find each other.

``init_member`` makes a data directory that joins an existing chain: the exact
genesis file (so the node can verify every block from height 0), its own node
key, its settings, and the genesis block. ``network_up`` makes the whole
layout once, in ``DIR``:

    DIR/genesis.json      the one genesis file, copied byte for byte into every node
    DIR/admin.key         the consortium admin's keystore
    DIR/network.json      chain id, consensus, each node's name, port, URL, address, pid
    DIR/node-0 … node-N-1 one data directory per node

and then starts one process per node, admits the nodes that are not
validators (the embedded engine has one validator; every other node is a
follower, admitted on-chain as its hospital's node) and registers every node
with the first, which makes them sync and find each other. Under ``bft`` and
``pow`` every node is a genesis validator (under ``pow``: a miner, at the
difficulty the genesis fixes).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import httpx

from ehrchain.client.actor import Actor
from ehrchain.client.http import EhrClient
from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import Identity, KdfParams, load_identity, save_identity
from ehrchain.ehr.genesis import GenesisConfig
from ehrchain.node import settings as settings_mod
from ehrchain.node.genesis import commit_genesis, genesis_config
from ehrchain.node.p2p import NetworkSettings, network_toml
from ehrchain.node.peer_client import PeerClient
from ehrchain.node.process import NodeProcess
from ehrchain.node.settings import PASSWORD_ENV, Settings
from ehrchain.node.setup import ADMIN_KEY_FILE, load_node_identity
from ehrchain.node.sync import RebuildReport, rebuild_from_peer
from ehrchain.node.wiring import open_service
from ehrchain.storage.ledger import Ledger

__all__ = [
    "CONSENSUS_CHOICES",
    "MemberResult",
    "Network",
    "init_member",
    "network_down",
    "network_status",
    "network_up",
    "rebuild_data_dir",
]

CONSENSUS_CHOICES: Final = ("solo", "bft", "pow")
DEFAULT_POW_TARGET_BITS: Final = 16
"""About a second of hashing per block on one core: visible, not tedious."""
MANIFEST: Final = "network.json"
PASSWORD_FILE: Final = "node.password"  # noqa: S105 (a file name, not a secret)
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class MemberResult:
    settings: Settings
    identity: Identity


def init_member(
    data_dir: Path,
    genesis_json: str,
    *,
    password: str,
    port: int,
    consensus: str = "solo",
    identity: Identity | None = None,
    kdf: KdfParams = KdfParams.DEFAULT,
    password_file: Path | None = None,
    net: NetworkSettings | None = None,
    node_settings: Mapping[str, Any] | None = None,
) -> MemberResult:
    """A data directory for a node of the chain ``genesis_json`` describes.

    The genesis file is written exactly as given, so every member derives the
    same genesis block. ``node_settings`` overrides ``[node]`` values (block
    limits, say). Refuses to overwrite an existing ledger.
    """
    config = GenesisConfig.from_json(genesis_json)
    settings = Settings(
        data_dir=data_dir,
        chain_id=config.chain_id,
        port=port,
        consensus=consensus,
        password_file=str(password_file) if password_file else "",
    )
    settings = replace(settings, **(node_settings or {}))
    if settings.ledger_path.exists():
        raise FileExistsError(f"{data_dir} already holds a ledger")
    key_dir = data_dir / settings_mod.KEY_DIR
    key_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    identity = identity or new_identity("node", "")
    save_identity(settings.node_key_path, identity, password, kdf)
    settings.genesis_path.write_text(genesis_json)
    settings_mod.write(settings)
    if net is not None:
        config_path = data_dir / settings_mod.CONFIG_FILE
        config_path.write_text(config_path.read_text() + "\n" + network_toml(net))
    with Ledger.open(settings.ledger_path) as ledger:
        commit_genesis(ledger, config)
    return MemberResult(settings, identity)


@dataclass
class Network:
    """A started local consortium; ``stop`` ends its processes by their pids."""

    root: Path
    chain_id: str
    consensus: str
    processes: list[NodeProcess]
    addresses: list[str]

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        _write_pids(self.root, [None] * len(self.processes))


def network_up(
    root: Path,
    nodes: int,
    consensus: str = "solo",
    base_port: int = 8100,
    *,
    chain_id: str = "ehrchain-local",
    password: str | None = None,
    kdf: KdfParams = KdfParams.DEFAULT,
    say: Say = lambda _: None,
    start_timeout_s: float = 60.0,
    node_settings: Mapping[str, Any] | None = None,
    net_for: Callable[[int], NetworkSettings] | None = None,
    pow_target_bits: int = DEFAULT_POW_TARGET_BITS,
) -> Network:
    """Create (first time) and start ``nodes`` local node processes; return them running.

    A second call on the same ``root`` starts the existing nodes again (and
    ignores ``node_settings``, which only shape new data directories). Every
    node is registered with node-0 and has caught up to the same head before
    this returns. ``net_for(i)`` gives node i's ``[network]`` settings when the
    layout is first made (default: none, so the built-in defaults);
    ``pow_target_bits`` is the difficulty a new ``pow`` chain's genesis fixes.
    """
    if consensus not in CONSENSUS_CHOICES:
        raise ValueError(f"consensus must be one of {', '.join(CONSENSUS_CHOICES)}")
    manifest = root / MANIFEST
    if not manifest.exists():
        target = pow_target_bits if consensus == "pow" else None
        _create(
            root,
            nodes,
            consensus,
            base_port,
            chain_id,
            password,
            kdf,
            say,
            target,
            node_settings,
            net_for,
        )
    info = json.loads(manifest.read_text())
    password = password or _password(root)
    processes = [
        NodeProcess(root / n["name"], int(n["port"]), password, root / n["name"] / "process.log")
        for n in info["nodes"]
    ]
    network = Network(
        root, info["chain_id"], info["consensus"], processes, [n["address"] for n in info["nodes"]]
    )
    try:
        for process, node in zip(processes, info["nodes"], strict=True):
            say(f"starting {node['name']} on {process.url}")
            process.start(start_timeout_s)
        if not info.get("admitted"):
            _admit_followers(root, info, processes[0].url, password)
            info["admitted"] = True
            manifest.write_text(json.dumps(info, indent=2))
        _write_pids(root, [p.pid for p in processes])
        first = processes[0].url
        for process in processes[1:]:
            _post_json(process.url, "/register_with", {"url": first})
        wait_converged(network.urls, timeout_s=start_timeout_s)
    except BaseException:
        network.stop()
        raise
    return network


def _create(
    root: Path,
    nodes: int,
    consensus: str,
    base_port: int,
    chain_id: str,
    password: str | None,
    kdf: KdfParams,
    say: Say,
    pow_target_bits: int | None,
    node_settings: Mapping[str, Any] | None = None,
    net_for: Callable[[int], NetworkSettings] | None = None,
) -> None:
    if nodes < 1:
        raise ValueError("a network has at least one node")
    root.mkdir(parents=True, exist_ok=True)
    if password is None:
        password = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(18)
        pw_file = root / PASSWORD_FILE
        pw_file.write_text(password)
        os.chmod(pw_file, 0o600)
    admin = new_identity("consortium-admin", "consortium_admin")
    save_identity(root / ADMIN_KEY_FILE, admin, password, kdf)
    identities = [new_identity(f"node-{i}", "") for i in range(nodes)]
    validators = identities[:1] if consensus == "solo" else identities
    config = genesis_config(
        chain_id, admin, validators, time.time_ns() // 1_000_000, pow_target_bits=pow_target_bits
    )
    genesis_json = config.to_json()
    (root / settings_mod.GENESIS_FILE).write_text(genesis_json)
    pw_path = root / PASSWORD_FILE
    described: list[dict[str, Any]] = []
    for i, identity in enumerate(identities):
        name = f"node-{i}"
        port = base_port + i
        init_member(
            root / name,
            genesis_json,
            password=password,
            port=port,
            consensus=consensus,
            identity=identity,
            kdf=kdf,
            password_file=pw_path.resolve() if pw_path.exists() else None,
            node_settings=node_settings,
            net=net_for(i) if net_for is not None else None,
        )
        described.append(
            {
                "name": name,
                "port": port,
                "url": f"http://127.0.0.1:{port}",
                "address": identity.address,
                "validator": consensus != "solo" or i == 0,
                "pid": None,
            }
        )
        say(f"initialised {name} ({identity.address})")
    manifest = {"chain_id": chain_id, "consensus": consensus, "nodes": described}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _password(root: Path) -> str:
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    return (root / PASSWORD_FILE).read_text().strip()


def _admit_followers(root: Path, info: dict[str, Any], url: str, password: str) -> None:
    """The consortium admin admits every node that is not a validator as its hospital's node."""
    followers = [n for n in info["nodes"] if not n["validator"]]
    if not followers:
        return
    admin = load_identity(root / ADMIN_KEY_FILE, password)
    with EhrClient(url) as client:
        actor = Actor(admin, client)
        for node in followers:
            identity = load_identity(settings_mod.load(root / node["name"]).node_key_path, password)
            actor.admit_hospital(
                f"hospital-{node['name']}", f"Hospital of {node['name']}", identity
            )


def _write_pids(root: Path, pids: Sequence[int | None]) -> None:
    manifest = root / MANIFEST
    if not manifest.exists():
        return
    info = json.loads(manifest.read_text())
    for node, pid in zip(info["nodes"], pids, strict=False):
        node["pid"] = pid
    manifest.write_text(json.dumps(info, indent=2))


def _post_json(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(url + path, json=body, timeout=60)
    if answer.status_code >= 300:
        raise RuntimeError(f"{url}{path}: {answer.status_code} {answer.text[:300]}")
    result: dict[str, Any] = answer.json()
    return result


def node_status(url: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """A node's /v1/status, or ``{"url", "error"}`` when it cannot be reached."""
    try:
        answer = httpx.get(url + "/v1/status", timeout=timeout_s)
        answer.raise_for_status()
        status: dict[str, Any] = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"url": url, "error": type(exc).__name__}
    return {"url": url, **status}


def network_status(urls: Sequence[str], *, include_peers: bool = True) -> list[dict[str, Any]]:
    """The status of each node in ``urls`` and, with ``include_peers``, of every peer they name."""
    seen: list[str] = []
    out: list[dict[str, Any]] = []
    queue = list(urls)
    while queue:
        url = queue.pop(0).rstrip("/")
        if url in seen:
            continue
        seen.append(url)
        status = node_status(url)
        out.append(status)
        if include_peers:
            queue.extend(p for p in status.get("peers", []) if isinstance(p, str))
    return out


def wait_converged(urls: Sequence[str], timeout_s: float = 60.0) -> str:
    """Wait until every node reports the same head hash; return it."""
    deadline = time.monotonic() + timeout_s
    heads: set[str] = set()
    while time.monotonic() < deadline:
        statuses = network_status(urls, include_peers=False)
        heads = {str(s.get("head_hash")) for s in statuses}
        if len(heads) == 1 and all("error" not in s for s in statuses):
            return heads.pop()
        time.sleep(0.2)
    raise TimeoutError(f"nodes did not converge on one head: {sorted(heads)}")


def network_down(root: Path, timeout_s: float = 10.0) -> list[str]:
    """Stop the nodes a detached ``network_up`` left running, by the pids it recorded.

    A pid is signalled only if that process still runs ``ehrchain.node.server``
    for this node's data directory (pids are reused after a process exits).
    """
    info = json.loads((root / MANIFEST).read_text())
    stopped: list[str] = []
    for node in info["nodes"]:
        pid = node.get("pid")
        if not isinstance(pid, int) or not _is_our_node(pid, root / node["name"]):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped.append(node["name"])
    _write_pids(root, [None] * len(info["nodes"]))
    return stopped


def _is_our_node(pid: int, data_dir: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"ehrchain.node.server" in cmdline and str(data_dir).encode() in cmdline


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def rebuild_data_dir(data_dir: Path, peer_url: str) -> RebuildReport:
    """Rebuild a stopped node's ledger from ``peer_url`` (see ``sync.rebuild_from_peer``).

    The node key (password from $EHRCHAIN_NODE_PASSWORD or the configured
    file) signs the requests: the peer serves blocks only to admitted nodes.
    """
    settings = settings_mod.load(data_dir)
    identity = load_node_identity(settings)
    with PeerClient(peer_url, identity, settings.chain_id) as client:
        return rebuild_from_peer(
            lambda: open_service(settings),
            settings.ledger_path,
            settings.genesis_path,
            settings.blob_dir,
            client,
        )
