"""The OCPP 1.6J conversation with the CSMS, one connection at a time.

Per connection: BootNotification until Accepted (nothing else is sent before, §4.2; once
accepted, reconnects skip it), then the statuses, heartbeats and the outbox run side by side.
The ``ocpp`` library allows one outstanding CALL at a time, as OCPP-J requires; a late reply to
a call that timed out is dropped by the library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from websockets.asyncio.client import ClientConnection

from evsed.config import Config
from evsed.diagnostics.frames import FrameRing
from evsed.ocpp.transport import CsmsLink
from evsed.ocpp.v16.calls import CsmsCalls
from evsed.ocpp.v16.charge_point import V16ChargePoint
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.delivery import OutboxDelivery
from evsed.ocpp.v16.operations import CsmsOperations
from evsed.ocpp.v16.security import SecurityOperations
from evsed.ocpp.v16.smart_charging import SmartCharging
from evsed.ocpp.v16.statuses import StatusReporter
from evsed.ocpp.v16.trigger import TriggeredMessages

log = logging.getLogger(__name__)

OUTBOX_SETTLE_S = 1.0


class OcppV16Service:
    """Runs the sessions of the websocket link."""

    def __init__(
        self,
        config: Config,
        link: CsmsLink,
        calls: CsmsCalls,
        keys: ConfigurationKeys,
        ops: CsmsOperations,
        triggers: TriggeredMessages,
        smart: SmartCharging,
        security: SecurityOperations,
        statuses: StatusReporter,
        delivery: OutboxDelivery,
        *,
        firmware_version: str,
        frames: FrameRing,
    ) -> None:
        self._config = config
        self._frames = frames
        self.link = link
        self._calls = calls
        self._keys = keys
        self._ops = ops
        self._triggers = triggers
        self._smart = smart
        self._security = security
        self._statuses = statuses
        self._delivery = delivery
        self.firmware_version = firmware_version
        self._heartbeat_changed = asyncio.Event()

    def key_changed(self, key: str) -> None:
        if key == "HeartbeatInterval":
            self._heartbeat_changed.set()

    async def run(self) -> None:
        await self.link.run(self._session)

    async def _session(self, ws: ClientConnection) -> None:
        cp = V16ChargePoint(
            self._config.charger.id,
            RecordedConnection(ws, self._frames),
            self._ops,
            self._triggers,
            self._smart,
            self._security,
            firmware_updates=self._ops.firmware is not None,
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
            self._calls.current = cp
            # The queued messages follow the statuses of the moment: the CSMS hears what the
            # charger looks like before what happened while it was away.
            reported = asyncio.Event()
            workers = [
                asyncio.create_task(self._heartbeats(cp)),
                asyncio.create_task(self._statuses.run(cp, reported)),
                asyncio.create_task(self._deliver(cp, reported)),
            ]
            done, _ = await asyncio.wait({reader, *workers}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            self._calls.current = None
            outbox = workers[2:]  # an answer may have arrived just before the connection
            for task in (reader, *workers[:2]):  # dropped: let the outbox record it first
                task.cancel()
            try:
                if outbox:
                    await asyncio.wait(outbox, timeout=OUTBOX_SETTLE_S)
            finally:  # also when the session itself is cancelled while it waits
                for task in outbox:
                    task.cancel()
                await asyncio.gather(reader, *workers, return_exceptions=True)

    async def _deliver(self, cp: V16ChargePoint, reported: asyncio.Event) -> None:
        await reported.wait()
        await self._delivery.run(cp)

    async def _boot(self, cp: V16ChargePoint) -> None:
        """BootNotification until Accepted; once accepted, reconnects skip it (§4.2)."""
        if self._calls.accepted_once:
            return
        request = boot_request(self._config, self.firmware_version)
        while True:
            try:
                result = await cp.call(request, suppress=False)
            except (OCPPError, TimeoutError) as exc:
                log.warning("BootNotification failed: %s", exc)
                await asyncio.sleep(self._config.csms.reconnect_min_s)
                continue
            self._calls.registration = str(result.status)
            interval = int(result.interval)
            log.info("BootNotification: %s (interval %d s)", result.status, interval)
            if result.status == "Accepted":
                if interval > 0:
                    # §4.2: the interval in BootNotification.conf is the heartbeat interval.
                    await asyncio.to_thread(self._keys.change, "HeartbeatInterval", str(interval))
                self._calls.accepted_once = True
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


class RecordedConnection:
    """The websocket as the ``ocpp`` library uses it (``recv``, ``send``), with every text
    frame kept in the diagnostics frame ring."""

    def __init__(self, ws: ClientConnection, frames: FrameRing) -> None:
        self._ws = ws
        self._frames = frames

    async def recv(self) -> Any:
        message = await self._ws.recv()
        if isinstance(message, str):
            self._frames.record("<-", message)
        return message

    async def send(self, message: str) -> None:
        self._frames.record("->", message)
        await self._ws.send(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


def boot_request(config: Config, firmware_version: str) -> Any:
    """BootNotification.req (§4.2), also sent when the CSMS triggers one (§5.17)."""
    charger = config.charger
    serial = charger.serial_number or None
    return call.BootNotification(
        charge_point_vendor=charger.vendor,
        charge_point_model=charger.model,
        charge_point_serial_number=serial,
        # Deprecated in 1.6 (§6.2), and still the field many CSMSs read.
        charge_box_serial_number=serial,
        firmware_version=firmware_version,
    )
