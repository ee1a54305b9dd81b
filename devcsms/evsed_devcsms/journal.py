"""Frame journal of the development CSMS: every OCPP-J frame, both directions, in order.

Entries are plain JSON-ready dicts so the admin API and the ``--journal`` JSON-lines file share
one shape::

    {"i": 0, "t": "2024-05-01T12:00:00.123+00:00", "cp": "CP01", "dir": "in", "type": 2,
     "id": "19223201", "action": "BootNotification", "payload": {...}}

``dir`` is seen from the CSMS ("in" = sent by the charge point). For CALLRESULT (3) and
CALLERROR (4) ``action`` names the CALL they answer (``null`` when no such CALL is known). A
CALLERROR's payload is ``{"errorCode", "errorDescription", "errorDetails"}``. A frame the
library cannot unpack (OCPP-J 1.6 §4.1) has ``type``, ``id``, ``action`` and ``payload`` null,
``error`` with the reason and ``raw`` with the text as received.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult, unpack

Direction = Literal["in", "out"]
Entry = dict[str, Any]

#: Entries kept in memory; older ones are dropped (indexes keep counting).
DEFAULT_CAPACITY = 100_000
_MAX_LOGGED_PAYLOAD = 2_000


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Frame:
    """One OCPP-J frame as seen on the wire (OCPP-J 1.6 §4.2), or why it could not be read."""

    type: int | None
    id: str | None
    action: str | None
    payload: Any
    error: str | None = None
    raw: str | None = None

    @property
    def is_call(self) -> bool:
        """True for a CALL (message type 2)."""
        return self.type == 2

    @property
    def is_response(self) -> bool:
        """True for a CALLRESULT or CALLERROR (message types 3 and 4)."""
        return self.type in (3, 4)


def parse_frame(raw: str | bytes) -> Frame:
    """Read one websocket message the way the ``ocpp`` library does (``ocpp.messages.unpack``).

    Never raises: a frame the library rejects becomes a Frame with ``error`` set.
    """
    try:
        msg = unpack(raw)
    except OCPPError as exc:
        cause = exc.details.get("cause") if isinstance(exc.details, dict) else None
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return Frame(None, None, None, None, f"{exc.code}: {cause or exc.description}", text)
    if isinstance(msg, Call):
        return Frame(2, _as_id(msg.unique_id), str(msg.action), msg.payload)
    if isinstance(msg, CallResult):
        return Frame(3, _as_id(msg.unique_id), None, msg.payload)
    assert isinstance(msg, CallError)
    error_payload = {
        "errorCode": msg.error_code,
        "errorDescription": msg.error_description,
        "errorDetails": msg.error_details,
    }
    return Frame(4, _as_id(msg.unique_id), None, error_payload)


def _as_id(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def describe(entry: Entry, *, with_time: bool = False) -> str:
    """Render an entry as one readable line.

    ``CP01 <- CALL BootNotification #42 {...}``: ``<-`` = received from the charge point,
    ``->`` = sent to it.
    """
    arrow = "<-" if entry["dir"] == "in" else "->"
    kind = {2: "CALL", 3: "RESULT", 4: "ERROR"}.get(entry["type"], "MALFORMED")
    head = f"{entry['cp']} {arrow} {kind}"
    if with_time:
        head = f"{entry['t']} {head}"
    if entry["type"] is None:
        return f"{head} ({entry.get('error')}) {entry.get('raw')!r}"
    body = json.dumps(entry["payload"], separators=(",", ":"), default=str)
    if len(body) > _MAX_LOGGED_PAYLOAD:
        body = body[:_MAX_LOGGED_PAYLOAD] + "..."
    return f"{head} {entry['action'] or '?'} #{entry['id']} {body}"


class Journal:
    """Thread-safe, bounded, append-only record of frames; optionally mirrored to a file.

    Appended to from the websocket loop and read from admin API threads, hence the lock.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self._next_index = 0
        self._lock = threading.Lock()
        self._clock = clock
        self._file: IO[str] | None = None
        if path is not None:
            self._file = path.open("a", encoding="utf-8")

    def append(self, cp: str, direction: Direction, frame: Frame) -> Entry:
        """Record a frame and return its entry (with its index ``i``)."""
        entry: Entry = {
            "t": self._clock().isoformat(timespec="milliseconds"),
            "cp": cp,
            "dir": direction,
            "type": frame.type,
            "id": frame.id,
            "action": frame.action,
            "payload": frame.payload,
        }
        if frame.error is not None:
            entry["error"] = frame.error
            entry["raw"] = frame.raw
        with self._lock:
            entry = {"i": self._next_index, **entry}
            self._next_index += 1
            self._entries.append(entry)
            if self._file is not None:
                self._file.write(json.dumps(entry, default=str) + "\n")
                self._file.flush()
        return entry

    def query(
        self, *, cp: str | None = None, action: str | None = None, since: int = 0
    ) -> list[Entry]:
        """Entries with index >= ``since``, optionally only one charge point and/or action."""
        with self._lock:
            entries = list(self._entries)
        return [
            e
            for e in entries
            if e["i"] >= since
            and (cp is None or e["cp"] == cp)
            and (action is None or e["action"] == action)
        ]

    def close(self) -> None:
        """Close the mirror file, if any."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
