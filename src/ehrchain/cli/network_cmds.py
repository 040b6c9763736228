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
from rich.table import Table

from ehrchain.cli.common import EXIT_FAILED, EXIT_UNREACHABLE, console, fail, guarded

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
        list[str] | None, typer.Option("--node", help="A node URL (repeatable).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="A network made by `network up`.")
    ] = None,
) -> None:
    """Height, head hash, peers and validator set of every node reachable from the given ones."""
    import json

    from ehrchain.node.network import MANIFEST, network_status

    urls = list(node or [])
    if data_dir is not None:
        urls += [n["url"] for n in json.loads((data_dir / MANIFEST).read_text())["nodes"]]
    if not urls:
        raise fail("give --node URL or --data-dir DIR")
    statuses = network_status(urls)
    console.print(_table(statuses))
    if any("error" in s for s in statuses):
        raise typer.Exit(EXIT_UNREACHABLE)
    if len({s["head_hash"] for s in statuses}) > 1:
        console.print("[yellow]nodes are at different heads (syncing, or diverged)[/yellow]")


def _table(statuses: list[dict[str, Any]]) -> Table:
    table = Table("node", "height", "head hash", "peers", "validators", "consensus")
    for s in statuses:
        if "error" in s:
            table.add_row(s["url"], "-", f"[red]unreachable ({s['error']})[/red]", "", "", "")
            continue
        table.add_row(
            f"{s['url']}\n{s.get('node_address', '')}",
            str(s["height"]),
            str(s["head_hash"])[:16] + "…",
            "\n".join(s.get("peers", [])),
            "\n".join(s.get("validators", [])),
            str(s.get("consensus", "")),
        )
    return table


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
    """Attach ``network up/down/status`` to ``app`` and ``rebuild`` to ``node_app``."""
    app.add_typer(network_app, name="network")
    node_app.command("rebuild")(rebuild)
