"""Network commands: a local consortium of node processes, its status, and ledger repair.

``ehrchain network up`` starts N nodes from one genesis and prints their URLs,
``network status`` shows every node's height, head, peers and validators, and
``node rebuild`` replaces a tampered ledger by the chain re-verified from a peer.
The work is ``ehrchain.node.network``'s; these wire options and print.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from ehrchain.cli.common import (
    DEFAULT_NODE,
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    console,
    fail,
    guarded,
)

__all__ = ["network_app", "rebuild", "register_network_commands"]

network_app = typer.Typer(help="Run a local consortium of node processes.", no_args_is_help=True)

DirOpt = Annotated[Path, typer.Option("--data-dir", help="Directory of the local network.")]


@network_app.command("up")
@guarded
def up(
    data_dir: DirOpt,
    nodes: Annotated[int, typer.Option("--nodes", min=1, max=32)] = 4,
    consensus: Annotated[
        str, typer.Option("--consensus", help="solo (one validator), bft or pow.")
    ] = "solo",
    base_port: Annotated[int, typer.Option("--base-port", min=1, max=65000)] = 8100,
    chain_id: Annotated[str, typer.Option("--chain-id")] = "ehrchain-local",
    detach: Annotated[
        bool, typer.Option("--detach", help="Leave the nodes running and return.")
    ] = False,
    pow_target: Annotated[
        int,
        typer.Option(
            "--pow-target", min=1, max=32, help="pow: leading zero bits of every block hash."
        ),
    ] = 16,
) -> None:
    """Start N local nodes sharing one genesis; print their URLs (Ctrl-C stops them)."""
    from ehrchain.node.network import network_up

    network = network_up(
        data_dir,
        nodes,
        consensus,
        base_port,
        chain_id=chain_id,
        say=console.print,
        pow_target_bits=pow_target,
    )
    console.print(f"[green]{len(network.urls)} nodes[/green] of chain {network.chain_id}:")
    for address, url in zip(network.addresses, network.urls, strict=True):
        console.print(f"  {url}  node {address}")
    if detach:
        console.print(f"stop them with: ehrchain network down --data-dir {data_dir}")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("running; Ctrl-C stops every node")
    try:
        stop.wait()
    finally:
        network.stop()
        console.print("stopped")


@network_app.command("down")
@guarded
def down(data_dir: DirOpt) -> None:
    """Stop the nodes a detached ``network up`` left running (by their recorded pids)."""
    from ehrchain.node.network import network_down

    stopped = network_down(data_dir)
    console.print(f"stopped {len(stopped)} node(s)")


@network_app.command("status")
@guarded
def status(
    node: Annotated[
        list[str] | None,
        typer.Option("--node", envvar="EHRCHAIN_NODE", help="A node URL (repeatable)."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="A network made by `network up`.")
    ] = None,
) -> None:
    """Height, head hash, peers and validator set of every node reachable from the given ones.

    Starts from ``--node`` (default http://127.0.0.1:8000) and the nodes of
    ``--data-dir``, then follows every node's peers. Exits 3 when a node is
    unreachable; warns when the nodes are at different heads.
    """
    import json

    from ehrchain.node.network import MANIFEST, network_status

    urls = list(node or [])
    if data_dir is not None:
        urls += [n["url"] for n in json.loads((data_dir / MANIFEST).read_text())["nodes"]]
    statuses = network_status(urls or [DEFAULT_NODE])
    chains = sorted({str(s["chain_id"]) for s in statuses if "chain_id" in s})
    console.print(f"chain [bold]{', '.join(chains) or '?'}[/bold], {len(statuses)} node(s)")
    console.print(_table(statuses))
    unreachable = [s["url"] for s in statuses if "error" in s]
    if unreachable:
        raise fail(f"cannot reach the node(s) {', '.join(unreachable)}", EXIT_UNREACHABLE)
    if len({s["head_hash"] for s in statuses}) > 1:
        console.print("[yellow]nodes are at different heads (syncing, or diverged)[/yellow]")


def _table(statuses: list[dict[str, Any]]) -> Table:
    """One row per node; addresses and hashes shortened so four nodes fit 80 columns."""
    table = Table("node", "height", "head", "peers", "validators", "engine", box=box.SIMPLE_HEAD)
    for s in statuses:
        if "error" in s:
            table.add_row(
                _host(s["url"]), "-", f"[red]unreachable ({s['error']})[/red]", "", "", ""
            )
            continue
        me = str(s.get("node_address", ""))
        validators = [
            f"[bold]{_short(v)}[/bold]" if v == me else _short(v) for v in s.get("validators", [])
        ]
        table.add_row(
            f"{_host(s['url'])}\n{_short(me)}",
            str(s["height"]),
            str(s["head_hash"])[:8],
            "\n".join(_host(p) for p in s.get("peers", [])) or "-",
            "\n".join(validators),
            str(s.get("consensus", "")),
        )
    return table


def _host(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")


def _short(address: str) -> str:
    return address if len(address) <= 13 else f"{address[:9]}…{address[-3:]}"


@guarded
def rebuild(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The stopped node's directory.")],
    from_url: Annotated[str, typer.Option("--from", help="URL of a peer to rebuild from.")],
) -> None:
    """Replace this node's ledger by the chain re-verified block by block from a peer.

    The old ledger and any blob that does not match its CID are moved to
    ``quarantine/``. The node must be stopped; its key password comes from
    $EHRCHAIN_NODE_PASSWORD (or the configured password file).
    """
    from ehrchain.node.network import rebuild_data_dir
    from ehrchain.node.peer_client import PeerError
    from ehrchain.node.sync import SyncError
    from ehrchain.storage.errors import LedgerError

    try:
        report = rebuild_data_dir(data_dir, from_url)
    except PeerError as exc:
        code = EXIT_UNREACHABLE if exc.status == 0 else EXIT_FAILED
        raise fail(f"the peer refused or could not be reached: {exc}", code) from None
    except SyncError as exc:
        raise fail(f"the peer's chain does not verify: {exc}") from None
    except LedgerError as exc:
        raise fail(f"cannot rebuild: {exc} (stop the node first)") from None
    if report.set_aside is not None:
        console.print(f"old ledger moved to {report.set_aside}")
    console.print(
        f"[green]rebuilt[/green]: {report.blocks} blocks verified, height {report.head.height}, "
        f"head {report.head.hash.hex()[:16]}…"
    )
    if report.missing_blobs:
        raise fail(f"{len(report.missing_blobs)} blob(s) could not be fetched from the peer")


def register_network_commands(app: typer.Typer, node_app: typer.Typer) -> None:
    """Attach ``network up/down/status`` and ``status`` to ``app``, ``rebuild`` to ``node_app``."""
    app.add_typer(network_app, name="network")
    app.command("status")(status)
    node_app.command("rebuild")(rebuild)
