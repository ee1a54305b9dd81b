"""What the charger knows of its own firmware: the version it reports, and RAUC's view of the
A/B slots (for ``evsectl status``), kept up to date by the update manager."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from evsed.ota.rauc import Rauc, RaucError, SystemStatus
from evsed.urls import redact_url

if TYPE_CHECKING:
    from evsed.ota.manager import FirmwareManager

log = logging.getLogger(__name__)

RAUC_STATUS_WAIT_S = 30.0


class FirmwareInfo:
    def __init__(self, version: str) -> None:
        self.version = version
        self.slots: SystemStatus | None = None

    async def read_slots(self, rauc: Rauc) -> None:
        """The booted slot's bundle version is the firmware version we report, when RAUC
        knows it (a slot written by RAUC); otherwise the configured or built-in version."""
        try:
            async with asyncio.timeout(RAUC_STATUS_WAIT_S):
                system = await rauc.status()
        except (RaucError, TimeoutError) as exc:
            log.info("RAUC status not available (%s): firmware version from the config", exc)
            return
        self.slots = system
        booted = system.slot(system.booted)
        if booted is not None and booted.bundle_version:
            self.version = booted.bundle_version

    def slots_changed(self, system: SystemStatus) -> None:
        self.slots = system

    def snapshot(self, manager: FirmwareManager | None) -> dict[str, Any]:
        update = manager.state if manager is not None else None
        return {
            "version": self.version,
            "updates": "enabled" if manager is not None else "disabled",
            "update": None
            if update is None
            else {
                "phase": str(update.phase),
                "status": update.last_status,
                "location": redact_url(update.location),  # it may carry a password
                "version": update.bundle_version,
                "delta": bool(update.store_url),
            },
            "rauc": _slots(self.slots),
        }


def _slots(system: SystemStatus | None) -> dict[str, Any] | None:
    if system is None:
        return None
    return {
        "compatible": system.compatible,
        "booted": system.booted,
        "primary": system.primary_bootname,
        "slots": [
            {
                "name": s.name,
                "bootname": s.bootname,
                "state": s.state,
                "boot_status": s.boot_status,
                "version": s.bundle_version,
            }
            for s in system.slots
        ],
    }
