"""Firmware Management and the Security Whitepaper's signed-update operations:
UpdateFirmware (§6.xx of the Firmware Management profile) and SignedUpdateFirmware (the
manufacturer roots it checks against are installed through :mod:`evsed.ocpp.v16.security`).

The handler mixin answers; :class:`FirmwareOperations` decides and hands the work to the
:class:`evsed.ota.manager.FirmwareManager`. With ``[ota]`` disabled these actions are not routed
at all (the charge point answers NotSupported), so the handlers always have a manager.
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

from evsed.ota.state import FirmwareStatus, UpdateState

if TYPE_CHECKING:
    from evsed.ota.manager import FirmwareManager
    from evsed.security.certificates import CertificateStore

log = logging.getLogger(__name__)


class FirmwareOperations:
    def __init__(
        self,
        manager: FirmwareManager,
        certificates: CertificateStore,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self.manager = manager
        self._certs = certificates
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

    def status(self) -> tuple[FirmwareStatus, int | None]:
        """(status, requestId) for a triggered FirmwareStatusNotification: Idle when nothing is
        going on; requestId while a signed update runs."""
        state = self.manager.state
        signed = state is not None and state.signed and self.manager.busy
        return self.manager.last_status, state.request_id if signed and state else None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class FirmwareHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _ops: Any

    @property
    def _firmware(self) -> FirmwareOperations:
        firmware: FirmwareOperations | None = getattr(self._ops, "firmware", None)
        assert firmware is not None, "firmware actions are routed only with [ota] enabled"
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
        status = await self._firmware.signed_update_firmware(
            request_id, firmware, retries, retry_interval
        )
        return call_result.SignedUpdateFirmware(status=status)
