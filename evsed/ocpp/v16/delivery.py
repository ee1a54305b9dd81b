"""Delivering the outbox (§4.10): the durable queue of messages for the CSMS, in order, each
removed only once the CSMS has answered it.

Messages in OCPP 1.6's words (this adapter's transaction messages) are sent as they are, with
the CSMS's transactionId filled in at delivery; version-neutral reports (firmware statuses,
security events) are turned into their 1.6 message here (:mod:`evsed.ocpp.v16.reports`).
A CALLERROR, whatever its code, is a failed attempt: after TransactionMessageAttempts the
message is dropped, with TransactionMessageRetryInterval x attempt between tries (§9.1). A
timeout is a connection problem, not a refusal: the message stays and is tried again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from evsed.ocpp.v16.authorization import Authorizer
from evsed.ocpp.v16.charge_point import V16ChargePoint
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.invalid_id import InvalidIdPolicy
from evsed.ocpp.v16.reports import message_for
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.port import Charger
from evsed.store.health import StorageHealth
from evsed.store.outbox import REPORT_PREFIX, Outbox, report_of
from evsed.store.transactions import OutboxMessage

log = logging.getLogger(__name__)


class OutboxDelivery:
    def __init__(
        self,
        outbox: Outbox,
        storage: StorageHealth,
        keys: ConfigurationKeys,
        transactions: V16Transactions,
        authorizer: Authorizer,
        charger: Charger,
    ) -> None:
        self._outbox = outbox
        self._store = outbox.store
        self._storage = storage
        self._keys = keys
        self._tx = transactions
        self._authorizer = authorizer
        self._charger = charger
        self._invalid_id = InvalidIdPolicy(keys)

    async def run(self, cp: V16ChargePoint) -> None:
        """Deliver on one connection until it ends."""
        self._outbox.wake()
        while True:
            message = await asyncio.to_thread(self._store.next_message)
            if message is None:
                self._outbox.clear()
                message = await asyncio.to_thread(self._store.next_message)
                if message is None:
                    self._outbox.delivered_all()
                    await self._outbox.woken()
                    continue
            await self._deliver(cp, message)

    async def _deliver(self, cp: V16ChargePoint, message: OutboxMessage) -> None:
        request, payload = await self._request(message)
        if request is not None:
            try:
                result = await cp.call(request, suppress=False)
            except (OCPPError, TimeoutError) as exc:
                await self._failed(message, exc)
                return
            if message.action == "StartTransaction" and message.local_tx_id is not None:
                await self._started(message.local_tx_id, result, payload)
            elif message.action == "StopTransaction" and result.id_tag_info:
                await self._remember(payload.get("id_tag"), result.id_tag_info)
        await self._storage.write("outbox delivery", self._store.delivered, message.seq)

    async def _request(self, message: OutboxMessage) -> tuple[Any | None, dict[str, Any]]:
        """The CALL payload for a message (None: nothing to send for it in 1.6)."""
        payload = dict(message.payload)
        report = report_of(message.action)
        if report is not None:
            return message_for(report, payload), payload
        if message.action.startswith(REPORT_PREFIX) or not hasattr(call, message.action):
            log.warning("outbox: skipping a %s message this release cannot send", message.action)
            return None, payload
        if message.local_tx_id is not None and message.action != "StartTransaction":
            payload["transaction_id"] = await self._tx.csms_id_of(message.local_tx_id)
        return getattr(call, message.action)(**payload), payload

    async def _failed(self, message: OutboxMessage, exc: Exception) -> None:
        attempts = message.attempts + 1
        log.warning("%s attempt %d failed: %s", message.action, attempts, exc)
        if isinstance(exc, OCPPError):
            await self._storage.write("outbox attempt", self._store.attempted, message.seq)
            if attempts >= self._keys.get_int("TransactionMessageAttempts"):
                log.error("%s dropped after %d attempts", message.action, attempts)
                await self._storage.write("outbox drop", self._store.delivered, message.seq)
                return
        await asyncio.sleep(self._keys.get_int("TransactionMessageRetryInterval") * attempts)

    async def _started(self, local_id: int, result: Any, payload: dict[str, Any]) -> None:
        await self._tx.confirmed(local_id, int(result.transaction_id))
        await self._remember(payload.get("id_tag"), result.id_tag_info)
        status = str(result.id_tag_info.get("status"))
        connector = self._charger.connectors.get(int(payload["connector_id"]))
        if status != "Accepted" and connector is not None:
            connector_id = connector.connector_id
            self._invalid_id.refused(
                connector,
                status,
                int(payload["meter_start"]),
                lambda: self._tx.open.get(connector_id) == local_id,
            )

    async def _remember(self, id_tag: str | None, info: dict[str, Any]) -> None:
        if id_tag:
            await self._authorizer.remember(id_tag, info)
