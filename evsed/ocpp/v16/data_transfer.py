"""DataTransfer both ways (OCPP 1.6 §4.3, §5.6) and the registry of vendor extensions.

From the CSMS: the registry routes by vendorId, then messageId, to the extension's handler,
which answers Accepted or Rejected, with data. A vendorId nobody registered is
UnknownVendorId; a messageId (or none) the vendor's extension does not handle is
UnknownMessageId. Both ids are CiString (§7.20): matched case-insensitively. A handler that
fails is a bug here: it is logged and answered Rejected.

To the CSMS: :meth:`DataTransfers.send` for any code with vendor-specific data; None when
offline or without an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from evsed.ocpp.v16.calls import CsmsCalls

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DataTransferAnswer:
    status: str  # Accepted, Rejected, UnknownMessageId, UnknownVendorId (§7.21)
    data: str | None = None


ACCEPTED = DataTransferAnswer("Accepted")
REJECTED = DataTransferAnswer("Rejected")

Handler = Callable[[str | None], Awaitable[DataTransferAnswer]]


class VendorExtensions:
    """vendorId -> messageId -> handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, dict[str, Handler]] = {}

    def register(self, vendor_id: str, message_id: str, handler: Handler) -> None:
        messages = self._handlers.setdefault(vendor_id.casefold(), {})
        if message_id.casefold() in messages:
            raise ValueError(f"DataTransfer {vendor_id}/{message_id} registered twice")
        messages[message_id.casefold()] = handler

    @property
    def vendors(self) -> list[str]:
        return sorted(self._handlers)

    async def answer(
        self, vendor_id: str, message_id: str | None, data: str | None
    ) -> DataTransferAnswer:
        messages = self._handlers.get(vendor_id.casefold())
        if messages is None:
            log.info("DataTransfer for unknown vendor %.60r", vendor_id)
            return DataTransferAnswer("UnknownVendorId")
        handler = messages.get((message_id or "").casefold())
        if handler is None:
            log.info("DataTransfer %.60r: unknown message %.60r", vendor_id, message_id)
            return DataTransferAnswer("UnknownMessageId")
        try:
            return await handler(data)
        except Exception:
            log.exception("DataTransfer %s/%s failed", vendor_id, message_id)
            return REJECTED


class DataTransfers:
    """DataTransfer.req from the charge point (§4.3)."""

    def __init__(self, calls: CsmsCalls) -> None:
        self._calls = calls

    async def send(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> DataTransferAnswer | None:
        result = await self._calls.call_now(
            call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )
        if result is None:
            return None
        log.info("DataTransfer %s/%s to the CSMS: %s", vendor_id, message_id, result.status)
        return DataTransferAnswer(str(result.status), result.data)


class DataTransferHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _extensions: VendorExtensions

    @on(Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> call_result.DataTransfer:
        answer = await self._extensions.answer(vendor_id, message_id, data)
        return call_result.DataTransfer(status=answer.status, data=answer.data)
