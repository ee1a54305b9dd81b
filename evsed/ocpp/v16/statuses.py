"""StatusNotification (OCPP 1.6 §4.9): every connector's status and connector 0's, as a
projection of the charger's state, reported as it changes.

- On every (re)connection: the current status of connector 0 and of each connector.
- Then each change, in order, with the time it happened: a fault that lasts a few milliseconds
  is still reported, unless MinimumStatusDuration (§9.1) says only statuses that lasted that
  long are.
- A status change waits for the transaction message it follows from (StopTransaction before
  Available, OCA TC_005), for at most one call timeout, and not while the state database takes
  no writes (then the message cannot be committed, and the fault must be heard).
- A fault's errorCode comes with its vendorErrorCode and an info text for the technician
  (:data:`evsed.charging.faults.FAULT_DETAILS`), noted in the fault history once sent.
- Connector 0 is Unavailable once the charge point was made Inoperative and no transaction is
  left (§5.2); a local list conflict is reported on it (§3.5.2), and a lost site meter (local
  load management on its fallback current) as PowerMeterFailure while it lasts.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable
from datetime import datetime

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from evsed.clock import iso
from evsed.ocpp.v16.charge_point import V16ChargePoint
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.status import Detail, connector_status, fault_detail
from evsed.port import Charger, Connector
from evsed.store.health import StorageHealth

log = logging.getLogger(__name__)

# connector, status, errorCode, timestamp, (info, vendorErrorCode)
StatusChange = tuple[int, str, str, str, Detail]
NO_DETAIL: Detail = (None, None)
CHARGE_POINT = 0


class StatusReporter:
    def __init__(
        self,
        charger: Charger,
        keys: ConfigurationKeys,
        storage: StorageHealth,
        *,
        messages_sent: Callable[[], Awaitable[None]],
        call_timeout_s: float,
        now: Callable[[], datetime],
    ) -> None:
        """``messages_sent``: returns once the transaction messages queued so far are out."""
        self._charger = charger
        self._keys = keys
        self._storage = storage
        self._messages_sent = messages_sent
        self._call_timeout_s = call_timeout_s
        self._now = now
        self._changes: asyncio.Queue[StatusChange] = asyncio.Queue()
        self._last: dict[int, tuple[str, str]] = {}
        self._sending = False
        self._online = False
        for connector in charger.connectors.values():
            connector.on_change(self._connector_changed)
        charger.on_charger_change(self._charger_changed)

    def current_status(self, connector_id: int) -> tuple[str, str]:
        """(status, errorCode) of a connector, or of the charge point for connector 0."""
        if connector_id == CHARGE_POINT:
            status = "Unavailable" if self._charger.unavailable else "Available"
            return status, "PowerMeterFailure" if self._charger.site_meter_lost else "NoError"
        return connector_status(self._charger.connectors[connector_id].state)

    @property
    def pending(self) -> bool:
        return not self._changes.empty() or self._sending

    def local_list_conflict(self, _id_tag: str) -> None:
        """§3.5.2: the CSMS contradicted the local list: StatusNotification, connector 0."""
        log.warning("local authorization list conflicts with the CSMS for a tag")
        status = self.current_status(CHARGE_POINT)[0]
        detail = ("local list differs from the CSMS", None)
        self._changes.put_nowait(
            (CHARGE_POINT, status, "LocalListConflict", self._iso_now(), detail)
        )

    async def run(self, cp: V16ChargePoint, reported: asyncio.Event | None = None) -> None:
        """One connection's statuses: the current ones first (then ``reported`` is set), then
        each change."""
        while not self._changes.empty():
            self._changes.get_nowait()
        self._online = True
        try:
            for connector_id in (CHARGE_POINT, *self._charger.connectors):
                status = self._last[connector_id] = self.current_status(connector_id)
                detail = self._detail(connector_id)
                await self._send(cp, connector_id, *status, self._iso_now(), detail)
            if reported is not None:
                reported.set()
            while True:
                change = await self._changes.get()
                self._sending = True
                try:
                    await self._transaction_messages_first()
                    await self._send(cp, *change)
                finally:
                    self._sending = False
        finally:
            self._online = False

    def _connector_changed(self, connector: Connector) -> None:
        self._changed(connector.connector_id, connector_status(connector.state))
        # A scheduled Inoperative of the whole charge point takes effect when the last
        # transaction has ended: connector 0 after the connector whose change did it.
        self._charger_changed()

    def _charger_changed(self) -> None:
        self._changed(CHARGE_POINT, self.current_status(CHARGE_POINT))

    def _changed(self, connector_id: int, status: tuple[str, str]) -> None:
        if self._last.get(connector_id) == status:
            return
        self._last[connector_id] = status
        if not self._online:
            return  # sent from the current state on reconnection
        change = (connector_id, *status, self._iso_now(), self._detail(connector_id))
        hold = self._keys.get_int("MinimumStatusDuration")
        if hold <= 0:
            self._changes.put_nowait(change)
            return

        def still_current() -> None:
            # §9.1 MinimumStatusDuration: only a status that lasted this long is reported.
            if self._last.get(connector_id) == status:
                self._changes.put_nowait(change)

        asyncio.get_running_loop().call_later(hold, still_current)

    async def _transaction_messages_first(self) -> None:
        if not self._storage.ok:
            return
        waits = [
            asyncio.ensure_future(self._messages_sent()),
            asyncio.ensure_future(self._storage.failing()),
        ]
        try:
            await asyncio.wait(waits, timeout=self._call_timeout_s, return_when=FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()

    def _detail(self, connector_id: int) -> Detail:
        if connector_id == CHARGE_POINT:
            if self._charger.site_meter_lost:
                return ("site meter does not answer: fallback current", "EVSED-SITE-METER")
            return NO_DETAIL
        return fault_detail(self._charger.connectors[connector_id].state)

    async def _send(
        self,
        cp: V16ChargePoint,
        connector_id: int,
        status: str,
        error: str,
        timestamp: str,
        detail: Detail = NO_DETAIL,
    ) -> None:
        info, vendor = detail
        request = call.StatusNotification(
            connector_id=connector_id,
            error_code=error,
            status=status,
            timestamp=timestamp,
            info=info,
            vendor_error_code=vendor,
        )
        try:
            await cp.call(request, suppress=False)
        except (OCPPError, TimeoutError) as exc:
            log.warning("StatusNotification failed: %s", exc)
            return
        if vendor is not None and connector_id != CHARGE_POINT:
            self._charger.fault_reported(connector_id, vendor, error)

    def _iso_now(self) -> str:
        return iso(self._now())
