"""The newest OCPP frames, both ways, for the diagnostics archive: bounded, in memory, kept as
they were on the wire (secrets are removed when an archive is written, off the event loop)."""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import UTC, datetime

FRAMES = 2000


class FrameRing:
    """Use on the event loop; :meth:`lines` copies, so a worker thread may format them."""

    def __init__(
        self, capacity: int = FRAMES, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._frames: collections.deque[tuple[datetime, str, str]] = collections.deque(
            maxlen=capacity
        )
        self._now = now

    def record(self, direction: str, frame: str) -> None:
        """``direction``: ``"<-"`` from the CSMS, ``"->"`` to it."""
        self._frames.append((self._now(), direction, frame))

    def snapshot(self) -> list[tuple[datetime, str, str]]:
        return list(self._frames)
