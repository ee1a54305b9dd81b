"""Small persisted settings in the ``kv`` table (e.g. connector availability, §5.2)."""

from __future__ import annotations

from evsed.store.db import Database


def get(db: Database, key: str) -> str | None:
    rows = db.query("SELECT value FROM kv WHERE key = ?", (key,))
    return str(rows[0]["value"]) if rows else None


def put(db: Database, key: str, value: str) -> None:
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
