"""Operator commands: initialise and run a node, the demo, verify, bench.

These wire options to the node package and show progress; the work itself is
``ehrchain.node``'s. Imports happen inside each command so that client
commands start quickly and do not load the node's storage and consensus.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from ehrchain.cli.common import EXIT_FAILED, PasswordEnvOpt, console, fail, guarded, password_from
from ehrchain.node.settings import PASSWORD_ENV as NODE_PASSWORD_ENV

if TYPE_CHECKING:
    from ehrchain.node.bench_network import NetworkBenchConfig

__all__ = ["bench", "demo", "node_app", "verify"]

node_app = typer.Typer(help="Initialise and run a node.", no_args_is_help=True)

DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="The node's data directory.")]


@node_app.command("init")
@guarded
def node_init(
    data_dir: DataDirOpt,
    chain_id: Annotated[str, typer.Option("--chain-id")] = "ehrchain-local",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    password_env: PasswordEnvOpt = NODE_PASSWORD_ENV,
) -> None:
    """Create a single-validator node: settings, genesis, encrypted keys, genesis block."""
    from ehrchain.node.setup import init_node

    password = password_from(password_env, confirm=True)
    result = init_node(data_dir, password=password, chain_id=chain_id, port=port)
    console.print(f"node initialised in {data_dir} for chain [bold]{chain_id}[/bold]")
    console.print(f"consortium admin {result.admin.address}")
    console.print(f"validator        {result.validator.address}")
    console.print(f"start it with: ehrchain node start --data-dir {data_dir}")


@node_app.command("start")
@guarded
def node_start(
    data_dir: DataDirOpt,
    port: Annotated[int | None, typer.Option("--port", min=1, max=65535)] = None,
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
) -> None:
    """Run the node until interrupted (its key password comes from $EHRCHAIN_NODE_PASSWORD)."""
    from ehrchain.node.server import run_node

    run_node(data_dir, host, port)


@guarded
def demo(
    data_dir: DataDirOpt,
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Start a local consortium with sample data and print where to log in."""
    from ehrchain.node.demo import run_demo

    run_demo(data_dir, port)


@guarded
def verify(data_dir: DataDirOpt) -> None:
    """Audit a data directory; exit 1 naming the first tampered block, transaction or blob."""
    from ehrchain.node.verify import verify_data_dir

    with _StageProgress() as progress:
        report = verify_data_dir(data_dir, progress.update)
    if not report.ok:
        raise fail(f"verification failed: {report.first_problem}", EXIT_FAILED)
    console.print(
        f"[green]ok[/green]: {report.blocks} blocks, {report.txs} transactions, "
        f"{report.blobs} blobs verified"
    )


@guarded
def bench(
    data_dir: DataDirOpt,
    txs: Annotated[
        int | None,
        typer.Option(
            "--txs", min=1, help="Signed transactions (40,000; with --network 20,000 per row)."
        ),
    ] = None,
    records: Annotated[int, typer.Option("--records", min=1, help="Records to write.")] = 2_000,
    reads: Annotated[int, typer.Option("--reads", min=1, help="Records to read.")] = 500,
    patients: Annotated[int, typer.Option("--patients", min=1)] = 50,
    record_kib: Annotated[int, typer.Option("--record-kib", min=1)] = 64,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here.")
    ] = None,
    network: Annotated[
        bool,
        typer.Option("--network", help="Measure a local BFT consortium of node processes instead."),
    ] = False,
    validators: Annotated[
        str, typer.Option("--validators", help="--network: validator counts, comma-separated.")
    ] = "1,4,7",
    block_txs: Annotated[
        str, typer.Option("--block-txs", help="--network: block sizes (max_block_txs).")
    ] = "500,2000,5000",
    latency_s: Annotated[
        float, typer.Option("--latency-s", min=0.1, help="--network: finality phase seconds.")
    ] = 10.0,
    catch_up: Annotated[
        bool, typer.Option("--catch-up/--no-catch-up", help="--network: time a restart.")
    ] = True,
    plot_out: Annotated[
        Path | None, typer.Option("--plot", help="--network: also draw the results (PNG).")
    ] = None,
) -> None:
    """Measure committed tx/s, records/s and read latency on this machine; with
    --network, committed tx/s, finality and catch-up of a BFT consortium."""
    if network:
        from ehrchain.node.bench_network import NetworkBenchConfig

        config = NetworkBenchConfig(
            validators=_counts(validators, "--validators"),
            block_txs=_counts(block_txs, "--block-txs"),
            txs=txs or 20_000,
            latency_s=latency_s,
            patients=patients,
            catch_up=catch_up,
        )
        _bench_network(data_dir, config, json_out, plot_out)
        return
    from ehrchain.node.bench import run_bench, summary

    with _StageProgress() as progress:
        result = run_bench(
            data_dir,
            txs=txs or 40_000,
            records=records,
            reads=reads,
            patients=patients,
            record_kib=record_kib,
            json_out=json_out,
            progress=progress.update,
        )
    table = Table("measure", "value", "target", "ceiling", "of ceiling")
    for name, (value, target, ceiling, ratio) in summary(result).items():
        table.add_row(
            name,
            f"{value:,.1f}",
            target,
            "-" if ceiling is None else f"{ceiling:,.0f}",
            "-" if ratio is None else f"{ratio:.0%}",
        )
    console.print(table)


def _counts(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise fail(f"{option} takes whole numbers separated by commas, not {text!r}") from None
    if not values or min(values) < 1:
        raise fail(f"{option} values must be at least 1")
    return values


def _bench_network(
    data_dir: Path, config: NetworkBenchConfig, json_out: Path | None, plot_out: Path | None
) -> None:
    from ehrchain.node.bench_network import run_network_bench
    from ehrchain.node.bench_report import plot, write_json

    with _StageProgress() as progress:
        result = run_network_bench(data_dir, config, progress.update)
    table = Table(
        "validators", "block txs", "tx/s", "ceiling", "of ceiling", "p50 ms", "p99 ms", "catch-up"
    )
    for row in result.rows:
        rate = row.throughput.tx_per_s
        table.add_row(
            str(row.validators),
            f"{row.block_txs:,}",
            f"{rate:,.0f}",
            f"{row.tx_ceiling_per_s:,.0f}",
            f"{rate / row.tx_ceiling_per_s:.0%}",
            f"{row.finality_p50_ms:,.0f}",
            f"{row.finality_p99_ms:,.0f}",
            "-" if row.catch_up is None else f"{row.catch_up.tx_per_s:,.0f} tx/s",
        )
    console.print(table)
    for target in result.targets():
        verdict = {None: "not measured", True: "[green]met[/green]", False: "[red]not met[/red]"}
        value = "-" if target.value is None else f"{target.value:,.0f}"
        console.print(f"{target.name} {target.wanted}: {value} — {verdict[target.met]}")
    if json_out is not None:
        write_json(result, json_out)
    if plot_out is not None:
        plot(result, plot_out)


class _StageProgress:
    """A rich progress bar per verification stage, fed by ``(stage, done, total)``."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _StageProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, stage: str, done: int, total: int) -> None:
        task = self._tasks.get(stage)
        if task is None:
            task = self._progress.add_task(stage, total=total or None)
            self._tasks[stage] = task
        self._progress.update(task, completed=done, total=total or None)
