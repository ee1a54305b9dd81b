"""The Authorization Cache and the Local Authorization List in SQLite (OCPP 1.6 §3.5).

Both survive reboots, resets and power outages (§3.5.1, §3.5.2). Id tags are CiString20
(§7.15, case-insensitive printable ASCII), so every lookup, replacement and deletion matches
them case-insensitively; a tag is stored as it was last received.

Policy (what is valid, when to evict, what the configuration allows) lives in
:mod:`evsed.ocpp.v16.authorization`; this module only reads and writes rows. Methods block on
SQLite: call them via ``asyncio.to_thread``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evsed.store.db import Database

LIST_VERSION_KEY = "ocpp16.local_list_version"


@dataclass(frozen=True, slots=True)
class AuthEntry:
    """One identifier with its IdTagInfo (OCPP 1.6 §7); ``expiry_date`` as received (ISO 8601)."""

    id_tag: str
    status: str
    expiry_date: str | None = None
    parent_id_tag: str | None = None


class _ListTooLong(Exception):
    """Raised inside a list transaction to roll it back."""


class AuthStore:
    """Rows of ``auth_cache``, ``local_list`` and the list version in ``kv``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- Authorization Cache (§3.5.1) ---------------------------------------------------------

    def cache_get(self, id_tag: str) -> AuthEntry | None:
        rows = self._db.query(
            "SELECT id_tag, status, expiry_date, parent_id_tag FROM auth_cache"
            " WHERE id_tag = ? COLLATE NOCASE",
            (id_tag,),
        )
        return _entry(rows[0]) if rows else None

    def cache_put(
        self,
        entry: AuthEntry,
        updated_at: str,
        *,
        max_entries: int,
        valid: Callable[[AuthEntry], bool],
    ) -> list[str]:
        """Insert or replace ``entry``; returns the tags evicted to stay within ``max_entries``.

        §3.5.1: when the cache is full, NOT-valid entries go first, then the valid entries that
        were updated longest ago. The new entry itself is never evicted. ``updated_at`` must be
        in one fixed ISO 8601 format so that it sorts by time.
        """
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM auth_cache WHERE id_tag = ? COLLATE NOCASE", (entry.id_tag,))
            cur.execute(
                "INSERT INTO auth_cache (id_tag, status, expiry_date, parent_id_tag, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (entry.id_tag, entry.status, entry.expiry_date, entry.parent_id_tag, updated_at),
            )
            (count,) = cur.execute("SELECT COUNT(*) FROM auth_cache").fetchone()
            excess = count - max(max_entries, 1)
            if excess <= 0:
                return []
            # rowid breaks ties between equal timestamps: a replaced row gets a new, higher one.
            rows = cur.execute(
                "SELECT id_tag, status, expiry_date, parent_id_tag FROM auth_cache"
                " WHERE id_tag != ? ORDER BY updated_at, rowid",
                (entry.id_tag,),
            ).fetchall()
            others = [AuthEntry(*row) for row in rows]
            # sorted() is stable: within each group the oldest stays first.
            victims = sorted(others, key=valid)[:excess]
            cur.executemany(
                "DELETE FROM auth_cache WHERE id_tag = ?", [(v.id_tag,) for v in victims]
            )
        return [v.id_tag for v in victims]

    def cache_set_status(self, id_tag: str, status: str) -> None:
        """Change only the status (an entry that expired, §3.5.1); ``updated_at`` is kept."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE auth_cache SET status = ? WHERE id_tag = ? COLLATE NOCASE", (status, id_tag)
            )

    def cache_delete(self, id_tag: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM auth_cache WHERE id_tag = ? COLLATE NOCASE", (id_tag,))

    def cache_clear(self) -> None:
        """ClearCache (§5.4)."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM auth_cache")

    def cache_size(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM auth_cache")[0][0])

    # -- Local Authorization List (§3.5.2, §5.15) ---------------------------------------------

    def list_get(self, id_tag: str) -> AuthEntry | None:
        rows = self._db.query(
            "SELECT id_tag, status, expiry_date, parent_id_tag FROM local_list"
            " WHERE id_tag = ? COLLATE NOCASE",
            (id_tag,),
        )
        return _entry(rows[0]) if rows else None

    def list_size(self) -> int:
        return int(self._db.query("SELECT COUNT(*) FROM local_list")[0][0])

    def list_version(self) -> int:
        """The version stored with the last accepted update; 0 before the first one."""
        rows = self._db.query("SELECT value FROM kv WHERE key = ?", (LIST_VERSION_KEY,))
        return int(rows[0][0]) if rows else 0

    def set_list_version(self, version: int) -> None:
        with self._db.transaction() as cur:
            _write_version(cur, version)

    def list_replace(self, entries: Sequence[AuthEntry], version: int) -> None:
        """Full update (§5.15): the list becomes ``entries``, the version ``version``, at once."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM local_list")
            cur.executemany(
                "INSERT INTO local_list (id_tag, status, expiry_date, parent_id_tag)"
                " VALUES (?, ?, ?, ?)",
                [(e.id_tag, e.status, e.expiry_date, e.parent_id_tag) for e in entries],
            )
            _write_version(cur, version)
            _drop_listed_from_cache(cur)

    def list_apply(
        self,
        upserts: Sequence[AuthEntry],
        deletes: Sequence[str],
        version: int,
        *,
        max_entries: int,
    ) -> bool:
        """Differential update (§5.15): add or replace ``upserts``, remove ``deletes`` (removing
        an unknown tag is a no-op) and store ``version``, all or nothing. False, with nothing
        changed, when the resulting list would hold more than ``max_entries``."""
        try:
            with self._db.transaction() as cur:
                for id_tag in deletes:
                    cur.execute("DELETE FROM local_list WHERE id_tag = ? COLLATE NOCASE", (id_tag,))
                for e in upserts:
                    cur.execute(
                        "DELETE FROM local_list WHERE id_tag = ? COLLATE NOCASE", (e.id_tag,)
                    )
                    cur.execute(
                        "INSERT INTO local_list (id_tag, status, expiry_date, parent_id_tag)"
                        " VALUES (?, ?, ?, ?)",
                        (e.id_tag, e.status, e.expiry_date, e.parent_id_tag),
                    )
                (count,) = cur.execute("SELECT COUNT(*) FROM local_list").fetchone()
                if count > max_entries:
                    raise _ListTooLong
                _write_version(cur, version)
                _drop_listed_from_cache(cur)
        except _ListTooLong:
            return False
        return True


def _entry(row: sqlite3.Row) -> AuthEntry:
    return AuthEntry(
        id_tag=row["id_tag"],
        status=row["status"],
        expiry_date=row["expiry_date"],
        parent_id_tag=row["parent_id_tag"],
    )


def _write_version(cur: sqlite3.Cursor, version: int) -> None:
    cur.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?)"
        " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (LIST_VERSION_KEY, str(version)),
    )


def _drop_listed_from_cache(cur: sqlite3.Cursor) -> None:
    """§3.5.3: identifiers known in the Local Authorization List are not kept in the cache."""
    cur.execute(
        "DELETE FROM auth_cache WHERE EXISTS"
        " (SELECT 1 FROM local_list WHERE local_list.id_tag = auth_cache.id_tag COLLATE NOCASE)"
    )
