"""Wall-clock time as OCPP writes it: UTC, ISO 8601 with a ``Z`` (OCPP 1.6 §3.14)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime, timespec: str = "milliseconds") -> str:
    """``2026-11-21T02:03:04.567Z``; a naive ``ts`` is taken as local time, like astimezone."""
    return ts.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC. Raises ValueError when unreadable."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
