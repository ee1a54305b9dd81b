"""The fault history in the state database: one row per fault raised on a connector, with when
it cleared and the error code the CSMS was told. Bounded: past ``max_rows`` the oldest cleared
rows go first. Methods block on SQLite: call them in a thread.

:func:`fault_history` is the plain reader (``evsectl faults``, the diagnostics archive).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from evsed.store.db import Database

DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True, slots=True)
class FaultRecord:
    id: int
    connector_id: int
    fault: str
    vendor_error_code: str
    info: str
    raised_at: str
    cleared_at: str | None  # None: still active
    ended: str | None  # "cleared", or "restart" when the daemon stopped while it was active
    reported_error_code: str | None  # what the CSMS client reported it as (e.g. GroundFailure)


def fault_history(
    db: Database, *, connector_id: int | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """The fault history, newest first, as plain rows."""
    return [asdict(r) for r in FaultStore(db).rows(connector_id=connector_id, limit=limit)]


class FaultStore:
    def __init__(self, db: Database, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self._db = db
        self._max_rows = max_rows

    def raised(
        self, connector_id: int, fault: str, vendor_error_code: str, info: str, at: str
    ) -> int:
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT INTO fault_history"
                " (connector_id, fault, vendor_error_code, info, raised_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (connector_id, fault, vendor_error_code, info, at),
            )
            row_id = int(cur.lastrowid or 0)
            # Bounded: beyond max_rows the oldest cleared rows go (active ones are kept).
            cur.execute(
                "DELETE FROM fault_history WHERE id IN (SELECT id FROM fault_history"
                " ORDER BY cleared_at IS NULL DESC, id DESC LIMIT -1 OFFSET ?)",
                (self._max_rows,),
            )
        return row_id

    def cleared(self, connector_id: int, fault: str, at: str, ended: str = "cleared") -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE fault_history SET cleared_at = ?, ended = ?"
                " WHERE connector_id = ? AND fault = ? AND cleared_at IS NULL",
                (at, ended, connector_id, fault),
            )

    def close_open(self, at: str) -> int:
        """Rows still open from before a restart: closed, ended "restart"."""
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE fault_history SET cleared_at = ?, ended = 'restart'"
                " WHERE cleared_at IS NULL",
                (at,),
            )
            return int(cur.rowcount)

    def reported(self, connector_id: int, vendor_error_code: str, error_code: str) -> None:
        with self._db.transaction() as cur:
            cur.execute(
                "UPDATE fault_history SET reported_error_code = ? WHERE connector_id = ?"
                " AND vendor_error_code = ? AND cleared_at IS NULL",
                (error_code, connector_id, vendor_error_code),
            )

    def rows(
        self, *, connector_id: int | None = None, limit: int | None = None
    ) -> list[FaultRecord]:
        where, params = ("WHERE connector_id = ?", (connector_id,)) if connector_id else ("", ())
        rows = self._db.query(
            f"SELECT * FROM fault_history {where} ORDER BY id DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [
            FaultRecord(**{name: row[name] for name in FaultRecord.__dataclass_fields__})
            for row in rows
        ]
