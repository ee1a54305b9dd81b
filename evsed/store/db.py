"""SQLite on the data partition: one file, WAL mode, numbered schema versions.

Migrations only ever add tables or columns, so that after a RAUC rollback the older release
still opens the database the newer one wrote. Every write is committed (and fsynced, with
``synchronous=FULL``) before its caller is told it is done.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evsed.errors import EvsedError

log = logging.getLogger(__name__)

DB_NAME = "evsed.sqlite3"

MIGRATIONS: list[str] = [
    # 1: transactions, the durable outbox, and a key-value table for small persisted settings
    """
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        connector_id INTEGER NOT NULL,
        id_tag TEXT NOT NULL,
        meter_start_wh INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        csms_tx_id INTEGER,
        last_meter_wh INTEGER NOT NULL,
        meter_stop_wh INTEGER,
        stopped_at TEXT,
        stop_reason TEXT
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        local_tx_id INTEGER,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: authorization cache and local authorization list (OCPP 1.6 §3.5)
    """
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry_date TEXT,
        parent_id_tag TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE local_list (
        id_tag TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        expiry_date TEXT,
        parent_id_tag TEXT
    );
    """,
    # 3: meter values collected for StopTransaction.transactionData (StopTxn*Data keys)
    """
    ALTER TABLE transactions ADD COLUMN transaction_data TEXT NOT NULL DEFAULT '[]';
    """,
    # 4: messages the outbox may drop first when it is full (periodic meter values), said by
    # their writer instead of recognised by their name
    """
    ALTER TABLE outbox ADD COLUMN droppable INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: charging profiles (smart charging), kept across restarts
    """
    CREATE TABLE charging_profiles (
        id INTEGER PRIMARY KEY,
        connector_id INTEGER NOT NULL,
        purpose TEXT NOT NULL,
        stack_level INTEGER NOT NULL,
        transaction_id INTEGER,
        body TEXT NOT NULL
    );
    """,
    # 6: the security log (Security Whitepaper A04.FR.04): every security event, bounded
    """
    CREATE TABLE security_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        tech_info TEXT NOT NULL DEFAULT '',
        notified INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 7: reservations (OCPP 1.6 §5.13), kept across restarts until used, cancelled or expired
    """
    CREATE TABLE reservations (
        id INTEGER PRIMARY KEY,
        connector_id INTEGER NOT NULL,
        id_tag TEXT NOT NULL,
        parent_id_tag TEXT,
        expires_at REAL NOT NULL
    );
    """,
    # 8: fault history: what, when, on which connector, what the CSMS was told, when it cleared
    """
    CREATE TABLE fault_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        connector_id INTEGER NOT NULL,
        fault TEXT NOT NULL,
        vendor_error_code TEXT NOT NULL,
        info TEXT NOT NULL,
        raised_at TEXT NOT NULL,
        cleared_at TEXT,
        ended TEXT,
        reported_error_code TEXT
    );
    """,
]


class StoreError(EvsedError):
    """The state directory or its database cannot be used. Fatal at start-up: the daemon exits
    with EXIT_STATE_DIR, which the shipped unit does not restart on (a restart cannot fix a
    full or read-only partition, and must not touch a damaged file)."""

    def __init__(self, directory: Path, problem: str) -> None:
        self.directory = directory
        self.problem = problem
        super().__init__(f"state directory {directory}: {problem}")


class Database:
    """One SQLite connection shared by the store modules; calls are serialised by a lock.

    Callers on the event loop run these methods through ``asyncio.to_thread``.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DB_NAME
        self._lock = threading.Lock()
        _check_directory(state_dir)
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            result = self._conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                state_dir, f"cannot open state database {self.path}: {exc}{_hint(exc)}"
            ) from None
        if result is None or result[0] != "ok":
            raise StoreError(
                state_dir,
                f"integrity check failed for {self.path}: {result}; the file is left as it is"
                " (move it away to start with an empty state)",
            )
        try:
            self._migrate()
            # One small write now: a partition that is full or read-only is found at start-up.
            with self.transaction() as cur:
                cur.execute(
                    "INSERT INTO kv (key, value) VALUES ('storage.opened', datetime('now'))"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                )
        except sqlite3.Error as exc:
            raise StoreError(state_dir, f"cannot write {self.path}: {exc}{_hint(exc)}") from None

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > len(MIGRATIONS):
            # A newer release wrote this file (we were rolled back). Its additions are ignored.
            log.info("state database schema %d is newer than ours (%d)", current, len(MIGRATIONS))
            return
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self._lock:
                self._conn.executescript(
                    f"BEGIN; {MIGRATIONS[version - 1]}; PRAGMA user_version = {version}; COMMIT;"
                )
            log.info("state database migrated to schema %d", version)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction, committed when the block ends without an exception."""
        with self._lock:
            cur = self._conn.cursor()
            if not self._conn.in_transaction:
                cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()
            finally:
                cur.close()

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = sqlite3.Row
            try:
                return list(cur.execute(sql, params))
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _check_directory(state_dir: Path) -> None:
    """The directory exists (or is made) and can be written: a clear StoreError otherwise."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(state_dir, "not a directory") from None
    except OSError as exc:
        raise StoreError(state_dir, f"cannot create it: {exc.strerror}") from None
    if not state_dir.is_dir():
        raise StoreError(state_dir, "not a directory")
    flags = os.statvfs(state_dir).f_flag
    if flags & os.ST_RDONLY:
        raise StoreError(state_dir, "on a read-only file system")
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise StoreError(state_dir, "not writable by this user")


def _hint(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return "; the file is left as it is (move it away to start with an empty state)"
    if "full" in text:
        return " (no space left on the data partition)"
    return ""
