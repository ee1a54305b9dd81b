"""Records transactions in the store, each together with its OCPP 1.6 message.

Payloads are kept in the ``ocpp`` library's snake_case form; ``transaction_id`` is filled in at
delivery time from the id the CSMS gave in StartTransaction.conf (§5.17, §6.46), so transactions
started while offline are reported with their real id once the CSMS answers; this module keeps
that mapping. Meter values named by StopTxnSampledData are kept with the transaction and sent as
StopTransaction.transactionData.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from evsed.charging.events import StopReason
from evsed.clock import iso
from evsed.ocpp.v16.metering import MeterValueBuilder
from evsed.store.health import StorageHealth
from evsed.store.outbox import Outbox
from evsed.store.transactions import TransactionRecord
from hal.types import MeterReading

log = logging.getLogger(__name__)

ENDED_KEPT = 32  # ended transactions whose connector is remembered


class V16Transactions:
    """Implements :class:`evsed.connector.TransactionSink` for OCPP 1.6."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        wall_clock: Callable[[], datetime],
        meter_values: MeterValueBuilder,
        storage: StorageHealth,
    ) -> None:
        self._store = outbox.store
        self._storage = storage
        self._now = wall_clock
        self._wake = outbox.wake
        self._meter_values = meter_values
        self.open: dict[int, int] = {}  # connector id -> local transaction id
        self._csms_ids: dict[int, int] = {}  # local transaction id -> CSMS transactionId
        # connector id -> the idTag of another card of the group that asked to stop (§6.51)
        self._stopped_by: dict[int, str] = {}
        # CSMS transactionId -> connector of the transactions ended lately (a FinalCost for
        # one may come after its StopTransaction)
        self._ended: dict[int, int] = {}

    def _meter_value(
        self,
        connector_id: int,
        reading: MeterReading | None,
        key: str,
        context: str,
        ts: str,
        offered_a: float,
    ) -> dict[str, Any] | None:
        return self._meter_values.build(
            connector_id, reading, key, context, ts, offered_a=offered_a
        )

    def transaction_open(self, connector_id: int) -> bool:
        return connector_id in self.open

    def csms_transaction_id(self, connector_id: int) -> int | None:
        """The CSMS's id of the connector's running transaction, once it gave one."""
        local_id = self.open.get(connector_id)
        return None if local_id is None else self._csms_ids.get(local_id)

    def connector_of(self, csms_id: int, *, finished_too: bool = False) -> int | None:
        """The connector of the transaction the CSMS calls ``csms_id``: a running one, or with
        ``finished_too`` also one of the last that ended."""
        for connector_id in self.open:
            if self.csms_transaction_id(connector_id) == csms_id:
                return connector_id
        return self._ended.get(csms_id) if finished_too else None

    async def csms_id_of(self, local_id: int) -> int:
        """The CSMS's id of a transaction for its later messages; -1 when the start was never
        confirmed (dropped after its attempts: OCPP has no id for it)."""
        if local_id in self._csms_ids:
            return self._csms_ids[local_id]
        record = await asyncio.to_thread(self._store.get, local_id)
        if record is None or record.csms_tx_id is None:
            return -1
        self._csms_ids[local_id] = record.csms_tx_id
        return record.csms_tx_id

    async def confirmed(self, local_id: int, csms_id: int) -> None:
        """StartTransaction.conf gave the transaction the CSMS's id."""
        await self._storage.write("transactionId", self._store.set_csms_id, local_id, csms_id)
        self._csms_ids[local_id] = csms_id

    async def stop_left_open(
        self, record: TransactionRecord, reason: StopReason, reading: MeterReading | None
    ) -> None:
        await self.stop_local(record.id, reason, reading)

    def stopped_by(self, connector_id: int, id_tag: str) -> None:
        """``id_tag`` (not the one that started it) is stopping the connector's transaction."""
        self._stopped_by[connector_id] = id_tag

    async def start(
        self,
        connector_id: int,
        id_tag: str,
        reading: MeterReading | None,
        reservation_id: int | None = None,
    ) -> None:
        self._stopped_by.pop(connector_id, None)
        ts = iso(self._now())
        meter_wh = _wh(reading)
        payload: dict[str, Any] = {
            "connector_id": connector_id,
            "id_tag": id_tag,
            "meter_start": meter_wh,
            "timestamp": ts,
        }
        if reservation_id is not None:
            payload["reservation_id"] = reservation_id  # §6.45: the reservation it used
        message = ("StartTransaction", payload)
        begin = self._meter_value(
            connector_id, reading, "StopTxnSampledData", "Transaction.Begin", ts, 0.0
        )
        # Retried until committed: the connector's storage fault keeps the power off meanwhile.
        local_id = await self._storage.write(
            "StartTransaction",
            self._store.start,
            connector_id,
            id_tag,
            meter_wh,
            ts,
            message,
            [begin] if begin else [],
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

    async def sample(
        self,
        connector_id: int,
        reading: MeterReading,
        offered_a: float,
        context: str,
        *,
        at: datetime | None = None,
    ) -> None:
        """A periodic (Sample.Periodic) or clock-aligned (Sample.Clock) sample in a transaction;
        ``at``: the time it stands for (the clock-aligned instant), default now."""
        local_id = self.open.get(connector_id)
        if local_id is None:
            return
        ts = iso(at or self._now())
        clock = context == "Sample.Clock"
        report = self._meter_value(
            connector_id,
            reading,
            "MeterValuesAlignedData" if clock else "MeterValuesSampledData",
            context,
            ts,
            offered_a,
        )
        keep = self._meter_value(
            connector_id,
            reading,
            "StopTxnAlignedData" if clock else "StopTxnSampledData",
            context,
            ts,
            offered_a,
        )
        message = None
        if report is not None:
            message = ("MeterValues", {"connector_id": connector_id, "meter_value": [report]})
        stored = await self._storage.try_write(
            "meter sample", self._store.sample, local_id, _wh(reading), ts, message, keep
        )
        if stored and message is not None:
            self._wake()

    async def stop(
        self, connector_id: int, reason: StopReason, reading: MeterReading | None
    ) -> None:
        local_id = self.open.pop(connector_id, None)
        stopped_by = self._stopped_by.pop(connector_id, None)
        if local_id is None:
            log.error("connector %d: stop without a running transaction", connector_id)
            return
        id_tag = stopped_by if reason is StopReason.LOCAL else None
        if (csms_id := self._csms_ids.get(local_id)) is not None:
            self._ended[csms_id] = connector_id
            while len(self._ended) > ENDED_KEPT:
                del self._ended[next(iter(self._ended))]
        await self.stop_local(local_id, reason, reading, id_tag=id_tag)

    async def stop_local(
        self,
        local_id: int,
        reason: StopReason,
        reading: MeterReading | None,
        *,
        id_tag: str | None = None,
    ) -> None:
        """Record the stop. ``id_tag``: the card that stopped it when it was not the one that
        started it (§6.51: the identifier which requested to stop the charging); otherwise the
        starting idTag is sent."""
        record = await asyncio.to_thread(self._store.get, local_id)
        if record is None:
            return
        ts = iso(self._now())
        meter_stop = max(_wh(reading), record.meter_start_wh, record.last_meter_wh)
        payload: dict[str, Any] = {
            "meter_stop": meter_stop,
            "timestamp": ts,
            "reason": str(reason),
            "id_tag": id_tag or record.id_tag,
        }
        data = json.loads(record.transaction_data)
        end = self._meter_value(
            record.connector_id, reading, "StopTxnSampledData", "Transaction.End", ts, 0.0
        )
        if end is not None:
            data.append(end)
        if data:
            payload["transaction_data"] = data
        # Retried until committed, with the reason and reading of the moment it happened.
        stored = await self._storage.write(
            "StopTransaction",
            self._store.stop,
            local_id,
            meter_stop,
            ts,
            str(reason),
            ("StopTransaction", payload),
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


def _wh(reading: MeterReading | None) -> int:
    return int(reading.energy_import_wh) if reading is not None else 0
