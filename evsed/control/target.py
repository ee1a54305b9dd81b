"""What the control socket's commands do (``evsectl status``, ``sim ...``, ``clear-faults``).

``sim`` verbs drive the simulated hardware: the car's verbs (plug, unplug, ev-state, ev-current,
swipe, fault, clear) go to the connector named by ``--connector``; ``network`` and ``stall`` are
charger-wide. They are refused when the hardware is real.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from evsed.config import Config
from evsed.control.display import DisplayFeed
from evsed.control.server import ControlError
from evsed.control.snapshot import connector_snapshot
from evsed.ocpp.adapters import CsmsClient
from evsed.ota.info import FirmwareInfo
from evsed.port import Charger, Connector
from evsed.security.events import SecurityEvents
from evsed.store.db import Database
from evsed.store.faults import fault_history
from evsed.store.health import StorageHealth
from evsed.store.transactions import TransactionStore

if TYPE_CHECKING:
    from evsed.ota.manager import FirmwareManager

MAX_STALL_MS = 10_000
CHARGER_WIDE = frozenset({"network", "stall", "site-load", "site-meter", "tamper"})


class ControlTarget:
    """Implements :class:`evsed.control.server.Controlled` for the running daemon."""

    def __init__(
        self,
        config: Config,
        charger: Charger,
        client: CsmsClient,
        store: TransactionStore,
        storage: StorageHealth,
        *,
        world: Any,
        firmware: FirmwareInfo,
        manager: FirmwareManager | None,
        health: Callable[[], Awaitable[str | None]] | None = None,
        db: Database,
        security: SecurityEvents,
    ) -> None:
        self._security = security
        self._db = db
        self._config = config
        self._charger = charger
        self._client = client
        self._store = store
        self._storage = storage
        self._world = world  # hal.sim.world.SimWorld, or None on real hardware
        self._firmware = firmware
        self._manager = manager
        self._health = health  # None: healthy; else the reason it is not (daemon.health_check)
        self.display_feed = DisplayFeed(
            charger,
            lambda connector_id: client.connector_status(connector_id)[0],
            lambda: client.snapshot()["connection"] == "connected",
            firmware_version=firmware.version,
            interval_s=config.pricing.display_interval_s,
        )

    def _connector(self, connector_id: int) -> Connector:
        connector = self._charger.connectors.get(connector_id)
        if connector is None:
            known = sorted(self._charger.connectors)
            raise ControlError(f"no connector {connector_id}; this charger has {known}")
        return connector

    def sim(self, words: list[str], connector_id: int | None) -> str:
        from hal.sim.world import SimCommandError

        if self._world is None:
            raise ControlError('sim commands need the simulated HAL ([hal] kind = "sim")')
        if words and words[0] in CHARGER_WIDE and connector_id is not None:
            raise ControlError(f"sim {words[0]} is charger-wide: it takes no --connector")
        match words:
            case ["stall", millis] if millis.isdigit() and int(millis) <= MAX_STALL_MS:
                # Block the event loop, as a hung daemon would: the MCU's failsafe must act.
                time.sleep(int(millis) / 1000)
                return f"event loop stalled for {millis} ms"
            case ["network", "down" | "up" as updown]:
                self._client.set_network(updown == "up")
                return f"network {updown}"
            case ["tamper", "open" | "closed" as state]:
                charger = self._config.charger
                if not charger.tamper_pin:
                    raise ControlError("this charger has no tamper switch (charger.tamper_pin)")
                opened = state == "open"
                self._world.drive_pin(charger.tamper_pin, opened == charger.tamper_open_high)
                return f"enclosure {state}"
            case ["site-load" | "site-meter", *_]:
                try:
                    return str(self._world.site_command(words))
                except SimCommandError as exc:
                    raise ControlError(str(exc)) from None
            case [verb, *_] if verb in CHARGER_WIDE:
                raise ControlError(f"malformed sim command: {' '.join(words)}")
        connector_id = 1 if connector_id is None else connector_id
        connector = self._connector(connector_id)
        match words:
            case ["swipe", tag]:
                connector.present_tag(tag)
                return f"connector {connector_id}: tag {tag} presented"
        try:
            return f"connector {connector_id}: {self._world.command(words, connector_id)}"
        except SimCommandError as exc:
            raise ControlError(str(exc)) from None

    def clear_faults(self, connector_id: int | None) -> list[str]:
        return self._connector(1 if connector_id is None else connector_id).clear_latched_faults()

    def display(self) -> AsyncGenerator[dict[str, Any], None]:
        return self.display_feed.follow()

    async def data_transfer(
        self, vendor_id: str, message_id: str | None, data: str | None
    ) -> dict[str, Any]:
        answer = await self._client.vendor_data(vendor_id, message_id, data)
        if answer is None:
            raise ControlError("no answer from the CSMS (offline, refused or timed out)")
        return {"status": answer[0], "data": answer[1]}

    async def security_log(self, clear: bool) -> dict[str, Any]:
        removed = await self._security.clear_log("evsectl") if clear else None
        entries = await asyncio.to_thread(self._security.log.entries)
        return {"entries": [dataclasses.asdict(e) for e in entries], "removed": removed}

    async def faults(self, connector_id: int | None, limit: int | None) -> list[dict[str, Any]]:
        if connector_id is not None:
            self._connector(connector_id)
        return await asyncio.to_thread(
            fault_history, self._db, connector_id=connector_id, limit=limit
        )

    async def status(self) -> dict[str, Any]:
        # Counting the outbox waits for the database lock: off the loop, which runs the safety
        # path, in case a worker thread is in the middle of an fsync.
        pending = await asyncio.to_thread(self._store.pending)
        client = self._client
        unhealthy = await self._health() if self._health is not None else None
        return {
            "charger_id": self._config.charger.id,
            "firmware_version": self._firmware.version,
            "hal": self._config.hal.kind,
            "ocpp": {**client.snapshot(), "outbox_pending": pending},
            "storage": {
                "path": str(self._config.state_dir),
                "ok": self._storage.ok,
                "error": self._storage.error,
            },
            "health": {"ok": unhealthy is None, "reason": unhealthy},
            "site": self._charger.site_snapshot(),
            "reservations": [
                {
                    "id": r.id,
                    "connector_id": r.connector_id,
                    "id_tag": r.id_tag,
                    "parent_id_tag": r.parent_id_tag,
                    "expires_at": datetime.fromtimestamp(r.expires_at, UTC).isoformat(),
                }
                for r in self._charger.reservations
            ],
            "connectors": [
                connector_snapshot(
                    connector,
                    client.connector_status(connector_id),
                    client.transaction_id(connector_id),
                    self._charger.limit_of(connector_id),
                )
                | {"price": self._charger.prices.view(connector_id)}
                for connector_id, connector in self._charger.connectors.items()
            ],
            "sim": self._world.snapshot() if self._world is not None else None,
            "firmware": self._firmware.snapshot(self._manager),
            "default_price": self._charger.prices.default_view(),
        }
