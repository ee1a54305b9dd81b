"""The OCPP 1.6J client loop: boot gating, heartbeat, status, the outbox, metering.

Per connection: BootNotification until Accepted (nothing else is sent before, §4.2), then a
StatusNotification for every connector, then heartbeats, status changes, meter samples and the
outbox run side by side. The ``ocpp`` library allows one outstanding CALL at a time, as OCPP-J
requires; a late reply to a call that timed out is dropped by the library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from evsed.clock import iso
from evsed.config import Config
from evsed.connector import ConnectorRunner
from evsed.ocpp.transport import CsmsLink
from evsed.ocpp.v16.authorization import Authorizer
from evsed.ocpp.v16.charge_point import V16ChargePoint
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.invalid_id import InvalidIdPolicy
from evsed.ocpp.v16.metering import MeterValueBuilder
from evsed.ocpp.v16.operations import CsmsOperations
from evsed.ocpp.v16.sampler import MeterSampler
from evsed.ocpp.v16.status import connector_status
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.ocpp.v16.trigger import TriggeredMessages
from evsed.store.health import StorageHealth
from evsed.store.transactions import TransactionStore

log = logging.getLogger(__name__)

StatusChange = tuple[int, str, str, str]
OUTBOX_SETTLE_S = 1.0  # connector, status, errorCode, timestamp


class OcppV16Service:
    """Owns the OCPP 1.6 conversation with the CSMS for the whole charge point."""

    def __init__(
        self,
        config: Config,
        store: TransactionStore,
        connectors: dict[int, ConnectorRunner],
        transactions: V16Transactions,
        link: CsmsLink,
        keys: ConfigurationKeys,
        *,
        storage: StorageHealth,
        meter_values: MeterValueBuilder,
        firmware_version: str,
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._store = store
        self._connectors = connectors
        self._tx = transactions
        self.link = link
        self._keys = keys
        self._storage = storage
        self.firmware_version = firmware_version
        self._now = wall_clock
        self.ops: CsmsOperations | None = None  # set by the composition root
        self.authorizer: Authorizer | None = None
        self.registration = ""  # last BootNotification answer: Accepted / Pending / Rejected
        self._accepted_once = False
        self._cp: V16ChargePoint | None = None
        self._outbox_wake = asyncio.Event()
        self._outbox_idle = asyncio.Event()
        self._heartbeat_changed = asyncio.Event()
        # Every status change, in order, with the time it happened: a fault that lasts a few
        # milliseconds is still reported unless MinimumStatusDuration says otherwise.
        self._status_changes: asyncio.Queue[StatusChange] = asyncio.Queue()
        self._status_last: dict[int, tuple[str, str]] = {}
        self._status_sending = False
        self._csms_ids: dict[int, int] = {}  # local transaction id -> CSMS transactionId
        self.invalid_id = InvalidIdPolicy(keys)
        self.sampler = MeterSampler(
            connectors, transactions, store, keys, wall_clock, self, meter_values, storage
        )
        self.triggers = TriggeredMessages(
            self,
            dict(connectors),
            meter_values,
            firmware_status=self._firmware_status,
            now=wall_clock,
        )
        for runner in connectors.values():
            runner.on_change(self._connector_changed)

    # -- used by the charging and authorization side ------------------------------------------

    def wake_outbox(self) -> None:
        self._outbox_idle.clear()
        self._outbox_wake.set()

    @property
    def online(self) -> bool:
        return self._cp is not None

    async def ask_authorize(self, id_tag: str) -> dict[str, Any] | None:
        """Authorize.req (§4.1): the IdTagInfo, or None when offline or without an answer."""
        cp = self._cp
        if cp is None:
            return None
        try:
            result = await cp.call(call.Authorize(id_tag=id_tag), suppress=False)
        except (OCPPError, TimeoutError, ConnectionClosed) as exc:
            log.warning("Authorize failed: %s", exc)
            return None
        info: dict[str, Any] = result.id_tag_info
        return info

    async def call_now(self, payload: Any) -> Any | None:
        """Send one CALL now (not through the outbox); None when offline or refused."""
        cp = self._cp
        if cp is None:
            return None
        try:
            return await cp.call(payload, suppress=False)
        except (OCPPError, TimeoutError, ConnectionClosed) as exc:
            log.warning("%s failed: %s", type(payload).__name__, exc)
            return None

    def current_status(self, connector_id: int) -> tuple[str, str]:
        """(status, errorCode) of a connector, or of the charge point for connector 0."""
        if connector_id == 0:
            return self._charge_point_status()
        runner = self._connectors[connector_id]
        return connector_status(runner.state)

    def _firmware_status(self) -> tuple[str, int | None]:
        firmware = self.ops.firmware if self.ops is not None else None
        return firmware.status() if firmware is not None else ("Idle", None)

    def csms_transaction_id(self, connector_id: int) -> int | None:
        local_id = self._tx.open.get(connector_id)
        return None if local_id is None else self._csms_ids.get(local_id)

    @property
    def statuses_pending(self) -> bool:
        return not self._status_changes.empty() or self._status_sending

    def key_changed(self, key: str) -> None:
        if key == "HeartbeatInterval":
            self._heartbeat_changed.set()
        self.sampler.key_changed(key)

    def local_list_conflict(self, id_tag: str) -> None:
        """§3.5.2: the CSMS contradicted the local list: StatusNotification, connector 0."""
        log.warning("local authorization list conflicts with the CSMS for a tag")
        status = self._charge_point_status()[0]
        self._status_changes.put_nowait((0, status, "LocalListConflict", self._iso_now()))

    # -- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        if self.ops is not None:
            self.ops.on_charge_point_availability(self._charge_point_changed)
        await self.link.run(self._session)

    async def _session(self, ws: ClientConnection) -> None:
        assert self.ops is not None
        cp = V16ChargePoint(
            self._config.charger.id,
            ws,
            self.ops,
            self.triggers,
            firmware_updates=self._config.ota.enabled,
            response_timeout=self._config.csms.call_timeout_s,
        )
        reader = asyncio.create_task(cp.start(), name="ocpp-reader")
        workers: list[asyncio.Task[None]] = []
        try:
            booted = asyncio.create_task(self._boot(cp))
            await asyncio.wait({reader, booted}, return_when=asyncio.FIRST_COMPLETED)
            if not booted.done():
                booted.cancel()
                await reader  # raises ConnectionClosed: the session is over
                return
            booted.result()
            self._cp = cp
            workers = [
                asyncio.create_task(self._heartbeats(cp)),
                asyncio.create_task(self._statuses(cp)),
                asyncio.create_task(self._outbox(cp)),
            ]
            self._outbox_wake.set()
            done, _ = await asyncio.wait({reader, *workers}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self._cp = None
            outbox = workers[2:]  # an answer may have arrived just before the connection
            for task in (reader, *workers[:2]):  # dropped: let the outbox record it first
                task.cancel()
            if outbox:
                await asyncio.wait(outbox, timeout=OUTBOX_SETTLE_S)
            for task in outbox:
                task.cancel()
            await asyncio.gather(reader, *workers, return_exceptions=True)

    def boot_request(self) -> Any:
        charger = self._config.charger
        serial = charger.serial_number or None
        return call.BootNotification(
            charge_point_vendor=charger.vendor,
            charge_point_model=charger.model,
            charge_point_serial_number=serial,
            # Deprecated in 1.6 (§6.2), and still the field many CSMSs read.
            charge_box_serial_number=serial,
            firmware_version=self.firmware_version,
        )

    async def _boot(self, cp: V16ChargePoint) -> None:
        """BootNotification until Accepted; once accepted, reconnects skip it (§4.2)."""
        if self._accepted_once:
            return
        request = self.boot_request()
        while True:
            try:
                result = await cp.call(request, suppress=False)
            except (OCPPError, TimeoutError) as exc:
                log.warning("BootNotification failed: %s", exc)
                await asyncio.sleep(self._config.csms.reconnect_min_s)
                continue
            self.registration = str(result.status)
            interval = int(result.interval)
            log.info("BootNotification: %s (interval %d s)", result.status, interval)
            if result.status == "Accepted":
                if interval > 0:
                    # §4.2: the interval in BootNotification.conf is the heartbeat interval.
                    await asyncio.to_thread(self._keys.change, "HeartbeatInterval", str(interval))
                self._accepted_once = True
                return
            await asyncio.sleep(interval or self._keys.get_int("HeartbeatInterval"))

    async def _heartbeats(self, cp: V16ChargePoint) -> None:
        while True:
            self._heartbeat_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._keys.get_int("HeartbeatInterval")):
                    await self._heartbeat_changed.wait()
                    continue  # a new interval: start counting again
            try:
                await cp.call(call.Heartbeat(), suppress=False)
            except (OCPPError, TimeoutError) as exc:
                log.warning("Heartbeat failed: %s", exc)

    # -- status -------------------------------------------------------------------------------

    def _connector_changed(self, runner: ConnectorRunner) -> None:
        self._status_changed(runner.connector_id, connector_status(runner.state))
        # A scheduled Inoperative of the whole Charge Point takes effect when the last
        # transaction has ended.
        self._charge_point_changed()

    def _charge_point_status(self) -> tuple[str, str]:
        """Connector 0, the Charge Point as a whole (§4.9, §5.2): Unavailable once it was made
        Inoperative and no transaction is left."""
        inoperative = self.ops is not None and not self.ops.charge_point_operative
        if inoperative and not any(r.state.tx_active for r in self._connectors.values()):
            return "Unavailable", "NoError"
        return "Available", "NoError"

    def _charge_point_changed(self) -> None:
        self._status_changed(0, self._charge_point_status())

    def _status_changed(self, connector_id: int, status: tuple[str, str]) -> None:
        if self._status_last.get(connector_id) == status:
            return
        self._status_last[connector_id] = status
        if self._cp is None:
            return  # sent from the current state on reconnection
        change = (connector_id, *status, self._iso_now())
        hold = self._keys.get_int("MinimumStatusDuration")
        if hold <= 0:
            self._status_changes.put_nowait(change)
            return

        def still_current() -> None:
            # §9.1 MinimumStatusDuration: only a status that lasted this long is reported.
            if self._status_last.get(connector_id) == status:
                self._status_changes.put_nowait(change)

        asyncio.get_running_loop().call_later(hold, still_current)

    async def _statuses(self, cp: V16ChargePoint) -> None:
        """On (re)connection the current status of every connector (§4.9), then each change
        as it happened, after the transaction message it caused."""
        while not self._status_changes.empty():
            self._status_changes.get_nowait()
        self._status_last[0] = self._charge_point_status()
        await self._send_status(cp, 0, *self._status_last[0], self._iso_now())
        for connector_id, runner in self._connectors.items():
            status, error = self._status_last.setdefault(
                connector_id, connector_status(runner.state)
            )
            await self._send_status(cp, connector_id, status, error, self._iso_now())
        while True:
            change = await self._status_changes.get()
            self._status_sending = True
            try:
                await self._transaction_messages_first()
                await self._send_status(cp, *change)
            finally:
                self._status_sending = False

    async def _transaction_messages_first(self) -> None:
        """Let a pending Start/StopTransaction go before the status change it caused, so the
        CSMS sees e.g. StopTransaction before Available (OCA TC_005). Bounded: a status is never
        held back for longer than one call timeout, nor while the state database does not take
        writes (the transaction message cannot be committed, and the fault must be heard)."""

        async def sent() -> None:
            await asyncio.gather(*(r.settled() for r in self._connectors.values()))
            await self._outbox_idle.wait()

        if not self._storage.ok:
            return
        waits = [asyncio.ensure_future(sent()), asyncio.ensure_future(self._storage.failing())]
        try:
            await asyncio.wait(
                waits, timeout=self._config.csms.call_timeout_s, return_when=FIRST_COMPLETED
            )
        finally:
            for task in waits:
                task.cancel()

    async def _send_status(
        self, cp: V16ChargePoint, connector_id: int, status: str, error: str, timestamp: str
    ) -> None:
        request = call.StatusNotification(
            connector_id=connector_id, error_code=error, status=status, timestamp=timestamp
        )
        try:
            await cp.call(request, suppress=False)
        except (OCPPError, TimeoutError) as exc:
            log.warning("StatusNotification failed: %s", exc)

    # -- outbox -------------------------------------------------------------------------------

    async def _outbox(self, cp: V16ChargePoint) -> None:
        """Deliver transaction messages in order; each leaves the store only once answered.

        A CALLERROR counts as a failed attempt: after TransactionMessageAttempts the message is
        dropped, with TransactionMessageRetryInterval x attempt between tries (§4.10, §9.1).
        A timeout is a connection problem, not a refusal: the message stays and is retried.
        """
        while True:
            message = await asyncio.to_thread(self._store.next_message)
            if message is None:
                self._outbox_wake.clear()
                message = await asyncio.to_thread(self._store.next_message)
                if message is None:
                    self._outbox_idle.set()
                    await self._outbox_wake.wait()
                    continue
            self._outbox_idle.clear()
            payload = dict(message.payload)
            if message.local_tx_id is not None and message.action != "StartTransaction":
                payload["transaction_id"] = await self._csms_id(message.local_tx_id)
            try:
                result = await cp.call(getattr(call, message.action)(**payload), suppress=False)
            except (OCPPError, TimeoutError) as exc:
                await self._failed(message.seq, message.action, message.attempts + 1, exc)
                continue
            if message.action == "StartTransaction" and message.local_tx_id is not None:
                await self._started(message.local_tx_id, result, payload)
            elif message.action == "StopTransaction" and result.id_tag_info:
                await self._remember(payload.get("id_tag"), result.id_tag_info)
            await self._storage.write("outbox delivery", self._store.delivered, message.seq)

    async def _failed(self, seq: int, action: str, attempts: int, exc: Exception) -> None:
        log.warning("%s attempt %d failed: %s", action, attempts, exc)
        if isinstance(exc, OCPPError):
            await self._storage.write("outbox attempt", self._store.attempted, seq)
            if attempts >= self._keys.get_int("TransactionMessageAttempts"):
                log.error("%s dropped after %d attempts", action, attempts)
                await self._storage.write("outbox drop", self._store.delivered, seq)
                return
        await asyncio.sleep(self._keys.get_int("TransactionMessageRetryInterval") * attempts)

    async def _started(self, local_id: int, result: Any, payload: dict[str, Any]) -> None:
        csms_id = int(result.transaction_id)
        await self._storage.write("transactionId", self._store.set_csms_id, local_id, csms_id)
        self._csms_ids[local_id] = csms_id
        await self._remember(payload.get("id_tag"), result.id_tag_info)
        status = str(result.id_tag_info.get("status"))
        runner = self._connectors.get(int(payload["connector_id"]))
        if status != "Accepted" and runner is not None:
            connector_id = runner.connector_id
            self.invalid_id.refused(
                runner,
                status,
                int(payload["meter_start"]),
                lambda: self._tx.open.get(connector_id) == local_id,
            )

    async def _remember(self, id_tag: str | None, info: dict[str, Any]) -> None:
        if self.authorizer is not None and id_tag:
            await self.authorizer.remember(id_tag, info)

    async def _csms_id(self, local_id: int) -> int:
        if local_id in self._csms_ids:
            return self._csms_ids[local_id]
        record = await asyncio.to_thread(self._store.get, local_id)
        if record is None or record.csms_tx_id is None:
            # The start was never confirmed (dropped): OCPP has no id for it; -1 marks that.
            return -1
        self._csms_ids[local_id] = record.csms_tx_id
        return record.csms_tx_id

    def _iso_now(self) -> str:
        return iso(self._now())
