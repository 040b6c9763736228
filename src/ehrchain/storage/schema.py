"""The ledger's SQLite schema, pragmas and connection setup.

One file holds the whole ledger. Blocks, transactions, events and undo rows
reference ``blocks(height)`` with foreign keys, so no row can outlive or precede
the block it belongs to. ``PRAGMA user_version`` carries the schema version; a
file with another version is refused rather than guessed at.

Durability: the file runs in WAL mode. With ``synchronous=NORMAL`` a commit is
appended to the WAL with a ``write()`` but not fsynced, so it survives the
*process* being killed (even with SIGKILL: the bytes are in the OS page cache)
but the last commits may be lost, never half-applied, on power loss or a kernel
crash. ``synchronous=FULL`` (``durable=True``) fsyncs the WAL on every commit and
also survives power loss, at the cost of one fsync per block.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from ehrchain.storage.errors import LedgerError

SCHEMA_VERSION: Final = 1
PAGE_SIZE: Final = 8192
"""Takes effect when the file is created; ~20 % faster block inserts than 4096."""
WRITER_CACHE_KIB: Final = 32 * 1024
BUSY_TIMEOUT_S: Final = 30.0

_TABLES: Final = """
CREATE TABLE blocks (
    height       INTEGER PRIMARY KEY CHECK (height >= 0),
    hash         BLOB    NOT NULL UNIQUE CHECK (length(hash) = 32),
    prev_hash    BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    state_root   BLOB    NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    tx_count     INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    header       BLOB    NOT NULL,
    certificate  BLOB    NOT NULL
);
CREATE TABLE txs (
    tx_id  BLOB    NOT NULL UNIQUE CHECK (length(tx_id) = 32),
    height INTEGER NOT NULL REFERENCES blocks (height),
    idx    INTEGER NOT NULL,
    sender TEXT    NOT NULL,
    kind   TEXT    NOT NULL,
    data   BLOB    NOT NULL
);
CREATE UNIQUE INDEX txs_position ON txs (height, idx);
CREATE TABLE state (
    key   TEXT PRIMARY KEY CHECK (typeof(key) = 'text'),
    value BLOB NOT NULL CHECK (typeof(value) = 'blob')
) WITHOUT ROWID;
CREATE TABLE undo (
    height INTEGER NOT NULL REFERENCES blocks (height),
    key    TEXT    NOT NULL CHECK (typeof(key) = 'text'),
    prev   BLOB,
    PRIMARY KEY (height, key)
) WITHOUT ROWID;
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    height    INTEGER NOT NULL REFERENCES blocks (height),
    idx       INTEGER NOT NULL,
    subject   TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    record_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    tx_id     BLOB    NOT NULL
);
CREATE INDEX events_subject ON events (subject, id);
CREATE INDEX events_height ON events (height);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"""
"""``txs`` keeps an implicit rowid, so rows are appended in chain order and the
random ``tx_id`` lives only in its (narrow) unique index."""


def connect(path: Path, *, durable: bool, read_only: bool) -> sqlite3.Connection:
    """Open a connection in autocommit mode (transactions are explicit BEGINs).

    ``check_same_thread`` is off because the owning ``Ledger`` serialises use
    of each connection with a lock and closes every reader on ``close()``.
    """
    try:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_S,
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger file: {exc}") from exc
    try:
        _configure(conn, durable=durable, read_only=read_only)
    except sqlite3.Error as exc:
        conn.close()
        raise LedgerError(f"cannot use ledger file: {exc}") from exc
    except LedgerError:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, *, durable: bool, read_only: bool) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
        _check_version(conn)
        return
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise LedgerError(f"ledger file cannot use WAL journaling (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    conn.execute("PRAGMA temp_store = MEMORY")
    _create_or_check(conn)


def _create_or_check(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            if tables:
                raise LedgerError("file holds an SQLite database that is not a ledger")
            for statement in _TABLES.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise LedgerError(f"ledger schema version {version} is not {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _check_version(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise LedgerError(f"ledger schema version {version} is not {SCHEMA_VERSION}")
