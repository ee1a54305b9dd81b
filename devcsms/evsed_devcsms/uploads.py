"""Files chargers upload (diagnostics archives, logs): ``PUT /uploads/<name>`` on the file
server. Kept in memory (bounded), listed and fetched through the admin API, with a rule that
answers the next uploads with an HTTP status instead (401 to test refusals, 503 to test
retries).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_TOTAL_BYTES = 64 * 1024 * 1024


@dataclass
class _Refusal:
    status: int
    times: int | None  # None: every upload until cleared


class UploadStore:
    """Thread-safe: the HTTP server runs a thread per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[str, bytes]] = {}  # name -> (received at, body)
        self._attempts: list[dict[str, object]] = []
        self._refusal: _Refusal | None = None

    def refusal(self, name: str) -> int | None:
        """The status to answer this upload with instead of storing it (counts one)."""
        with self._lock:
            refusal = self._refusal
            status = None
            if refusal is not None:
                status = refusal.status
                if refusal.times is not None:
                    refusal.times -= 1
                    if refusal.times <= 0:
                        self._refusal = None
            self._attempts.append({"name": name, "status": status or 201, "at": _now()})
            return status

    def store(self, name: str, body: bytes) -> bool:
        with self._lock:
            total = sum(len(b) for _, b in self._files.values()) + len(body)
            if total > MAX_TOTAL_BYTES:
                return False
            self._files[name] = (_now(), body)
            return True

    def get(self, name: str) -> bytes | None:
        with self._lock:
            entry = self._files.get(name)
            return entry[1] if entry else None

    def snapshot(self) -> dict[str, object]:
        """``{"files": [{"name", "bytes", "at"}], "attempts": [{"name", "status", "at"}]}``."""
        with self._lock:
            files = [{"name": n, "bytes": len(b), "at": at} for n, (at, b) in self._files.items()]
            return {"files": files, "attempts": list(self._attempts)}

    def set_refusal(self, status: int | None, times: int | None) -> None:
        if status is not None and not 400 <= status <= 599:
            raise ValueError("'status' must be an HTTP error status (400-599)")
        with self._lock:
            self._refusal = None if status is None else _Refusal(status, times)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
