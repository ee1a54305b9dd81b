"""A transaction whose idTag the CSMS did not accept in StartTransaction.conf (OCPP 1.6 §4.8;
§9.1 StopTransactionOnInvalidId, MaxEnergyOnInvalidId).

- StopTransactionOnInvalidId true: the transaction stops normally, reason DeAuthorized.
- StopTransactionOnInvalidId false: energy delivery stops and the transaction goes on
  (SuspendedEVSE) until it ends in the usual way.
- MaxEnergyOnInvalidId > 0: energy delivery goes on until the transaction has delivered that
  many Wh (meter now minus meterStart), then one of the above happens.

Nothing happens when the transaction has already ended (a start confirmed late, after an
offline session).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from evsed.charging.events import StopReason
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.port import Connector

log = logging.getLogger(__name__)

ENERGY_CHECK_S = 0.5


class InvalidIdPolicy:
    def __init__(self, keys: ConfigurationKeys) -> None:
        self._keys = keys
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def refused(
        self,
        connector: Connector,
        status: str,
        meter_start_wh: int,
        still_running: Callable[[], bool],
    ) -> None:
        """The CSMS answered ``status`` (not Accepted) for the transaction that
        ``still_running()`` tells is still going on ``connector``."""
        if not still_running():
            return
        allowance = self._keys.get_int("MaxEnergyOnInvalidId")
        log.warning(
            "connector %d: the CSMS refused the transaction's idTag (%s)%s",
            connector.connector_id,
            status,
            f"; up to {allowance} Wh more" if allowance > 0 else "",
            extra={"connector": connector.connector_id},
        )
        if allowance <= 0:
            self._act(connector)
            return
        previous = self._tasks.pop(connector.connector_id, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(
            self._after_allowance(connector, meter_start_wh + allowance, still_running)
        )
        self._tasks[connector.connector_id] = task
        task.add_done_callback(lambda t: self._forget(connector.connector_id, t))

    def _forget(self, connector_id: int, task: asyncio.Task[None]) -> None:
        if self._tasks.get(connector_id) is task:
            del self._tasks[connector_id]

    async def _after_allowance(
        self, connector: Connector, limit_wh: int, still_running: Callable[[], bool]
    ) -> None:
        while still_running():
            reading = connector.meter_reading
            if reading is not None and reading.energy_import_wh >= limit_wh:
                self._act(connector)
                return
            await asyncio.sleep(ENERGY_CHECK_S)

    def _act(self, connector: Connector) -> None:
        if self._keys.get_bool("StopTransactionOnInvalidId"):
            connector.request_stop(StopReason.DE_AUTHORIZED)
        else:
            connector.revoke_authorization()
