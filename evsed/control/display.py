"""The local display feed: what a screen next to each connector shows, as JSON lines on the
control socket (``{"cmd": "display"}``; ``evsectl display`` prints it).

After the request the connection stays open: first one frame per connector as it is now,
then a frame for a connector whenever what it shows changed (status, energy, power, price,
cost), looked at on every change of the connector or of the prices and every
``pricing.display_interval_s`` for the meter. A frame::

    {"connector": 1, "status": "Charging", "phase": "Charging", "transaction_active": true,
     "energy_wh": 1234.5, "session_energy_wh": 230.0, "power_w": 7360.0,
     "firmware_version": "1.4.0", "online": true,
     "price": {"price_text": {"en": "..."}, "price_source": "user",
               "running": {"cost": "1.23", ...} | null, "final": {...} | null},
     "default_price": {"price_text": {...}, "offline_price_text": {...}, "tariff": {...}}}

Money is a string, exactly as the CSMS sent it. A client that falls more than MAX_BEHIND frames
behind is disconnected (it may reconnect and start from the current frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from evsed.port import Charger

log = logging.getLogger(__name__)

MAX_BEHIND = 256


class DisplayFeed:
    def __init__(
        self,
        charger: Charger,
        status_of: Callable[[int], str],
        online: Callable[[], bool],
        *,
        firmware_version: str,
        interval_s: float,
    ) -> None:
        """``status_of(connector_id)``: the status word the CSMS client reports for it."""
        self._charger = charger
        self._status_of = status_of
        self._online = online
        self._firmware_version = firmware_version
        self._interval_s = interval_s
        self._last: dict[int, dict[str, Any]] = {}
        self._followers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._session_start_wh: dict[int, float] = {}
        for connector in charger.connectors.values():
            connector.on_change(lambda _c: self.look())
        charger.prices.on_change(self.look)

    def frame(self, connector_id: int) -> dict[str, Any]:
        connector = self._charger.connectors[connector_id]
        state = connector.state
        reading = connector.meter_reading
        energy = round(reading.energy_import_wh, 1) if reading else None
        if not state.tx_active:
            self._session_start_wh.pop(connector_id, None)
        elif energy is not None:
            self._session_start_wh.setdefault(connector_id, energy)
        start = self._session_start_wh.get(connector_id)
        prices = self._charger.prices
        return {
            "connector": connector_id,
            "status": self._status_of(connector_id),
            "phase": str(state.phase),
            "transaction_active": state.tx_active,
            "energy_wh": energy,
            "session_energy_wh": None if start is None or energy is None else energy - start,
            "power_w": round(reading.power_w, 1) if reading else None,
            "firmware_version": self._firmware_version,
            "online": self._online(),
            "price": prices.view(connector_id),
            "default_price": prices.default_view(),
        }

    async def follow(self) -> AsyncGenerator[dict[str, Any], None]:
        """The current frames, then each change, until the caller stops iterating."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(MAX_BEHIND)
        self._followers.add(queue)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="display-feed")
        try:
            for connector_id in self._charger.connectors:
                current = self.frame(connector_id)
                self._last[connector_id] = current
                yield current
            while (changed := await queue.get()) is not None:
                yield changed
        finally:
            self._followers.discard(queue)
            if not self._followers and self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
                self._poller = None

    def look(self) -> None:
        """Send a frame for each connector whose frame changed."""
        if not self._followers:
            return
        for connector_id in self._charger.connectors:
            frame = self.frame(connector_id)
            if frame == self._last.get(connector_id):
                continue
            self._last[connector_id] = frame
            for queue in list(self._followers):
                try:
                    queue.put_nowait(frame)
                except asyncio.QueueFull:
                    log.warning("display client too slow: disconnected")
                    self._followers.discard(queue)
                    queue.get_nowait()  # room for the end mark
                    queue.put_nowait(None)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.look()
