"""Web accounts: username -> Argon2id password hash and the user's keystore, encrypted.

A browser user has no SDK of their own, so the node keeps each web user's
identity as a keystore (``crypto.keystore``: keys sealed under a key derived
from the user's password with Argon2id). The node never stores a password or
a key in clear: the hash checks the password, the keystore opens only with it.

The file is a small SQLite database in the node's data directory, separate
from the ledger; the web layer is its only reader. ``created_by`` and
``hospital`` let a hospital admin list the people they registered.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ehrchain.crypto.keystore import Identity, KdfParams, decrypt_identity, encrypt_identity
from ehrchain.web.errors import AccountExists, BadForm, LoginFailed
from ehrchain.web.settings import PasswordCost

USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{2,39}")
ADDRESSES_TTL_S: Final = 2.0
"""How long ``addresses`` trusts its copy: accounts that another process adds to the
file (``ehrchain web add-account``, the demo's set-up) show within this time."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS account (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    keystore      BLOB NOT NULL,
    role          TEXT NOT NULL,
    address       TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    hospital      TEXT NOT NULL DEFAULT '',
    created_by    TEXT NOT NULL DEFAULT '',
    must_change   INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL
);
"""


_SELECT: Final = (
    "SELECT username, role, address, display_name, hospital, created_by, must_change, "
    "created_ms FROM account "
)


@dataclass(frozen=True, slots=True)
class Account:
    """One web account's public facts (never the hash or the keystore)."""

    username: str
    role: str
    address: str
    display_name: str
    hospital: str
    created_by: str
    must_change: bool
    created_ms: int


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.fullmatch(name):
        raise BadForm("username", "use 3-40 letters, digits, dots, dashes or underscores")
    return name


def check_password(password: str, min_length: int) -> str:
    if len(password) < min_length:
        raise BadForm("password", f"must be at least {min_length} characters")
    if len(password) > 1024:
        raise BadForm("password", "must be at most 1024 characters")
    return password


class AccountStore:
    """The accounts file; thread-safe (one connection, one lock)."""

    def __init__(self, path: Path, cost: PasswordCost, kdf: KdfParams) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_cost_kib,
            parallelism=cost.parallelism,
        )
        self._kdf = kdf
        self._dummy_hash = self._hasher.hash("not a password of anyone")
        self._addresses: frozenset[str] = frozenset()
        self._addresses_until = 0.0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self,
        username: str,
        password: str,
        identity: Identity,
        *,
        display_name: str,
        hospital: str = "",
        created_by: str = "",
        must_change: bool = False,
        now_ms: int,
    ) -> Account:
        """Store a new account; its keystore is sealed under ``password``."""
        name = check_username(username)
        keystore = encrypt_identity(identity, password, self._kdf)
        password_hash = self._hasher.hash(password)
        row = (
            name,
            password_hash,
            keystore,
            identity.role,
            identity.address,
            display_name.strip()[:80] or name,
            hospital,
            created_by,
            int(must_change),
            now_ms,
        )
        with self._lock:
            try:
                self._db.execute("INSERT INTO account VALUES (?,?,?,?,?,?,?,?,?,?)", row)
            except sqlite3.IntegrityError:
                raise AccountExists(f"the username {name!r} or that address is taken") from None
            self._addresses_until = 0.0
        found = self.get(name)
        assert found is not None
        return found

    def delete(self, username: str) -> None:
        """Undo ``create`` when the registration it was for did not reach the chain."""
        with self._lock:
            self._db.execute("DELETE FROM account WHERE username = ?", (username,))
            self._addresses_until = 0.0

    def authenticate(self, username: str, password: str) -> tuple[Account, Identity]:
        """Check the password and open the keystore; one error for any failure."""
        name = username.strip().lower()
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash, keystore FROM account WHERE username = ?", (name,)
            ).fetchone()
        if row is None:
            self._verify(self._dummy_hash, password)
            raise LoginFailed()
        if not self._verify(str(row[0]), password):
            raise LoginFailed()
        identity = decrypt_identity(bytes(row[1]), password)
        account = self.get(name)
        assert account is not None
        return account, identity

    def change_password(self, username: str, old: str, new: str) -> None:
        """Re-seal the keystore under the new password and store the new hash."""
        account, identity = self.authenticate(username, old)
        keystore = encrypt_identity(identity, new, self._kdf)
        with self._lock:
            self._db.execute(
                "UPDATE account SET password_hash = ?, keystore = ?, must_change = 0 "
                "WHERE username = ?",
                (self._hasher.hash(new), keystore, account.username),
            )

    def get(self, username: str) -> Account | None:
        rows = self._select("WHERE username = ?", (username.strip().lower(),))
        return rows[0] if rows else None

    def by_address(self, address: str) -> Account | None:
        rows = self._select("WHERE address = ?", (address,))
        return rows[0] if rows else None

    def created_by(self, username: str) -> list[Account]:
        return self._select("WHERE created_by = ? ORDER BY created_ms", (username,))

    def with_role(self, role: str) -> list[Account]:
        return self._select("WHERE role = ? ORDER BY created_ms", (role,))

    def addresses(self) -> frozenset[str]:
        """The address of every account: whom this node's pages can ever show a notice.

        Asked for every committed transaction, so answered from memory; accounts
        made or removed through this store show at once, others (written to the
        file by another process) within ``ADDRESSES_TTL_S``.
        """
        now = time.monotonic()
        with self._lock:
            if now >= self._addresses_until:
                rows = self._db.execute("SELECT address FROM account").fetchall()
                self._addresses = frozenset(str(r[0]) for r in rows)
                self._addresses_until = now + ADDRESSES_TTL_S
            return self._addresses

    def names(self, addresses: list[str]) -> dict[str, str]:
        """Display names of the given addresses that have web accounts."""
        found: dict[str, str] = {}
        for address in set(addresses):
            account = self.by_address(address)
            if account is not None:
                found[address] = account.display_name
        return found

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _select(self, where: str, args: tuple[str, ...]) -> list[Account]:
        query = _SELECT + where
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [
            Account(
                username=str(r[0]),
                role=str(r[1]),
                address=str(r[2]),
                display_name=str(r[3]),
                hospital=str(r[4]),
                created_by=str(r[5]),
                must_change=bool(r[6]),
                created_ms=int(r[7]),
            )
            for r in rows
        ]
