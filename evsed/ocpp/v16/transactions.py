"""Records transactions in the store, each together with its OCPP 1.6 message.

Payloads are kept in the ``ocpp`` library's snake_case form; ``transaction_id`` is filled in at
delivery time from the id the CSMS gave in StartTransaction.conf (§5.17, §6.46), so transactions
started while offline are reported with their real id once the CSMS answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from evsed.charging.events import StopReason
from evsed.store.transactions import TransactionStore
from hal.types import MeterReading

log = logging.getLogger(__name__)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class V16Transactions:
    """Implements :class:`evsed.connector.TransactionSink` for OCPP 1.6."""

    def __init__(
        self,
        store: TransactionStore,
        *,
        wall_clock: Callable[[], datetime],
        wake_outbox: Callable[[], None],
    ) -> None:
        self._store = store
        self._now = wall_clock
        self._wake = wake_outbox
        self.open: dict[int, int] = {}  # connector id -> local transaction id

    async def start(self, connector_id: int, id_tag: str, meter_wh: int) -> None:
        ts = iso(self._now())
        message = (
            "StartTransaction",
            {
                "connector_id": connector_id,
                "id_tag": id_tag,
                "meter_start": meter_wh,
                "timestamp": ts,
            },
        )
        local_id = await asyncio.to_thread(
            self._store.start, connector_id, id_tag, meter_wh, ts, message
        )
        self.open[connector_id] = local_id
        log.info(
            "transaction %d started on connector %d at %d Wh",
            local_id,
            connector_id,
            meter_wh,
            extra={"connector": connector_id, "transaction": local_id},
        )
        self._wake()

    async def sample(self, connector_id: int, reading: MeterReading) -> None:
        local_id = self.open.get(connector_id)
        if local_id is None:
            return
        ts = iso(self._now())
        message = (
            "MeterValues",
            {
                "connector_id": connector_id,
                "meter_value": [
                    {"timestamp": ts, "sampled_value": sampled_values(reading, "Sample.Periodic")}
                ],
            },
        )
        await asyncio.to_thread(
            self._store.sample, local_id, int(reading.energy_import_wh), ts, message
        )
        self._wake()

    async def stop(self, connector_id: int, reason: StopReason, meter_wh: int) -> None:
        local_id = self.open.pop(connector_id, None)
        if local_id is None:
            log.error("connector %d: stop without a running transaction", connector_id)
            return
        await self.stop_local(local_id, reason, meter_wh)

    async def stop_local(self, local_id: int, reason: StopReason, meter_wh: int) -> None:
        record = await asyncio.to_thread(self._store.get, local_id)
        if record is None:
            return
        ts = iso(self._now())
        meter_stop = max(meter_wh, record.meter_start_wh, record.last_meter_wh)
        message = (
            "StopTransaction",
            {
                "meter_stop": meter_stop,
                "timestamp": ts,
                "reason": str(reason),
                "id_tag": record.id_tag,
            },
        )
        stored = await asyncio.to_thread(
            self._store.stop, local_id, meter_stop, ts, str(reason), message
        )
        if stored:
            log.info(
                "transaction %d stopped (%s) at %d Wh",
                local_id,
                reason,
                meter_stop,
                extra={"transaction": local_id},
            )
            self._wake()


def sampled_values(reading: MeterReading, context: str) -> list[dict[str, Any]]:
    """SampledValue list (§7.45) for one meter reading."""
    values: list[dict[str, Any]] = [
        # Whole Wh, truncated: the same figure as meterStart/meterStop, never ahead of the meter.
        _value(str(int(reading.energy_import_wh)), context, "Energy.Active.Import.Register", "Wh"),
        _value(f"{reading.power_w:.1f}", context, "Power.Active.Import", "W"),
    ]
    for phase, amps in zip(("L1", "L2", "L3"), reading.current_a, strict=True):
        values.append(_value(f"{amps:.2f}", context, "Current.Import", "A", phase))
    for phase, volts in zip(("L1-N", "L2-N", "L3-N"), reading.voltage_v, strict=True):
        values.append(_value(f"{volts:.1f}", context, "Voltage", "V", phase))
    return values


def _value(
    value: str, context: str, measurand: str, unit: str, phase: str | None = None
) -> dict[str, Any]:
    sample = {
        "value": value,
        "context": context,
        "measurand": measurand,
        "location": "Outlet",
        "unit": unit,
    }
    if phase:
        sample["phase"] = phase
    return sample
