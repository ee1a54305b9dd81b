"""The composition root: builds the HAL, the charging runners, the OCPP client and the control
socket from the config, runs them in one asyncio loop, and shuts down contactor-first."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evsed import __version__, sdnotify
from evsed.charging.events import AvailabilityChanged, StopReason, TagPresented
from evsed.charging.faults import Fault
from evsed.charging.state import Settings
from evsed.clock import utcnow
from evsed.config import Config, ConnectorConfig
from evsed.connector import ConnectorRunner
from evsed.control.server import ControlError, ControlServer
from evsed.control.snapshot import connector_snapshot
from evsed.hardware import Hardware, build_hardware
from evsed.ocpp.transport import CsmsLink
from evsed.ocpp.v16.authorization import Authorizer
from evsed.ocpp.v16.charge_point import served_actions, supported_profiles
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.metering import SUPPORTED_MEASURANDS, MeterValueBuilder
from evsed.ocpp.v16.operations import CsmsOperations, ResetType, settings_from_keys
from evsed.ocpp.v16.service import OcppV16Service
from evsed.ocpp.v16.settings import KeyAuthSettings, key_defaults
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.ota.rauc import Rauc, RaucError, SystemStatus
from evsed.store import kv
from evsed.store.auth import AuthStore
from evsed.store.db import Database
from evsed.store.health import StorageHealth
from evsed.store.transactions import TransactionStore
from evsed.tasks import cancel_and_wait

if TYPE_CHECKING:
    from evsed.ota.manager import FirmwareManager

log = logging.getLogger(__name__)

CONNECTOR_ID = 1
RECOVERY_METER_WAIT_S = 5.0
SHUTDOWN_COMMIT_S = 5.0  # how long a stop may wait for its commit while the daemon stops


class Daemon:
    """One charge point: hardware, charging logic, OCPP client, control socket."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.firmware_version = config.charger.firmware_version or __version__
        self.hardware: Hardware | None = None
        self.runners: dict[int, ConnectorRunner] = {}
        self.service: OcppV16Service | None = None
        self.restart: ResetType | None = None  # set by an OCPP Reset: restart after stopping
        self._terminating = False
        self.rauc = Rauc(config.ota.rauc)
        self.slot_status: SystemStatus | None = None
        self.firmware: FirmwareManager | None = None
        self._store: TransactionStore | None = None
        self.storage: StorageHealth | None = None
        self._db: Database | None = None
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._stop = stop
        db = self._db = Database(config.state_dir)
        storage = self.storage = StorageHealth(db)
        store = self._store = TransactionStore(db, config.csms.outbox_max_messages)
        keys = ConfigurationKeys(
            db,
            defaults=key_defaults(config),
            number_of_connectors=1,
            supported_profiles=supported_profiles(
                served_actions(firmware_updates=config.ota.enabled)
            ),
            measurands=SUPPORTED_MEASURANDS,
        )
        meter_values = MeterValueBuilder(keys.get_csl, {c.id: c.phases for c in config.connectors})
        hardware = self.hardware = await build_hardware(config)
        await self._slot_firmware_version()
        url = config.csms.url.rstrip("/") + "/" + config.charger.id
        link = CsmsLink(
            url,
            reconnect_min_s=config.csms.reconnect_min_s,
            reconnect_max_s=config.csms.reconnect_max_s,
            ping_interval_s=keys.get_int("WebSocketPingInterval"),
        )
        transactions = V16Transactions(
            store,
            wall_clock=utcnow,
            wake_outbox=lambda: service.wake_outbox(),
            meter_values=meter_values,
            storage=storage,
        )
        connector = config.connectors[0]
        parts = hardware.connectors[connector.id]
        runner = ConnectorRunner(
            CONNECTOR_ID,
            _settings(config, connector),
            pilot=parts.pilot,
            contactor=parts.contactor,
            meter=parts.meter,
            sink=transactions,
            authorize=lambda tag: ops.authorize(CONNECTOR_ID, tag),
            may_stop=lambda connector_id, tag: ops.may_stop(connector_id, tag),
            clock=loop.time,
            meter_poll_s=connector.meter.poll_interval_s,
            feedback_check_s=connector.contactor.feedback_check_s,
        )
        runner.state = dataclasses.replace(runner.state, settings=settings_from_keys(runner, keys))
        self.runners = {CONNECTOR_ID: runner}
        storage.subscribe(lambda ok: runner.set_fault(Fault.STORAGE_FAILURE, not ok))
        service = self.service = OcppV16Service(
            config,
            store,
            self.runners,
            transactions,
            link,
            keys,
            storage=storage,
            meter_values=meter_values,
            firmware_version=self.firmware_version,
            wall_clock=utcnow,
        )
        authorizer = Authorizer(
            AuthStore(db),
            KeyAuthSettings(keys),
            ask_csms=service.ask_authorize,
            online=lambda: service.online,
            now=utcnow,
            on_local_list_conflict=service.local_list_conflict,
        )
        ops = CsmsOperations(
            self.runners,
            transactions,
            keys,
            authorizer,
            csms_transaction_id=service.csms_transaction_id,
            persist_availability=self._persist_availability,
            request_restart=self._request_restart,
        )
        service.ops, service.authorizer = ops, authorizer
        firmware = self.firmware = self._build_firmware(db, store, service, ops, keys)

        def key_changed(key: str) -> None:
            ops.apply_key(key)
            service.key_changed(key)

        def on_key(key: str, _value: str) -> None:
            # Called in whichever thread changed the key.
            loop.call_soon_threadsafe(key_changed, key)

        keys.subscribe(on_key)
        control = ControlServer(config.control_socket, self)
        tasks: list[asyncio.Task[None]] = []
        try:
            await runner.start()
            self._restore_availability(runner)
            ops.charge_point_operative = kv.get(db, "connector.0.operative") != "false"
            await self._recover(runner, transactions)
            await control.start()
            if firmware is not None:
                await firmware.resume()
            tasks = [
                asyncio.create_task(service.run(), name="ocpp"),
                asyncio.create_task(service.sampler.run(), name="sampler"),
                asyncio.create_task(sdnotify.watchdog_loop(), name="watchdog"),
            ]
            sdnotify.notify("READY=1")
            log.info(
                "evsed %s up: charger %s, hal %s, CSMS %s",
                self.firmware_version,
                config.charger.id,
                config.hal.kind,
                link.display_url,
            )
            await stop.wait()
        finally:
            sdnotify.notify("RELOADING=1" if self.restart else "STOPPING=1")
            log.info("shutting down: opening contactor")
            storage.hurry()  # a start or stop still waiting for its commit: try it now
            await runner.shutdown()
            await self._stop_open_transactions(transactions, runner)
            await control.stop()
            if tasks:
                await self._drain_outbox(store)
                await link.close()
            if firmware is not None:
                await firmware.stop()
            await cancel_and_wait(tasks)
            await storage.stop()
            if hardware.world is not None:
                await hardware.world.stop()
            db.close()
            log.info("stopped")

    def _build_firmware(
        self,
        db: Database,
        store: TransactionStore,
        service: OcppV16Service,
        ops: CsmsOperations,
        keys: ConfigurationKeys,
    ) -> FirmwareManager | None:
        """Firmware updates through RAUC (``[ota]``); None when disabled."""
        ota = self.config.ota
        if not ota.enabled:
            return None
        from evsed.ocpp.v16.firmware import FirmwareOperations
        from evsed.ota.certificates import CertificateStore
        from evsed.ota.manager import FirmwareManager

        state_dir = self.config.state_dir
        certificates = CertificateStore(state_dir / "certs", ota.manufacturer_root)
        manager = FirmwareManager(
            ota,
            db,
            store,
            self.rauc,
            self.runners,
            download_dir=Path(ota.download_dir) if ota.download_dir else state_dir / "ota",
            roots=certificates.roots,
            health=lambda: self._health(service),
            request_reboot=lambda: self._request_restart("Reboot"),
            operator_availability=self._operator_availability,
            wake_outbox=service.wake_outbox,
            now=utcnow,
            slots_changed=self._slots_changed,
        )
        ops.firmware = FirmwareOperations(manager, certificates, now=utcnow)
        return manager

    async def _health(self, service: OcppV16Service) -> str | None:
        """The post-update health check: None when healthy, else what is wrong."""
        if service.registration != "Accepted":
            return "the CSMS has not accepted our BootNotification"
        for runner in self.runners.values():
            if not runner.pilot_link_ok:
                return f"connector {runner.connector_id}: no MCU link"
            if runner.meter_reading is None or Fault.METER_FAILURE in runner.state.faults:
                return f"connector {runner.connector_id}: meter not readable"
            if self.hardware is not None:
                contactor = self.hardware.connectors[runner.connector_id].contactor
                if contactor.commanded_closed != contactor.feedback_closed:
                    return f"connector {runner.connector_id}: contactor feedback inconsistent"
            if runner.state.blocking_faults:
                faults = ", ".join(sorted(runner.state.blocking_faults))
                return f"connector {runner.connector_id}: faults {faults}"
        return None

    def _firmware_snapshot(self) -> dict[str, Any]:
        update = self.firmware.state if self.firmware is not None else None
        return {
            "version": self.firmware_version,
            "updates": "enabled" if self.firmware is not None else "disabled",
            "update": None
            if update is None
            else {
                "phase": str(update.phase),
                "status": update.last_status,
                "location": update.location,
                "version": update.bundle_version,
            },
            "rauc": _slot_snapshot(self.slot_status),
        }

    def _slots_changed(self, system: SystemStatus) -> None:
        self.slot_status = system

    def _operator_availability(self, connector_id: int) -> bool:
        assert self._db is not None
        return kv.get(self._db, f"connector.{connector_id}.operative") != "false"

    async def _slot_firmware_version(self) -> None:
        """The booted slot's bundle version is the firmware version we report, when RAUC knows
        it (a slot written by RAUC); otherwise the configured or built-in version."""
        if not self.config.ota.enabled:
            return
        try:
            async with asyncio.timeout(30):
                system = await self.rauc.status()
        except (RaucError, TimeoutError) as exc:
            log.info("RAUC status not available (%s): firmware version from the config", exc)
            return
        self.slot_status = system
        booted = system.slot(system.booted)
        if booted is not None and booted.bundle_version:
            self.firmware_version = booted.bundle_version

    def terminate(self) -> None:
        """The service manager asked us to stop (SIGTERM/SIGINT): no restart afterwards, even
        when a Reset or a firmware install had asked for one."""
        self._terminating = True
        if self.restart is not None:
            log.warning("stop requested: the %s restart is not carried out", self.restart)
        self.restart = None

    def _request_restart(self, kind: ResetType) -> None:
        if self._terminating:
            log.info("%s restart ignored: the daemon is being stopped", kind)
            return
        self.restart = kind
        if self._stop is not None:
            self._stop.set()

    def _persist_availability(self, connector_id: int, operative: bool) -> None:
        assert self._db is not None
        kv.put(self._db, f"connector.{connector_id}.operative", str(operative).lower())

    def _restore_availability(self, runner: ConnectorRunner) -> None:
        """Availability survives a restart (OCPP 1.6 §5.2)."""
        assert self._db is not None
        if kv.get(self._db, f"connector.{runner.connector_id}.operative") == "false":
            runner.feed(AvailabilityChanged(False))

    async def _recover(self, runner: ConnectorRunner, transactions: V16Transactions) -> None:
        """Transactions left open by a crash or power cut end with reason PowerLoss (§5.11)."""
        open_records = await asyncio.to_thread(self._open_transactions)
        if not open_records:
            return
        reading = await runner.first_reading(RECOVERY_METER_WAIT_S)
        for record in open_records:
            log.warning("transaction %d was open at start-up: stopping it (PowerLoss)", record.id)
            await transactions.stop_local(record.id, StopReason.POWER_LOSS, reading)

    def _open_transactions(self) -> list[Any]:
        assert self._store is not None
        return self._store.open_transactions()

    async def _stop_open_transactions(
        self, transactions: V16Transactions, runner: ConnectorRunner
    ) -> None:
        if CONNECTOR_ID in transactions.open:
            # A stop already under way (a Reset waiting for the car) keeps its own reason.
            reason = runner.state.stop_reason or {
                "Soft": StopReason.SOFT_RESET,
                "Hard": StopReason.HARD_RESET,
            }.get(self.restart or "", StopReason.REBOOT)
            try:
                async with asyncio.timeout(SHUTDOWN_COMMIT_S):
                    await transactions.stop(CONNECTOR_ID, reason, runner.meter_reading)
            except TimeoutError:
                # Not recorded (the disk is still full): the next start ends it as PowerLoss.
                log.error("the open transaction could not be recorded as stopped")

    async def _drain_outbox(self, store: TransactionStore, timeout: float = 3.0) -> None:
        """Give queued messages and status changes a moment to reach the CSMS before stopping;
        queued transaction messages that do not make it go out after the restart."""
        service = self.service
        if service is None or not service.online:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and (
            await asyncio.to_thread(store.pending) > 0 or service.statuses_pending
        ):
            await asyncio.sleep(0.05)

    # -- control socket -----------------------------------------------------------------------

    def _runner(self, connector_id: int) -> ConnectorRunner:
        runner = self.runners.get(connector_id)
        if runner is None:
            raise ControlError(
                f"no connector {connector_id}; this charger has {sorted(self.runners)}"
            )
        return runner

    def sim(self, words: list[str], connector_id: int) -> str:
        from hal.sim.world import SimCommandError

        world = self.hardware.world if self.hardware else None
        if world is None:
            raise ControlError('sim commands need the simulated HAL ([hal] kind = "sim")')
        runner = self._runner(connector_id)
        match words:
            case ["swipe", tag]:
                runner.feed(TagPresented(tag))
                return f"tag {tag} presented"
            case ["stall", millis] if millis.isdigit() and int(millis) <= 10_000:
                # Block the event loop, as a hung daemon would: the MCU's failsafe must act.
                time.sleep(int(millis) / 1000)
                return f"event loop stalled for {millis} ms"
            case ["network", "down" | "up" as updown]:
                assert self.service is not None
                self.service.link.set_network(updown == "up")
                return f"network {updown}"
        try:
            return str(world.command(words))
        except SimCommandError as exc:
            raise ControlError(str(exc)) from None

    def clear_faults(self, connector_id: int) -> list[str]:
        return self._runner(connector_id).clear_latched_faults()

    async def status(self) -> dict[str, Any]:
        service = self.service
        assert service is not None
        # Counting the outbox waits for the database lock: off the loop, which runs the safety
        # path, in case a worker thread is in the middle of an fsync.
        pending = await asyncio.to_thread(self._store.pending) if self._store else 0
        connectors = [
            connector_snapshot(runner, service.csms_transaction_id(connector_id))
            for connector_id, runner in self.runners.items()
        ]
        hardware = self.hardware
        return {
            "charger_id": self.config.charger.id,
            "firmware_version": self.firmware_version,
            "hal": self.config.hal.kind,
            "ocpp": {
                "url": service.link.display_url,
                "connection": str(service.link.state),
                "registration": service.registration,
                "outbox_pending": pending,
                "last_error": service.link.last_error,
            },
            "storage": {
                "path": str(self.config.state_dir),
                "ok": self.storage.ok if self.storage else True,
                "error": self.storage.error if self.storage else "",
            },
            "connectors": connectors,
            "sim": hardware.world.snapshot() if hardware and hardware.world else None,
            "firmware": self._firmware_snapshot(),
        }


def _slot_snapshot(system: SystemStatus | None) -> dict[str, Any] | None:
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


def _settings(config: Config, connector: ConnectorConfig) -> Settings:
    c = config.charging
    return Settings(
        max_current_a=connector.max_current_a,
        free_mode=c.free_mode,
        free_mode_id_tag=c.free_mode_id_tag,
        connection_timeout_s=c.connection_timeout_s,
        stop_on_ev_disconnect=c.stop_on_ev_disconnect,
        ventilation_available=c.ventilation_available,
        c_debounce_s=c.c_debounce_s,
        require_meter=c.require_meter,
        has_lock=connector.connector_lock,
    )
