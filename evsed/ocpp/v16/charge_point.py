"""Handlers for CSMS-initiated OCPP 1.6 calls (Core and Local Auth List Management).

The ``ocpp`` library runs handlers inside its receive loop, so a handler only decides and
answers; anything that sends a message or waits runs afterwards (``@after`` or a task). The
decisions are in :class:`evsed.ocpp.v16.operations.CsmsOperations`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from evsed.ocpp.v16.firmware import FirmwareHandlers
from evsed.ocpp.v16.operations import CsmsOperations

log = logging.getLogger(__name__)


class V16ChargePoint(FirmwareHandlers, ChargePoint):  # type: ignore[misc]
    """One websocket session with the CSMS, speaking OCPP 1.6J."""

    def __init__(self, charger_id: str, connection: Any, ops: CsmsOperations, **kw: Any):
        super().__init__(charger_id, connection, **kw)
        self._ops = ops
        self._remote_start_accepted = False

    async def route_message(self, raw_msg: str) -> None:
        log.debug("<- %s", raw_msg)
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        log.debug("-> %s", message)
        await super()._send(message)

    # -- §5.11 / §5.12 ------------------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, **_: Any
    ) -> call_result.RemoteStartTransaction:
        # Decide now, act after the answer is sent (the StartTransaction must follow it).
        self._remote_start_accepted = self._ops.remote_start_possible(connector_id)
        status = "Accepted" if self._remote_start_accepted else "Rejected"
        return call_result.RemoteStartTransaction(status=status)

    @after(Action.remote_start_transaction)
    def after_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> None:
        if self._remote_start_accepted:
            self._ops.remote_start(id_tag, connector_id)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        accepted = self._ops.remote_stop(transaction_id)
        return call_result.RemoteStopTransaction(status="Accepted" if accepted else "Rejected")

    # -- §5.2 / §5.14 / §5.18 -----------------------------------------------------------------

    @on(Action.change_availability)
    async def on_change_availability(
        self, connector_id: int, type: str, **_: Any
    ) -> call_result.ChangeAvailability:
        status = await self._ops.change_availability(connector_id, type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        self._ops.reset("Hard" if type == "Hard" else "Soft")

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        # Waits for the lock's feedback (at most about a second): the answer says whether
        # the connector opened (OCPP 1.6 §5.18).
        return call_result.UnlockConnector(status=await self._ops.unlock(connector_id))

    # -- §5.3 / §5.8 / §5.4 / §5.6 ------------------------------------------------------------

    @on(Action.get_configuration)
    def on_get_configuration(
        self, key: list[str] | None = None, **_: Any
    ) -> call_result.GetConfiguration:
        known, unknown = self._ops.get_configuration(key)
        return call_result.GetConfiguration(
            configuration_key=known or None, unknown_key=unknown or None
        )

    @on(Action.change_configuration)
    async def on_change_configuration(
        self, key: str, value: str, **_: Any
    ) -> call_result.ChangeConfiguration:
        # Persisted (fsync) before the answer, in a worker thread: the loop runs the safety path.
        status = await asyncio.to_thread(self._ops.change_configuration, key, value)
        return call_result.ChangeConfiguration(status=status)

    @on(Action.clear_cache)
    async def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status=await self._ops.clear_cache())

    @on(Action.data_transfer)
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=self._ops.data_transfer(vendor_id, message_id))

    # -- Local Auth List Management §5.10 / §5.15 ---------------------------------------------

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **_: Any) -> call_result.GetLocalListVersion:
        version = await self._ops.get_local_list_version()
        return call_result.GetLocalListVersion(list_version=version)

    @on(Action.send_local_list)
    async def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.SendLocalList:
        status = await self._ops.send_local_list(
            list_version, update_type, local_authorization_list or []
        )
        return call_result.SendLocalList(status=status)
