"""Periodic and clock-aligned meter values (OCPP 1.6 §3.16, §4.7, §9.1).

- Sampled data: every MeterValueSampleInterval seconds from the start of a transaction, the
  measurands of MeterValuesSampledData (context Sample.Periodic).
- Clock-aligned data: at every multiple of ClockAlignedDataInterval seconds after midnight
  (UTC), the measurands of MeterValuesAlignedData (context Sample.Clock), with or without a
  transaction.
Transaction-bound values go through the durable outbox with their transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from evsed.clock import iso
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.metering import MeterValueBuilder
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.port import Connector
from evsed.store.outbox import Outbox

log = logging.getLogger(__name__)

TICK_S = 0.2


class MeterSampler:
    def __init__(
        self,
        connectors: Mapping[int, Connector],
        transactions: V16Transactions,
        outbox: Outbox,
        keys: ConfigurationKeys,
        wall_clock: Callable[[], datetime],
        meter_values: MeterValueBuilder,
    ) -> None:
        self._connectors = connectors
        self._tx = transactions
        self._outbox = outbox
        self._keys = keys
        self._now = wall_clock
        self._meter_values = meter_values
        self._next_periodic: dict[int, float] = {}
        self._next_aligned: datetime | None = None

    def key_changed(self, key: str) -> None:
        if key == "MeterValueSampleInterval":
            self._next_periodic.clear()
        elif key == "ClockAlignedDataInterval":
            self._next_aligned = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self._periodic(loop.time())
                await self._aligned(self._now())
            except Exception:
                log.exception("meter sampling failed")

    async def _periodic(self, now: float) -> None:
        interval = self._keys.get_int("MeterValueSampleInterval")
        for connector_id, runner in self._connectors.items():
            if not runner.state.tx_active or interval <= 0:
                self._next_periodic.pop(connector_id, None)
                continue
            due = self._next_periodic.setdefault(connector_id, now + interval)
            reading = runner.meter_reading
            if now >= due and reading is not None:
                self._next_periodic[connector_id] = due + interval
                await self._tx.sample(
                    connector_id, reading, runner.offered_current_a, "Sample.Periodic"
                )

    async def _aligned(self, now: datetime) -> None:
        interval = self._keys.get_int("ClockAlignedDataInterval")
        if interval <= 0:
            self._next_aligned = None
            return
        if self._next_aligned is None:
            self._next_aligned = next_aligned(now, interval)
            return
        if now < self._next_aligned:
            return
        # The values carry the clock-aligned time they belong to, not the moment the tick
        # noticed it (up to TICK_S later): §9.1.5 ClockAlignedDataInterval.
        due = self._next_aligned
        self._next_aligned = next_aligned(now, interval)
        for connector_id, runner in self._connectors.items():
            reading = runner.meter_reading
            if reading is None:
                continue
            if runner.state.tx_active:
                await self._tx.sample(
                    connector_id, reading, runner.offered_current_a, "Sample.Clock", at=due
                )
                continue
            value = self._meter_values.build(
                connector_id, reading, "MeterValuesAlignedData", "Sample.Clock", iso(due)
            )
            if value is not None:
                payload = {"connector_id": connector_id, "meter_value": [value]}
                await self._outbox.enqueue_droppable("MeterValues", payload, iso(due))


def next_aligned(now: datetime, interval_s: int) -> datetime:
    """The next multiple of ``interval_s`` after midnight (in ``now``'s timezone) after now."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight).total_seconds()
    steps = int(elapsed // interval_s) + 1
    return midnight + timedelta(seconds=steps * interval_s)
