"""Create a node's data directory: settings, genesis, encrypted keystores, genesis block."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ehrchain.core.identity import new_identity
from ehrchain.crypto.keystore import Identity, KdfParams, load_identity, save_identity
from ehrchain.node import settings as settings_mod
from ehrchain.node.genesis import commit_genesis, genesis_config
from ehrchain.node.settings import Settings
from ehrchain.storage.ledger import Ledger

ADMIN_KEY_FILE = "admin.key"


@dataclass(frozen=True, slots=True)
class InitResult:
    settings: Settings
    admin: Identity
    validator: Identity


def init_node(
    data_dir: Path,
    *,
    password: str,
    chain_id: str = "ehrchain-local",
    port: int = 8000,
    admin: Identity | None = None,
    kdf: KdfParams = KdfParams.DEFAULT,
    timestamp_ms: int | None = None,
    write_password_file: bool = False,
) -> InitResult:
    """Initialise a single-validator node. Refuses to overwrite an existing ledger."""
    settings = settings_mod.Settings(data_dir=data_dir, chain_id=chain_id, port=port)
    if settings.ledger_path.exists():
        raise FileExistsError(f"{data_dir} already holds a ledger")
    key_dir = data_dir / settings_mod.KEY_DIR
    key_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    admin = admin or new_identity("consortium-admin", "consortium_admin")
    validator = new_identity("validator-0", "validator")
    save_identity(settings.node_key_path, validator, password, kdf)
    save_identity(key_dir / ADMIN_KEY_FILE, admin, password, kdf)
    if write_password_file:
        pw_file = key_dir / "node.password"
        pw_file.write_text(password)
        os.chmod(pw_file, 0o600)
        from dataclasses import replace

        settings = replace(settings, password_file=str(pw_file.relative_to(data_dir)))
    if timestamp_ms is None:
        timestamp_ms = time.time_ns() // 1_000_000
    config = genesis_config(chain_id, admin, [validator], timestamp_ms)
    settings.genesis_path.write_text(config.to_json())
    settings_mod.write(settings)
    with Ledger.open(settings.ledger_path) as ledger:
        commit_genesis(ledger, config)
    return InitResult(settings, admin, validator)


def node_password(settings: Settings) -> str:
    """The keystore password: $EHRCHAIN_NODE_PASSWORD, else the configured password file."""
    env = os.environ.get(settings_mod.PASSWORD_ENV)
    if env:
        return env
    if settings.password_file:
        return (settings.data_dir / settings.password_file).read_text().strip()
    raise RuntimeError(f"set {settings_mod.PASSWORD_ENV} to the node key password")


def load_node_identity(settings: Settings) -> Identity:
    return load_identity(settings.node_key_path, node_password(settings))
