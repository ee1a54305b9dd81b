"""TriggerMessage (OCPP 1.6 §5.17, Remote Trigger profile) and the Security Whitepaper's
ExtendedTriggerMessage: the CSMS asks for a message, the charger answers, then sends it.

Rules (§5.17):
- Accepted: the message follows the answer (it is sent from ``@after``, never before).
- Rejected: a connectorId that names no connector (0 is the charge point itself: it has a
  status, and no meter of its own, so MeterValues for 0 is Rejected too).
- NotImplemented: a requestedMessage this charger does not know.
- DiagnosticsStatusNotification says Uploading while a GetDiagnostics upload runs and Idle
  otherwise (§4.4: Idle only ever in a triggered one).
- An absent connectorId where it matters means every connector; where it does not matter
  (BootNotification, Heartbeat, FirmwareStatusNotification) it is ignored.
- ExtendedTriggerMessage's FirmwareStatusNotification is answered with a
  SignedFirmwareStatusNotification (Security Whitepaper: its requestId only while a signed
  update runs); TriggerMessage's with the signed form only while a signed update runs.
- ExtendedTriggerMessage SignChargePointCertificate: Accepted when a certificate request can be
  made (CpoName is set: it is the O of the request), else Rejected; a SignCertificate.req
  follows the answer. LogStatusNotification: the state of the log upload (Idle, without a
  requestId, when none runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from evsed.clock import iso
from evsed.diagnostics.service import UploadState
from evsed.ocpp.v16.metering import MeterValueBuilder
from evsed.ocpp.v16.reports import basic_status, diagnostics_status
from evsed.ota.state import FirmwareStatus
from hal.types import MeterReading

log = logging.getLogger(__name__)

PER_CONNECTOR = frozenset({"StatusNotification", "MeterValues"})
TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "FirmwareStatusNotification",
        "DiagnosticsStatusNotification",
        *PER_CONNECTOR,
    }
)
# ExtendedTriggerMessage names (MessageTriggerEnumType) -> the message we send.
_EXTENDED = {
    "BootNotification": "BootNotification",
    "Heartbeat": "Heartbeat",
    "MeterValues": "MeterValues",
    "StatusNotification": "StatusNotification",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
}


class Sender(Protocol):
    """Sends a CALL now (not through the outbox)."""

    async def call_now(self, payload: Any) -> Any | None: ...


class StatusSource(Protocol):
    def current_status(self, connector_id: int) -> tuple[str, str]: ...


class TransactionIds(Protocol):
    def csms_transaction_id(self, connector_id: int) -> int | None: ...


class Metered(Protocol):
    """A connector as far as a triggered MeterValues needs it."""

    @property
    def meter_reading(self) -> MeterReading | None: ...

    @property
    def offered_current_a(self) -> float: ...


class CertificateRequests(Protocol):
    """Makes the charge point certificate's SignCertificate.req (Security Whitepaper A02)."""

    def can_request_certificate(self) -> bool: ...

    def request_certificate_later(self, why: str) -> None: ...


# (status, requestId) of the log upload for LogStatusNotification.
LogStatusSource = Callable[[], tuple[str, int | None]]


# (status, requestId) of the firmware update for FirmwareStatusNotification; requestId is set
# while a signed update runs (SignedFirmwareStatusNotification).
FirmwareStatusSource = Callable[[], tuple[FirmwareStatus, int | None]]
# The status of the GetDiagnostics upload (Uploading, or Idle).
DiagnosticsStatusSource = Callable[[], UploadState]


class TriggeredMessages:
    """Decides the answer to a trigger and sends the message afterwards."""

    def __init__(
        self,
        sender: Sender,
        connectors: Mapping[int, Metered],
        meter_values: MeterValueBuilder,
        *,
        statuses: StatusSource,
        transactions: TransactionIds,
        boot_request: Callable[[], Any],
        firmware_status: FirmwareStatusSource,
        certificates: CertificateRequests,
        log_status: LogStatusSource,
        diagnostics_status: DiagnosticsStatusSource,
        now: Callable[[], datetime],
    ) -> None:
        self._sender = sender
        self._connectors = connectors
        self._meter_values = meter_values
        self._statuses = statuses
        self._transactions = transactions
        self._boot_request = boot_request
        self._firmware_status = firmware_status
        self._certificates = certificates
        self._log_status = log_status
        self._diagnostics_status = diagnostics_status
        self._now = now
        self._tasks: set[asyncio.Task[None]] = set()

    def answer(self, message: str, connector_id: int | None) -> str:
        if message not in TRIGGERABLE:
            return "NotImplemented"
        if connector_id is not None and message in PER_CONNECTOR:
            known = connector_id in self._connectors or (
                connector_id == 0 and message == "StatusNotification"
            )
            if not known:
                return "Rejected"
        return "Accepted"

    def answer_extended(self, message: str, connector_id: int | None) -> str:
        """ExtendedTriggerMessage: its own messages, then those it shares with TriggerMessage."""
        if message == "SignChargePointCertificate":
            return "Accepted" if self._certificates.can_request_certificate() else "Rejected"
        if message == "LogStatusNotification":
            return "Accepted"
        name = _EXTENDED.get(message)
        return "NotImplemented" if name is None else self.answer(name, connector_id)

    def send_extended_later(self, message: str, connector_id: int | None) -> None:
        """After an Accepted ExtendedTriggerMessage answer went out."""
        if message == "SignChargePointCertificate":
            self._certificates.request_certificate_later("ExtendedTriggerMessage")
        elif message == "LogStatusNotification":
            status, request_id = self._log_status()
            payload = call.LogStatusNotification(status=str(status), request_id=request_id)
            task = asyncio.create_task(self._sender.call_now(payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self.send_later(_EXTENDED[message], connector_id, signed=True)

    def send_later(self, message: str, connector_id: int | None, *, signed: bool = False) -> None:
        """Send what ``message`` asks for, in a task (called after an Accepted answer went
        out); ``signed``: the firmware status in its Security Whitepaper form."""
        task = asyncio.create_task(self._send(message, connector_id, signed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, message: str, connector_id: int | None, signed: bool) -> None:
        try:
            for payload in self._payloads(message, connector_id, signed):
                await self._sender.call_now(payload)
        except Exception:
            log.exception("sending the triggered %s failed", message)

    def _payloads(self, message: str, connector_id: int | None, signed: bool) -> list[Any]:
        match message:
            case "BootNotification":
                return [self._boot_request()]
            case "Heartbeat":
                return [call.Heartbeat()]
            case "FirmwareStatusNotification":
                status, request_id = self._firmware_status()
                if signed or request_id is not None:
                    return [
                        call.SignedFirmwareStatusNotification(
                            status=str(status), request_id=request_id
                        )
                    ]
                return [call.FirmwareStatusNotification(status=str(basic_status(status)))]
            case "DiagnosticsStatusNotification":
                state = self._diagnostics_status()
                return [call.DiagnosticsStatusNotification(status=diagnostics_status(state))]
            case "StatusNotification":
                ids = [connector_id] if connector_id is not None else [0, *self._connectors]
                return [self._status(cid) for cid in ids]
            case "MeterValues":
                ids = [connector_id] if connector_id is not None else list(self._connectors)
                return [p for cid in ids if (p := self._meter_value(cid)) is not None]
        return []

    def _status(self, connector_id: int) -> Any:
        status, error = self._statuses.current_status(connector_id)
        return call.StatusNotification(
            connector_id=connector_id, error_code=error, status=status, timestamp=iso(self._now())
        )

    def _meter_value(self, connector_id: int) -> Any | None:
        connector = self._connectors[connector_id]
        value = self._meter_values.build(
            connector_id,
            connector.meter_reading,
            "MeterValuesSampledData",
            "Trigger",
            iso(self._now()),
            offered_a=connector.offered_current_a,
        )
        if value is None:
            log.info("triggered MeterValues for connector %d: no reading yet", connector_id)
            return None
        return call.MeterValues(
            connector_id=connector_id,
            transaction_id=self._transactions.csms_transaction_id(connector_id),
            meter_value=[value],
        )


class TriggerHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _triggers: TriggeredMessages

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> call_result.TriggerMessage:
        status = self._triggers.answer(requested_message, connector_id)
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        if self._triggers.answer(requested_message, connector_id) == "Accepted":
            self._triggers.send_later(requested_message, connector_id)

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> call_result.ExtendedTriggerMessage:
        status = self._triggers.answer_extended(requested_message, connector_id)
        return call_result.ExtendedTriggerMessage(status=status)

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        if self._triggers.answer_extended(requested_message, connector_id) == "Accepted":
            self._triggers.send_extended_later(requested_message, connector_id)
