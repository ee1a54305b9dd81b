"""Firmware Management and the Security Whitepaper's signed-update operations, plus
TriggerMessage: UpdateFirmware (§6.xx of the Firmware Management profile), SignedUpdateFirmware,
InstallCertificate (ManufacturerRootCertificate), TriggerMessage / ExtendedTriggerMessage.

The handler mixin answers; :class:`FirmwareOperations` decides and hands the work to the
:class:`evsed.ota.manager.FirmwareManager`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from evsed.ota.state import UpdateState

if TYPE_CHECKING:
    from evsed.ota.certificates import CertificateStore
    from evsed.ota.manager import FirmwareManager

log = logging.getLogger(__name__)

# TriggerMessage (§5.17 of the Remote Trigger profile): what we can send on request.
TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "FirmwareStatusNotification",
        "MeterValues",
    }
)
Sender = Callable[[str, int | None], Coroutine[Any, Any, None]]


class FirmwareOperations:
    def __init__(
        self,
        manager: FirmwareManager,
        certificates: CertificateStore,
        *,
        send_triggered: Sender,
        now: Callable[[], datetime],
    ) -> None:
        self.manager = manager
        self._certs = certificates
        self._send = send_triggered
        self._now = now
        self._tasks: set[asyncio.Task[None]] = set()

    async def update_firmware(
        self, location: str, retrieve_date: str, retries: int | None, retry_interval: int | None
    ) -> None:
        accepted = await self.manager.request(
            UpdateState(
                location=location,
                retrieve_at=retrieve_date,
                retries=retries if retries is not None else 1,
                retry_interval_s=retry_interval if retry_interval is not None else 60,
            )
        )
        if not accepted:
            log.warning("UpdateFirmware ignored: an update is already being installed")

    async def signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None,
        retry_interval: int | None,
    ) -> str:
        from evsed.ota.signature import FirmwareSignatureError, verify_signing_certificate

        try:
            # The certificate can be judged before downloading anything (Security Whitepaper:
            # InvalidCertificate + SecurityEventNotification InvalidFirmwareSigningCertificate).
            roots = await asyncio.to_thread(self._certs.roots)
            verify_signing_certificate(
                firmware.get("signing_certificate", ""), roots, now=self._now()
            )
        except FirmwareSignatureError as exc:
            log.error("SignedUpdateFirmware: %s", exc)
            self._spawn(self.manager.security_event(exc.kind, str(exc)))
            return "InvalidCertificate"
        replacing = self.manager.busy
        accepted = await self.manager.request(
            UpdateState(
                location=firmware["location"],
                retrieve_at=firmware["retrieve_date_time"],
                install_at=firmware.get("install_date_time"),
                retries=retries if retries is not None else 1,
                retry_interval_s=retry_interval if retry_interval is not None else 60,
                signed=True,
                request_id=request_id,
                signing_certificate=firmware.get("signing_certificate", ""),
                signature=firmware.get("signature", ""),
            )
        )
        if not accepted:
            return "Rejected"
        return "AcceptedCanceled" if replacing else "Accepted"

    async def install_certificate(self, certificate_type: str, certificate: str) -> str:
        if certificate_type != "ManufacturerRootCertificate":
            # Central system roots belong to the TLS security profiles, not handled here.
            return "Rejected"
        return await asyncio.to_thread(self._certs.install, certificate)

    def trigger(self, requested_message: str, connector_id: int | None) -> str:
        if requested_message not in TRIGGERABLE:
            return "NotImplemented"
        self._spawn(self._send(requested_message, connector_id))
        return "Accepted"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class FirmwareHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _ops: Any

    @property
    def _firmware(self) -> FirmwareOperations | None:
        firmware: FirmwareOperations | None = getattr(self._ops, "firmware", None)
        return firmware

    @on(Action.update_firmware)
    def on_update_firmware(self, **_: Any) -> call_result.UpdateFirmware:
        return call_result.UpdateFirmware()

    @after(Action.update_firmware)
    async def after_update_firmware(
        self,
        location: str,
        retrieve_date: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> None:
        if self._firmware is None:
            log.warning("UpdateFirmware received but firmware updates are disabled")
            return
        await self._firmware.update_firmware(location, retrieve_date, retries, retry_interval)

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
        **_: Any,
    ) -> call_result.SignedUpdateFirmware:
        if self._firmware is None:
            return call_result.SignedUpdateFirmware(status="Rejected")
        status = await self._firmware.signed_update_firmware(
            request_id, firmware, retries, retry_interval
        )
        return call_result.SignedUpdateFirmware(status=status)

    @on(Action.install_certificate)
    async def on_install_certificate(
        self, certificate_type: str, certificate: str, **_: Any
    ) -> call_result.InstallCertificate:
        if self._firmware is None:
            return call_result.InstallCertificate(status="Rejected")
        status = await self._firmware.install_certificate(certificate_type, certificate)
        return call_result.InstallCertificate(status=status)

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> call_result.TriggerMessage:
        if self._firmware is None:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(
            status=self._firmware.trigger(requested_message, connector_id)
        )

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> call_result.ExtendedTriggerMessage:
        if self._firmware is None:
            return call_result.ExtendedTriggerMessage(status="NotImplemented")
        name = (
            "FirmwareStatusNotification"
            if requested_message == "SignedFirmwareStatusNotification"
            else requested_message
        )
        return call_result.ExtendedTriggerMessage(status=self._firmware.trigger(name, connector_id))


def trigger_sender(
    service: Any,
    manager: FirmwareManager,
    connectors: dict[int, Any],
    keys: Any,
    now: Callable[[], datetime],
) -> Sender:
    """Sends what a TriggerMessage asked for, right after its answer (§5.17)."""
    from ocpp.v16 import call

    from evsed.clock import iso
    from evsed.ocpp.v16.metering import sampled_values

    async def send(name: str, connector_id: int | None) -> None:
        payloads: list[Any] = []
        match name:
            case "FirmwareStatusNotification":
                state = manager.state
                if state is not None and state.signed and manager.busy:
                    payloads.append(
                        call.SignedFirmwareStatusNotification(
                            status=manager.last_status, request_id=state.request_id
                        )
                    )
                else:
                    payloads.append(call.FirmwareStatusNotification(status=manager.last_status))
            case "Heartbeat":
                payloads.append(call.Heartbeat())
            case "BootNotification":
                payloads.append(service.boot_request())
            case "StatusNotification":
                for cid in [connector_id] if connector_id else sorted(connectors):
                    status, error = service.current_status(cid)
                    payloads.append(
                        call.StatusNotification(
                            connector_id=cid, error_code=error, status=status, timestamp=iso(now())
                        )
                    )
            case "MeterValues":
                for cid in [connector_id] if connector_id else sorted(connectors):
                    runner = connectors[cid]
                    reading = runner.meter_reading
                    if reading is None:
                        continue
                    values = sampled_values(
                        reading,
                        keys.get_csl("MeterValuesSampledData"),
                        "Trigger",
                        offered_a=runner.offered_current_a,
                    )
                    payloads.append(
                        call.MeterValues(
                            connector_id=cid,
                            transaction_id=service.csms_transaction_id(cid),
                            meter_value=[{"timestamp": iso(now()), "sampled_value": values}],
                        )
                    )
        for payload in payloads:
            await service.call_now(payload)

    return send
