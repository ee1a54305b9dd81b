"""Reservations in the state database: a reservation survives a restart until it is used,
cancelled or expires. Methods block on SQLite: call them in a thread."""

from __future__ import annotations

from evsed.charging.reservations import Reservation
from evsed.store.db import Database


class ReservationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[Reservation]:
        rows = self._db.query(
            "SELECT id, connector_id, id_tag, parent_id_tag, expires_at FROM reservations"
            " ORDER BY id"
        )
        return [
            Reservation(
                id=int(row["id"]),
                connector_id=int(row["connector_id"]),
                id_tag=str(row["id_tag"]),
                parent_id_tag=None if row["parent_id_tag"] is None else str(row["parent_id_tag"]),
                expires_at=float(row["expires_at"]),
            )
            for row in rows
        ]

    def put(self, reservation: Reservation) -> None:
        """Store ``reservation``, replacing one with the same id."""
        with self._db.transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO reservations"
                " (id, connector_id, id_tag, parent_id_tag, expires_at) VALUES (?, ?, ?, ?, ?)",
                (
                    reservation.id,
                    reservation.connector_id,
                    reservation.id_tag,
                    reservation.parent_id_tag,
                    reservation.expires_at,
                ),
            )

    def delete(self, reservation_ids: list[int]) -> None:
        with self._db.transaction() as cur:
            rows = [(i,) for i in reservation_ids]
            cur.executemany("DELETE FROM reservations WHERE id = ?", rows)
