"""Transactions and the durable outbox that carries their messages to the CSMS.

A transaction's start, its meter samples and its stop are each written together with the
message that reports them, in one SQLite transaction, before the charging logic moves on. The
outbox is delivered strictly in order; a message is deleted only once the CSMS answered it.
What a message is (its ``action`` and payload) is its writer's business: the CSMS client of one
OCPP version, or a version-neutral report that the client translates when it delivers it.
When the outbox is full, messages their writer marked droppable (periodic meter values) go
first, oldest first; the rest is never dropped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from evsed.store.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    seq: int
    action: str
    local_tx_id: int | None
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    id: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: str
    csms_tx_id: int | None
    last_meter_wh: int
    meter_stop_wh: int | None
    stopped_at: str | None
    stop_reason: str | None
    transaction_data: str = "[]"  # JSON list of MeterValue objects for StopTransaction


class TransactionStore:
    """Transactions plus the outbox. Methods block on SQLite: call them via asyncio.to_thread."""

    def __init__(self, db: Database, max_messages: int = 10000) -> None:
        self._db = db
        self._max = max_messages

    def start(
        self,
        connector_id: int,
        id_tag: str,
        meter_wh: int,
        timestamp: str,
        message: tuple[str, dict[str, Any]],
        transaction_data: list[dict[str, Any]] | None = None,
    ) -> int:
        """Record a started transaction and queue its start message; returns the local id."""
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO transactions (connector_id, id_tag, meter_start_wh, started_at,"
                " last_meter_wh, transaction_data) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    connector_id,
                    id_tag,
                    meter_wh,
                    timestamp,
                    meter_wh,
                    json.dumps(transaction_data or []),
                ),
            )
            local_id = cur.lastrowid
            assert local_id is not None
            self._enqueue(cur, message, local_id, timestamp)
        return local_id

    def sample(
        self,
        local_id: int,
        meter_wh: int,
        timestamp: str,
        message: tuple[str, dict[str, Any]] | None,
        keep: dict[str, Any] | None = None,
    ) -> None:
        """Record the latest meter value of a running transaction, queue its report (if any,
        droppable) and keep ``keep`` for the transaction's stop message."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE transactions SET last_meter_wh = ? WHERE id = ?", (meter_wh, local_id)
            )
            if keep is not None:
                cur.execute(
                    "UPDATE transactions SET transaction_data = json_insert(transaction_data,"
                    " '$[#]', json(?)) WHERE id = ?",
                    (json.dumps(keep), local_id),
                )
            if message is not None:
                self._enqueue(cur, message, local_id, timestamp, droppable=True)

    def stop(
        self,
        local_id: int,
        meter_wh: int,
        timestamp: str,
        reason: str,
        message: tuple[str, dict[str, Any]],
    ) -> bool:
        """Record the end of a transaction and queue its stop message.

        Returns False (and queues nothing) if it was already stopped, so a stop can never be
        reported twice.
        """
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE transactions SET meter_stop_wh = ?, last_meter_wh = ?, stopped_at = ?,"
                " stop_reason = ? WHERE id = ? AND stopped_at IS NULL",
                (meter_wh, meter_wh, timestamp, reason, local_id),
            )
            if cur.rowcount != 1:
                return False
            self._enqueue(cur, message, local_id, timestamp)
        return True

    def set_csms_id(self, local_id: int, csms_tx_id: int) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE transactions SET csms_tx_id = ? WHERE id = ?", (csms_tx_id, local_id)
            )

    def get(self, local_id: int) -> TransactionRecord | None:
        rows = self._db.query("SELECT * FROM transactions WHERE id = ?", (local_id,))
        return _record(rows[0]) if rows else None

    def open_transactions(self) -> list[TransactionRecord]:
        rows = self._db.query("SELECT * FROM transactions WHERE stopped_at IS NULL ORDER BY id")
        return [_record(r) for r in rows]

    # -- outbox -------------------------------------------------------------------------------

    def enqueue(
        self,
        action: str,
        payload: dict[str, Any],
        timestamp: str,
        kv: tuple[str, str] | None = None,
        *,
        droppable: bool = False,
    ) -> None:
        """Queue a message not tied to a transaction; ``kv`` is stored in the same commit (so a
        status and the state it reports are never out of step after a power cut)."""
        with self._db.transaction() as cur:
            self._enqueue(cur, (action, payload), None, timestamp, droppable=droppable)
            if kv is not None:
                cur.execute(
                    "INSERT INTO kv (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    kv,
                )

    def next_message(self) -> OutboxMessage | None:
        rows = self._db.query("SELECT * FROM outbox ORDER BY seq LIMIT 1")
        if not rows:
            return None
        r = rows[0]
        return OutboxMessage(
            seq=r["seq"],
            action=r["action"],
            local_tx_id=r["local_tx_id"],
            payload=json.loads(r["payload"]),
            attempts=r["attempts"],
        )

    def delivered(self, seq: int) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def attempted(self, seq: int) -> None:
        with self._db.transaction() as cur:
            cur.execute("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (seq,))

    def pending(self) -> int:
        return int(self._db.query("SELECT COUNT(*) AS n FROM outbox")[0]["n"])

    def _enqueue(
        self,
        cur: Any,
        message: tuple[str, dict[str, Any]],
        local_id: int | None,
        timestamp: str,
        *,
        droppable: bool = False,
    ) -> None:
        action, payload = message
        cur.execute(
            "INSERT INTO outbox (action, local_tx_id, payload, created_at, droppable)"
            " VALUES (?, ?, ?, ?, ?)",
            (action, local_id, json.dumps(payload, separators=(",", ":")), timestamp, droppable),
        )
        (count,) = cur.execute("SELECT COUNT(*) FROM outbox").fetchone()
        if count > self._max:
            # Bounded growth: droppable messages (intermediate meter values) go first, oldest
            # first; starts and stops are never dropped (the transaction must reach the CSMS).
            cur.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE droppable = 1"
                " ORDER BY seq LIMIT ?)",
                (count - self._max,),
            )
            if cur.rowcount:
                log.warning("outbox full: dropped %d droppable messages", cur.rowcount)


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(TransactionRecord))


def _record(row: Any) -> TransactionRecord:
    # Columns a newer release added (we may have been rolled back) are ignored.
    keys = row.keys()  # sqlite3.Row iterates over values, not names
    return TransactionRecord(**{k: row[k] for k in keys if k in _RECORD_FIELDS})
