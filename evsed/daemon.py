"""The composition root: builds the stores, the hardware, the charger, the CSMS client of the
configured OCPP version, the firmware updater and the control socket, in dependency order; runs
them in one asyncio loop; shuts down contactor-first."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from evsed import __version__, sdnotify
from evsed.charger import Charger
from evsed.clock import utcnow
from evsed.config import Config
from evsed.control.server import ControlServer
from evsed.control.target import ControlTarget
from evsed.diagnostics.archive import ArchiveSources
from evsed.diagnostics.frames import FrameRing
from evsed.diagnostics.service import RemoteDiagnostics
from evsed.errors import ConfigError
from evsed.hardware import build_hardware
from evsed.logs import log_ring
from evsed.ocpp import adapters
from evsed.ota.info import FirmwareInfo
from evsed.ota.manager import FirmwareManager, HealthCheck
from evsed.ota.rauc import Rauc
from evsed.port import CsmsSessions, RestartKind
from evsed.security.certificates import CertificateStore
from evsed.security.connection import ConnectionSecurity
from evsed.security.credentials import KEY_FILE, Credentials, CredentialsError
from evsed.security.events import SecurityEvent, SecurityEvents
from evsed.security.services import SecurityServices
from evsed.security.watch import storage_listener, watch_clock
from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.outbox import Outbox
from evsed.store.transactions import TransactionStore
from evsed.tasks import cancel_and_wait
from hal.tamper import GpioTamperSwitch

log = logging.getLogger(__name__)

DRAIN_S = 3.0  # how long queued messages get to reach the CSMS while stopping
CLIENT_START_S = 5.0  # how long READY=1 waits for the CSMS client to begin connecting


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
        security = await asyncio.to_thread(_security, config, db, outbox, storage)
        storage.subscribe(storage_listener(security.events, lambda: storage.error))
        await security.events.record(SecurityEvent.STARTUP, f"evsed {firmware.version}")
        if hardware.tamper is not None:
            await _watch_tamper(hardware.tamper, security.events)
        adapter = adapters.load(config.csms.protocol)
        sessions = adapter.sessions(config, db, storage, outbox, now=utcnow)
        charger = self.charger = Charger(config, hardware, db, storage, sessions, clock=loop.time)
        if self._terminated:
            charger.terminate()
        manager = _firmware_updates(config, db, outbox, rauc, charger, sessions, firmware, security)
        diagnostics = _remote_diagnostics(config, db, outbox, security, firmware, manager)
        client = self.client = adapter.client(
            config,
            charger,
            sessions,
            outbox,
            storage,
            firmware=(manager, security.manufacturer_roots) if manager else None,
            security=security,
            diagnostics=diagnostics,
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
                health=health_check(charger, sessions),
                db=db,
                security=security.events,
            ),
        )
        tasks: list[asyncio.Task[None]] = []
        try:
            await charger.start()
            await charger.recover(store)
            await control.start()
            if manager is not None:
                await manager.resume()
            await diagnostics.resume()
            tasks = [
                asyncio.create_task(client.run(), name="csms"),
                asyncio.create_task(watch_clock(security.events), name="clock"),
            ]
            watchdog = sdnotify.watchdog_interval()
            if watchdog is not None:
                tasks.append(asyncio.create_task(sdnotify.watchdog_loop(watchdog), name="watchdog"))
            connection = await _client_running(client, tasks[0])
            sdnotify.notify(
                "READY=1",
                f"STATUS=charger {config.charger.id}: {len(charger.connectors)} connector(s),"
                f" CSMS {connection}",
            )
            log.info(
                "evsed %s up: charger %s, %d connector(s), hal %s, CSMS %s",
                firmware.version,
                config.charger.id,
                len(charger.connectors),
                config.hal.kind,
                client.snapshot()["url"],
            )
            await charger.stop_requested.wait()
            if charger.restart:
                await security.events.record(
                    SecurityEvent.RESET_OR_REBOOT, f"{charger.restart} restart"
                )
        finally:
            if charger.restart:
                # The same process comes back (Soft reset: exec) and sends READY=1 again.
                monotonic_us = time.monotonic_ns() // 1000
                sdnotify.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_us}")
            else:
                sdnotify.notify("STOPPING=1", "STATUS=stopping: contactors open first")
            log.info("shutting down: opening contactors first")
            storage.hurry()  # a start or stop still waiting for its commit: try it now
            await charger.shutdown()
            await control.stop()
            if tasks:
                await client.drain(DRAIN_S)
            await client.close()
            if manager is not None:
                await manager.stop()
            await diagnostics.stop()
            await cancel_and_wait(tasks)
            await storage.stop()
            if hardware.world is not None:
                await hardware.world.stop()
            db.close()
            log.info("stopped")


async def _watch_tamper(switch: GpioTamperSwitch, events: SecurityEvents) -> None:
    """Opening the enclosure is TamperDetectionActivated, also when it is open at start."""

    def changed(opened: bool) -> None:
        if opened:
            events.record_soon(
                SecurityEvent.TAMPER_DETECTED, f"enclosure opened (pin {switch.pin})"
            )
        else:
            log.info("enclosure closed (tamper pin %d)", switch.pin)

    switch.start(changed)
    if switch.opened:
        await events.record(SecurityEvent.TAMPER_DETECTED, "enclosure open at start")


async def _client_running(client: adapters.CsmsClient, task: asyncio.Task[None]) -> str:
    """Wait until the CSMS client runs: its link has left its first state (connecting,
    connected, network down, or a first attempt failed). Not until the CSMS answers: a charger
    whose CSMS is unreachable still charges, and systemd must see it started. Returns the
    link's state; raises what the client raised if it died first."""
    deadline = asyncio.get_running_loop().time() + CLIENT_START_S
    while True:
        snapshot = client.snapshot()
        if snapshot["connection"] != "disconnected" or snapshot.get("last_error"):
            return str(snapshot["connection"])
        if task.done():
            task.result()  # raises the client's error
            raise RuntimeError("the CSMS client stopped before it started")
        if asyncio.get_running_loop().time() > deadline:
            log.error("the CSMS client has not started connecting after %.0f s", CLIENT_START_S)
            return "not started"
        await asyncio.sleep(0.01)


def health_check(charger: Charger, sessions: CsmsSessions) -> HealthCheck:
    """The health check of a boot (docs/ota.md): the hardware, and the CSMS accepted our
    BootNotification. The firmware updater commits a slot on it; ``evsectl wait-healthy``
    (the boot assessment unit, docs/systemd.md) waits for it."""

    async def health() -> str | None:
        if not sessions.registered:
            return "the CSMS has not accepted our BootNotification"
        return charger.health()

    return health


def _firmware_updates(
    config: Config,
    db: Database,
    outbox: Outbox,
    rauc: Rauc,
    charger: Charger,
    sessions: CsmsSessions,
    firmware: FirmwareInfo,
    security: SecurityServices,
) -> FirmwareManager | None:
    """Firmware updates through RAUC (``[ota]``); None when disabled."""
    ota = config.ota
    if not ota.enabled:
        return None
    manager = FirmwareManager(
        ota,
        db,
        outbox,
        rauc,
        charger,
        download_dir=Path(ota.download_dir) if ota.download_dir else config.state_dir / "ota",
        roots=security.manufacturer_roots.roots,
        health=health_check(charger, sessions),
        now=utcnow,
        slots_changed=firmware.slots_changed,
        security=security.events,
    )
    return manager


def _remote_diagnostics(
    config: Config,
    db: Database,
    outbox: Outbox,
    security: SecurityServices,
    firmware: FirmwareInfo,
    manager: FirmwareManager | None,
) -> RemoteDiagnostics:
    """Diagnostics archives and log uploads (GetDiagnostics, GetLog), worked in
    ``<state_dir>/uploads``."""
    sources = ArchiveSources(
        config,
        db,
        firmware.version,
        log_ring(),
        FrameRing(),
        (lambda: firmware.snapshot(manager)) if manager is not None else None,
    )
    return RemoteDiagnostics(
        sources, security.events.log, outbox, work_dir=config.state_dir / "uploads", now=utcnow
    )


def _security(
    config: Config, db: Database, outbox: Outbox, storage: StorageHealth
) -> SecurityServices:
    """The security log, the credentials of the security profile and the root certificates
    (a file I/O step, run in a thread). Credentials that cannot be used stop the daemon with
    a configuration error naming what to fix."""
    events = SecurityEvents(db, outbox, storage, now=utcnow)
    credentials = Credentials(config.state_dir / "security", config.csms)
    source = config.source
    try:
        credentials.load()
    except CredentialsError as exc:
        raise ConfigError(source, "csms", str(exc)) from None
    csms_roots = CertificateStore(
        config.state_dir / "certs-csms", config.csms.ca_file, label="CSMS root"
    )
    profile = credentials.active.profile
    if profile in (1, 2) and not credentials.active.authorization_key:
        raise ConfigError(
            source,
            "csms.authorization_key",
            f"security profile {profile} needs an AuthorizationKey (here, or in"
            f" {credentials.directory / KEY_FILE})",
        )
    if profile >= 2 and not csms_roots.roots():
        raise ConfigError(
            source,
            "csms.ca_file",
            f"security profile {profile} needs a CentralSystemRootCertificate (here, or"
            f" installed in {csms_roots.directory})",
        )
    if profile == 3 and (credentials.client_cert is None or credentials.client_key is None):
        raise ConfigError(
            source,
            "csms.client_cert",
            f"security profile 3 needs a charge point certificate and key (here, or"
            f" {credentials.directory}/client.pem and client.key)",
        )
    if profile == 0 and config.csms.url.startswith("ws://"):
        log.warning(
            "security profile 0 over ws://: no encryption and no credentials (development and"
            " trusted networks only)"
        )
    connection = ConnectionSecurity(
        config.csms.url.rstrip("/") + "/" + config.charger.id,
        config.charger.id,
        credentials,
        csms_roots,
        events,
        now=utcnow,
    )
    manufacturer = CertificateStore(config.state_dir / "certs", config.ota.manufacturer_root)
    return SecurityServices(events, connection, manufacturer, db)
