"""The composition root: builds the stores, the hardware, the charger, the CSMS client of the
configured OCPP version, the firmware updater and the control socket, in dependency order; runs
them in one asyncio loop; shuts down contactor-first."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from evsed import __version__, sdnotify
from evsed.charger import Charger
from evsed.clock import utcnow
from evsed.config import Config
from evsed.control.server import ControlServer
from evsed.control.target import ControlTarget
from evsed.hardware import build_hardware
from evsed.ocpp import adapters
from evsed.ota.certificates import CertificateStore
from evsed.ota.info import FirmwareInfo
from evsed.ota.manager import FirmwareManager
from evsed.ota.rauc import Rauc
from evsed.port import CsmsSessions, RestartKind
from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.outbox import Outbox
from evsed.store.transactions import TransactionStore
from evsed.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DRAIN_S = 3.0  # how long queued messages get to reach the CSMS while stopping


class Daemon:
    """One charge point: hardware, charging logic, CSMS client, control socket."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.charger: Charger | None = None
        self.client: adapters.CsmsClient | None = None
        self._terminated = False

    @property
    def restart(self) -> RestartKind | None:
        """What the daemon must do once it has stopped (set by a Reset or a firmware install)."""
        return self.charger.restart if self.charger is not None else None

    def terminate(self) -> None:
        """SIGTERM/SIGINT: stop, and do not restart even if a Reset asked for it."""
        self._terminated = True
        if self.charger is not None:
            self.charger.terminate()

    async def run(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        db = Database(config.state_dir)
        storage = StorageHealth(db)
        store = TransactionStore(db, config.csms.outbox_max_messages)
        outbox = Outbox(store, storage)
        hardware = await build_hardware(config)
        firmware = FirmwareInfo(config.charger.firmware_version or __version__)
        rauc = Rauc(config.ota.rauc)
        if config.ota.enabled:
            await firmware.read_slots(rauc)
        adapter = adapters.load(config.csms.protocol)
        sessions = adapter.sessions(config, db, storage, outbox, now=utcnow)
        charger = self.charger = Charger(config, hardware, db, storage, sessions, clock=loop.time)
        if self._terminated:
            charger.terminate()
        manager, certificates = _firmware_updates(
            config, db, outbox, rauc, charger, sessions, firmware
        )
        client = self.client = adapter.client(
            config,
            charger,
            sessions,
            outbox,
            storage,
            firmware=(manager, certificates) if manager and certificates else None,
            firmware_version=firmware.version,
            now=utcnow,
        )
        control = ControlServer(
            config.control_socket,
            ControlTarget(
                config,
                charger,
                client,
                store,
                storage,
                world=hardware.world,
                firmware=firmware,
                manager=manager,
                db=db,
            ),
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await charger.start()
            await charger.recover(store)
            await control.start()
            if manager is not None:
                await manager.resume()
            tasks = [
                asyncio.create_task(client.run(), name="csms"),
                asyncio.create_task(sdnotify.watchdog_loop(), name="watchdog"),
            ]
            sdnotify.notify("READY=1")
            log.info(
                "evsed %s up: charger %s, %d connector(s), hal %s, CSMS %s",
                firmware.version,
                config.charger.id,
                len(charger.connectors),
                config.hal.kind,
                client.snapshot()["url"],
            )
            await charger.stop_requested.wait()
        finally:
            sdnotify.notify("RELOADING=1" if charger.restart else "STOPPING=1")
            log.info("shutting down: opening contactors first")
            storage.hurry()  # a start or stop still waiting for its commit: try it now
            await charger.shutdown()
            await control.stop()
            if tasks:
                await client.drain(DRAIN_S)
            await client.close()
            if manager is not None:
                await manager.stop()
            await cancel_and_wait(tasks)
            await storage.stop()
            if hardware.world is not None:
                await hardware.world.stop()
            db.close()
            log.info("stopped")


def _firmware_updates(
    config: Config,
    db: Database,
    outbox: Outbox,
    rauc: Rauc,
    charger: Charger,
    sessions: CsmsSessions,
    firmware: FirmwareInfo,
) -> tuple[FirmwareManager | None, CertificateStore | None]:
    """Firmware updates through RAUC (``[ota]``); (None, None) when disabled."""
    ota = config.ota
    if not ota.enabled:
        return None, None
    certificates = CertificateStore(config.state_dir / "certs", ota.manufacturer_root)

    async def health() -> str | None:
        """The post-update health check: the hardware, and the CSMS accepted our boot."""
        if not sessions.registered:
            return "the CSMS has not accepted our BootNotification"
        return charger.health()

    manager = FirmwareManager(
        ota,
        db,
        outbox,
        rauc,
        charger,
        download_dir=Path(ota.download_dir) if ota.download_dir else config.state_dir / "ota",
        roots=certificates.roots,
        health=health,
        now=utcnow,
        slots_changed=firmware.slots_changed,
    )
    return manager, certificates
