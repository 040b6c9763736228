"""``ehrchain bench --network`` at a tiny size: the result's structure and that every
submitted transaction is counted in the blocks. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ehrchain.cli.main import app
from ehrchain.node.bench_network import NetworkBenchConfig, run_network_bench
from ehrchain.node.bench_report import markdown

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_one_validator_through_the_cli_writes_json_and_a_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "net.json", tmp_path / "net.png"
    args = ["bench", "--network", "--data-dir", str(tmp_path / "runs"), "--validators", "1"]
    args += ["--block-txs", "100", "--txs", "300", "--latency-s", "0.5", "--patients", "8"]
    result = CliRunner().invoke(app, [*args, "--json", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output

    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert (row["validators"], row["block_txs"]) == (1, 100)
    assert row["committed"] == row["txs"] == 300
    assert row["blocks"] >= 3  # blocks hold at most 100: the setting reached the node
    assert row["finality_txs"] > 0
    assert row["finality_p99_ms"] >= row["finality_p50_ms"] > 0
    assert row["tx_ceiling_per_s"] == pytest.approx(row["verify_and_persist_per_s"] * row["cores"])
    assert row["catch_up"] is None  # one validator cannot be stopped and caught up
    assert {t["met"] for t in data["targets"]} == {None}  # no 4-validator row
    assert png.read_bytes().startswith(b"\x89PNG")


def test_four_validators_catch_up_a_restarted_one(tmp_path: Path) -> None:
    config = NetworkBenchConfig(
        validators=(4,), block_txs=(200,), txs=400, latency_s=0.5, patients=8
    )
    result = run_network_bench(tmp_path, config)

    (row,) = result.rows
    assert row.throughput.committed == row.throughput.txs == 400
    assert row.catch_up is not None
    assert row.catch_up.txs == 400
    assert 0 <= row.catch_up.verified_txs <= 400
    assert row.catch_up.tx_per_s > 0
    assert row.catch_up_ceiling_per_s == pytest.approx(row.verify_and_persist_per_s * row.cores)
    assert [t.value is not None for t in result.targets()] == [True] * 4
    section = markdown(result, "ehrchain bench --network")
    assert "| 4 | 200 |" in section
    assert "Targets (read from the row of 4 validators" in section
