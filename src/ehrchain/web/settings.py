"""Settings of the web front end, built once at the edge and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ehrchain.crypto.keystore import KdfParams

ACCOUNTS_FILE = "web-accounts.sqlite"


@dataclass(frozen=True, slots=True)
class PasswordCost:
    """Argon2id costs of the login password hash (argon2-cffi PasswordHasher)."""

    time_cost: int = 3
    memory_cost_kib: int = 64 * 1024
    parallelism: int = 1


FAST_PASSWORD_COST = PasswordCost(time_cost=1, memory_cost_kib=8, parallelism=1)
"""For tests only: the same algorithm at a cost that does not slow a test run."""


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Where web accounts live and how sessions, logins and keystores behave.

    ``data_dir`` is the node's data directory; the accounts file sits in it.
    Timeouts are seconds. ``secure_cookies`` adds the Secure attribute; it is
    off by default because the node serves plain HTTP on loopback.
    """

    data_dir: Path
    session_idle_s: int = 15 * 60
    session_max_s: int = 8 * 60 * 60
    login_max_failures: int = 5
    login_window_s: int = 5 * 60
    login_lockout_s: int = 5 * 60
    min_password_length: int = 10
    secure_cookies: bool = False
    password_cost: PasswordCost = field(default_factory=PasswordCost)
    keystore_kdf: KdfParams = KdfParams.DEFAULT
    max_upload_bytes: int = 16 * 1024 * 1024
    tx_wait_s: float = 10.0
    poll_s: float = 0.2
    opened_ttl_s: int = 10 * 60

    @property
    def accounts_path(self) -> Path:
        return self.data_dir / ACCOUNTS_FILE
