"""Node settings: one TOML file per data directory, read once at the edge."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = "node.toml"
GENESIS_FILE = "genesis.json"
LEDGER_FILE = "ledger.sqlite"
BLOB_DIR = "blobs"
KEY_DIR = "keys"
NODE_KEY_FILE = "node.key"
PASSWORD_ENV = "EHRCHAIN_NODE_PASSWORD"  # noqa: S105 (a variable name, not a secret)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs to start; built by ``load`` and passed down."""

    data_dir: Path
    chain_id: str = "ehrchain-local"
    host: str = "127.0.0.1"
    port: int = 8000
    consensus: str = "solo"
    max_block_txs: int = 5000
    max_block_bytes: int = 8 * 1024 * 1024
    max_wait_ms: int = 200
    commit_pause_ms: int = 25
    """BFT: how long the next height waits after a block is committed before it starts
    (Tendermint's ``timeout_commit``), so that transactions arriving meanwhile share
    one block; 0 starts it at once. A height does not start before a transaction is
    pending, pause or not."""
    max_body_bytes: int = 48 * 1024 * 1024
    max_blob_bytes: int = 32 * 1024 * 1024
    max_pending: int = 200_000
    durable: bool = False
    log_level: str = "INFO"
    password_file: str = ""
    """Path of a file holding the node key password (demo only); else $EHRCHAIN_NODE_PASSWORD."""

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / LEDGER_FILE

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / BLOB_DIR

    @property
    def genesis_path(self) -> Path:
        return self.data_dir / GENESIS_FILE

    @property
    def node_key_path(self) -> Path:
        return self.data_dir / KEY_DIR / NODE_KEY_FILE

    @property
    def log_path(self) -> Path:
        return self.data_dir / "node.log"


def load(data_dir: Path, **overrides: Any) -> Settings:
    """Read ``node.toml`` from data_dir (if present) and apply overrides."""
    values: dict[str, Any] = {}
    config = data_dir / CONFIG_FILE
    if config.exists():
        with config.open("rb") as fh:
            values = tomllib.load(fh).get("node", {})
    known = {f.name for f in fields(Settings)} - {"data_dir"}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings in {config}: {sorted(unknown)}")
    settings = Settings(data_dir=data_dir, **values)
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(settings, **given)


def write(settings: Settings) -> None:
    """Write settings back as ``node.toml`` (simple scalar values only)."""
    lines = ["[node]"]
    for f in fields(Settings):
        if f.name == "data_dir":
            continue
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            lines.append(f"{f.name} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{f.name} = {value}")
        else:
            lines.append(f'{f.name} = "{value}"')
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / CONFIG_FILE).write_text("\n".join(lines) + "\n")
