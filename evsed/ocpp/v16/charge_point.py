"""Handlers for CSMS-initiated OCPP 1.6 calls.

The ``ocpp`` library runs handlers inside its receive loop, so a handler only decides and
answers; anything that sends a message or waits runs afterwards (``@after`` or a task).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus

if TYPE_CHECKING:
    from evsed.ocpp.v16.service import OcppV16Service

log = logging.getLogger(__name__)


class V16ChargePoint(ChargePoint):  # type: ignore[misc]
    """One websocket session with the CSMS, speaking OCPP 1.6J."""

    def __init__(self, charger_id: str, connection: Any, service: OcppV16Service, **kw: Any):
        super().__init__(charger_id, connection, **kw)
        self._service = service

    async def route_message(self, raw_msg: str) -> None:
        log.debug("<- %s", raw_msg)
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        log.debug("-> %s", message)
        await super()._send(message)

    @on(Action.remote_start_transaction)
    def on_remote_start(
        self, id_tag: str, connector_id: int | None = None, **_: Any
    ) -> call_result.RemoteStartTransaction:
        accepted = self._service.can_remote_start(connector_id)
        status = RemoteStartStopStatus.accepted if accepted else RemoteStartStopStatus.rejected
        return call_result.RemoteStartTransaction(status=status)

    @after(Action.remote_start_transaction)
    def after_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> None:
        self._service.remote_start(connector_id, id_tag)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        known = self._service.connector_of_csms_tx(transaction_id) is not None
        status = RemoteStartStopStatus.accepted if known else RemoteStartStopStatus.rejected
        return call_result.RemoteStopTransaction(status=status)

    @after(Action.remote_stop_transaction)
    def after_remote_stop(self, transaction_id: int, **_: Any) -> None:
        self._service.remote_stop(transaction_id)
