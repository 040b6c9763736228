"""The network bench as a Markdown section and a PNG plot, each figure beside its ceiling.

matplotlib is imported only by ``plot`` (it comes with the ``dev`` extra), so the
bench itself runs without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ehrchain.node.bench_results import NetworkBenchResult, Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["markdown", "plot", "write_json"]


def write_json(result: NetworkBenchResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _row_line(row: Row) -> str:
    rate = row.throughput.tx_per_s
    cells = [
        str(row.validators),
        _n(row.block_txs),
        _n(rate),
        _n(row.tx_ceiling_per_s),
        f"{rate / row.tx_ceiling_per_s:.0%}",
        _ms(row.idle_finality_ms),
        _n(row.offered_per_s),
        _ms(row.finality_p50_ms),
        _ms(row.finality_p99_ms),
    ]
    if row.catch_up is None:
        cells += ["-", "-", "-"]
    else:
        catch = row.catch_up.tx_per_s
        ceiling = row.catch_up_ceiling_per_s
        cells += [_n(catch), _n(ceiling), f"{catch / ceiling:.0%}"]
    return "| " + " | ".join(cells) + " |"


def markdown(result: NetworkBenchResult, command: str) -> str:
    """A section for BENCHMARKS.md: machine, command, one row per configuration, targets."""
    m = result.machine
    load = " ".join(f"{x:.2f}" for x in result.load_before)
    lines = [
        f"### Network run of {result.started}",
        "",
        f"- machine: {m.cpu}, {m.cores} cores, Python {m.python}; load average before: {load}",
        f"- command: `{command}`",
        "",
        "| validators | block txs | committed tx/s | ceiling | of ceiling | idle finality ms "
        "| offered tx/s | finality p50 ms | finality p99 ms | catch-up tx/s | catch-up ceiling "
        "| of ceiling |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(_row_line(r) for r in result.rows),
        "",
    ]
    row = result.target_row()
    where = (
        "no 4-validator row was measured"
        if row is None
        else f"read from the row of 4 validators, blocks of {row.block_txs:,}"
    )
    lines += [
        f"Targets ({where}):",
        "",
        "| target | wanted | measured | met |",
        "| --- | --- | ---: | --- |",
    ]
    for t in result.targets():
        value = "-" if t.value is None else _n(t.value)
        met = "not measured" if t.met is None else ("**met**" if t.met else "**not met**")
        lines.append(f"| {t.name} | {t.wanted} | {value} | {met} |")
    return "\n".join(lines) + "\n"


def plot(result: NetworkBenchResult, path: Path) -> None:
    """Throughput (with ceilings) and finality against validators and block size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator, ScalarFormatter

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    sizes = sorted({r.block_txs for r in result.rows})
    counts = sorted({r.validators for r in result.rows})
    for size in sizes:
        rows = sorted((r for r in result.rows if r.block_txs == size), key=lambda r: r.validators)
        _lines(axes[0][0], axes[0][1], [r.validators for r in rows], rows, f"blocks of {size:,}")
    for count in counts:
        rows = sorted((r for r in result.rows if r.validators == count), key=lambda r: r.block_txs)
        label = f"{count} validator{'' if count == 1 else 's'}"
        _lines(axes[1][0], axes[1][1], [r.block_txs for r in rows], rows, label)
    for ax, by in ((axes[0][0], "validators"), (axes[1][0], "block size")):
        ax.set_title(f"Committed tx/s by {by} (dashed, x: same-run ceiling)", fontsize=10)
        ax.set_ylabel("tx/s")
        ax.set_ylim(bottom=0)
    for ax, by in ((axes[0][1], "validators"), (axes[1][1], "block size")):
        ax.set_title(f"Finality at half that load by {by} (solid p50, dotted p99)", fontsize=10)
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())
    for ax in (axes[0][0], axes[0][1]):
        ax.set_xlabel("validators")
        ax.set_xticks(counts)
    for ax in (axes[1][0], axes[1][1]):
        ax.set_xlabel("block size (max_block_txs)")
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    m = result.machine
    fig.suptitle(f"ehrchain BFT consortium on one machine ({m.cores} cores), {result.started}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lines(rate_ax: Axes, latency_ax: Axes, xs: list[int], rows: list[Row], label: str) -> None:
    (line,) = rate_ax.plot(xs, [r.throughput.tx_per_s for r in rows], "o-", label=label)
    rate_ax.plot(xs, [r.tx_ceiling_per_s for r in rows], "x--", color=line.get_color(), alpha=0.6)
    (line,) = latency_ax.plot(xs, [r.finality_p50_ms for r in rows], "o-", label=label)
    latency_ax.plot(xs, [r.finality_p99_ms for r in rows], ":", color=line.get_color())
