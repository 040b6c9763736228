"""`ehrchain verify` as an operator runs it: a separate process, judged by exit code and output."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ehrchain.node.settings import LEDGER_FILE
from story import StoryDir, forget_blob, write_story_data_dir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> StoryDir:
    return write_story_data_dir(tmp_path_factory.mktemp("pristine") / "node", "ehrchain-cli")


@pytest.fixture
def copy(pristine: StoryDir, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine.data_dir, tmp_path / "node"))


# The console script pip installs beside the interpreter, as an operator runs it.
# (``python -m ehrchain.cli.main`` runs nothing yet: cli/main.py has no ``__main__`` guard.)
EHRCHAIN = Path(sys.executable).with_name("ehrchain")


def run_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    assert EHRCHAIN.is_file(), "the ehrchain console script is not installed in this venv"
    env = {**os.environ, "COLUMNS": "500", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [str(EHRCHAIN), "verify", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr with rich's wrapping undone."""
    return re.sub(r"\s+", " ", result.stdout + " " + result.stderr)


def test_an_intact_data_directory_exits_0(pristine: StoryDir, copy: Path) -> None:
    result = run_verify(copy)

    assert result.returncode == 0, result.stdout + result.stderr
    output = _one_line(result)
    blocks = max(height for height, _ in pristine.positions.values()) + 1
    assert f"{blocks} blocks" in output
    assert f"{len(pristine.story.txs)} transactions" in output


def test_a_tampered_transaction_exits_non_zero_naming_block_and_index(
    pristine: StoryDir, copy: Path
) -> None:
    signed = pristine.story.txs["grant ada->okafor"]
    height, index = pristine.positions["grant ada->okafor"]
    ledger = copy / LEDGER_FILE
    data = bytearray(ledger.read_bytes())
    start = data.find(signed.to_bytes())
    assert start >= 0
    assert data.find(signed.to_bytes(), start + 1) < 0
    data[start + len(signed.to_bytes()) // 2] ^= 0x01
    ledger.write_bytes(bytes(data))

    result = run_verify(copy)

    assert result.returncode != 0
    output = _one_line(result)
    assert re.search(rf"\bblock {height}\b", output), output
    assert re.search(rf"\btransaction {index}\b", output), output


def test_a_deleted_blob_exits_non_zero_naming_it(pristine: StoryDir, copy: Path) -> None:
    record = pristine.story.record("Observation")
    forget_blob(copy / "blobs", record.cid)

    result = run_verify(copy)

    assert result.returncode != 0
    assert record.cid in _one_line(result)
