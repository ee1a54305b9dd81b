"""Charging profiles in the state database, so that they survive a restart and a rollback.

A profile replaces an installed one with the same id, or with the same connector, purpose and
stack level (OCPP 1.6 §3.13.2, §5.16.3). Methods block on SQLite: call them in a thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from evsed.charging.schedules import Kind, Period, Profile, Purpose, Recurrency, Schedule, Unit
from evsed.store.db import Database

log = logging.getLogger(__name__)


class ProfileStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[Profile]:
        rows = self._db.query("SELECT body FROM charging_profiles ORDER BY id")
        profiles = []
        for row in rows:
            try:
                profiles.append(from_json(json.loads(row["body"])))
            except (ValueError, KeyError, TypeError) as exc:
                # Written by a newer release (we were rolled back) in a shape we cannot read.
                log.warning("ignoring a stored charging profile: %s", exc)
        return profiles

    def install(self, profile: Profile) -> list[int]:
        """Store ``profile``; returns the ids of the profiles it replaced."""
        with self._db.transaction() as cur:
            replaced = [
                int(row[0])
                for row in cur.execute(
                    "SELECT id FROM charging_profiles WHERE id = ? OR (connector_id = ?"
                    " AND purpose = ? AND stack_level = ?)",
                    (profile.id, profile.connector_id, str(profile.purpose), profile.stack_level),
                )
            ]
            cur.executemany("DELETE FROM charging_profiles WHERE id = ?", [(i,) for i in replaced])
            cur.execute(
                "INSERT INTO charging_profiles (id, connector_id, purpose, stack_level,"
                " transaction_id, body) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    profile.id,
                    profile.connector_id,
                    str(profile.purpose),
                    profile.stack_level,
                    profile.transaction_id,
                    json.dumps(to_json(profile), separators=(",", ":")),
                ),
            )
        return replaced

    def remove(self, ids: list[int]) -> None:
        with self._db.transaction() as cur:
            cur.executemany("DELETE FROM charging_profiles WHERE id = ?", [(i,) for i in ids])

    def count(self) -> int:
        return int(self._db.query("SELECT COUNT(*) AS n FROM charging_profiles")[0]["n"])


def to_json(profile: Profile) -> dict[str, Any]:
    return dataclasses.asdict(profile)


def from_json(data: dict[str, Any]) -> Profile:
    schedule = data["schedule"]
    return Profile(
        id=int(data["id"]),
        connector_id=int(data["connector_id"]),
        purpose=Purpose(data["purpose"]),
        stack_level=int(data["stack_level"]),
        kind=Kind(data["kind"]),
        schedule=Schedule(
            unit=Unit(schedule["unit"]),
            periods=tuple(Period(**period) for period in schedule["periods"]),
            duration_s=schedule.get("duration_s"),
            start=schedule.get("start"),
            min_rate=schedule.get("min_rate"),
        ),
        recurrency=Recurrency(data["recurrency"]) if data.get("recurrency") else None,
        valid_from=data.get("valid_from"),
        valid_to=data.get("valid_to"),
        transaction_id=data.get("transaction_id"),
    )
