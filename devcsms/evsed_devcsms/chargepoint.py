"""Server side of one charge point connection: handlers, frame journal, raw CALLs.

The ``ocpp`` library parses and routes; this subclass sees every frame first (``route_message``
for received frames, ``_send`` for sent ones) so malformed frames reach the journal and the log
too. CALLs from the CSMS are sent as raw JSON (``call_raw``) so a developer gets exactly the
payload they typed, not one round-tripped through snake_case dataclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult, validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result, datatypes
from ocpp.v16.enums import Action, AuthorizationStatus, DataTransferStatus, RegistrationStatus
from websockets.exceptions import ConnectionClosed

from evsed_devcsms.errors import ChargerGone, InvalidCall
from evsed_devcsms.journal import Direction, Frame, Journal, describe, parse_frame
from evsed_devcsms.state import CsmsState

_FRAMES = logging.getLogger("evsed_devcsms.frames")
#: Logger handed to the library; its per-frame INFO lines duplicate ours and are not used.
LIBRARY_LOGGER = logging.getLogger("evsed_devcsms.ocpp")

_F = TypeVar("_F", bound=Callable[..., Any])


def handles(action: Action) -> Callable[[_F], _F]:
    """Typed wrapper of ``ocpp.routing.on`` (the library ships no type hints)."""
    return cast(Callable[[_F], _F], on(action))


def _readable_id(text: str) -> str | None:
    """The message id of a frame (its second element, a string), if it has one."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[1], str):
        return frame[1]
    return None


def _reason(exc: OCPPError) -> str:
    cause = exc.details.get("cause") if isinstance(exc.details, dict) else None
    return f"{exc.code}: {cause or exc.description}"


@dataclass(frozen=True)
class CallOutcome:
    """How a charge point answered a CALL from the CSMS (OCPP-J 1.6 §4.2.2 / §4.2.3)."""

    action: str
    unique_id: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    #: Set when a CALLRESULT does not match the library's response schema.
    validation_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Admin API shape: ``{"id", "result"}`` or ``{"id", "error"}``."""
        body: dict[str, Any] = {"id": self.unique_id}
        if self.error is not None:
            body["error"] = self.error
        else:
            body["result"] = self.result
        if self.validation_error is not None:
            body["validation_error"] = self.validation_error
        return body


class CsmsChargePoint(ChargePoint):  # type: ignore[misc]  # ocpp ships no type hints
    """One connected charge point, as the CSMS sees it."""

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        state: CsmsState,
        journal: Journal,
        *,
        id_factory: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(cp_id, connection, logger=LIBRARY_LOGGER)
        self._state = state
        self._journal = journal
        if id_factory is not None:
            self._unique_id_generator = id_factory
        # Message id -> action, per direction: ids are only unique per sender.
        self._calls_received: dict[str, str] = {}
        self._calls_sent: dict[str, str] = {}
        self._closed = asyncio.Event()
        self._gone = object()
        self._tasks: set[asyncio.Future[None]] = set()

    # --- frame level -------------------------------------------------------------------

    async def start(self) -> None:
        """Route messages until the connection closes (normal close ends quietly)."""
        async for message in self._connection:
            await self.route_message(message)

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Journal and log a received frame, then let the library route it.

        A frame the library cannot unpack is dropped unanswered, exactly as
        ``ocpp.ChargePoint.route_message`` does: it may carry no readable message id to
        address a CALLERROR to (OCPP-J 1.6 §4.2.3). The connection stays open.
        """
        frame = parse_frame(raw_msg)
        if frame.is_call and frame.id is not None and frame.action is not None:
            self._calls_received[frame.id] = frame.action
        elif frame.is_response and frame.id is not None:
            frame = replace(frame, action=self._calls_sent.pop(frame.id, None))
        self._record("in", frame)
        if frame.error is not None:
            return
        rule = None
        if frame.is_call and frame.action is not None:
            rule = self._state.take_answer_rule(frame.action)
        if rule is None:
            await super().route_message(raw_msg)
            return
        extra = {"cp": self.id, "message_id": frame.id, "action": frame.action}
        if rule.mode == "drop":
            _FRAMES.info("%s: not answering %s (answer rule)", self.id, frame.action, extra=extra)
        elif rule.mode == "error":
            error = CallError(frame.id, rule.code, "answer rule of the development CSMS", {})
            await self._send(error.to_json())
        else:
            # Answered from a task: the receive loop goes on meanwhile, as on a slow CSMS.
            _FRAMES.info("%s: answering %s in %g s", self.id, frame.action, rule.delay, extra=extra)
            self._spawn(self._route_later(raw_msg, rule.delay))

    async def _route_later(self, raw_msg: str | bytes, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._closed.is_set():
            with contextlib.suppress(ConnectionClosed):
                await super().route_message(raw_msg)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, message: str) -> None:
        frame = parse_frame(message)
        if frame.is_call and frame.id is not None and frame.action is not None:
            self._calls_sent[frame.id] = frame.action
        elif frame.is_response and frame.id is not None:
            frame = replace(frame, action=self._calls_received.pop(frame.id, None))
        # Journal before sending: the answer may be routed while send() is still awaited.
        self._record("out", frame)
        await self._connection.send(message)

    def _record(self, direction: Direction, frame: Frame) -> None:
        entry = self._journal.append(self.id, direction, frame)
        extra = {"cp": self.id, "message_id": frame.id, "action": frame.action}
        if frame.error is None:
            _FRAMES.info("%s", describe(entry), extra=extra)
        else:
            _FRAMES.warning("%s", describe(entry), extra=extra)

    # --- CALLs from the CSMS --------------------------------------------------------------

    def mark_closed(self) -> None:
        """Tell a waiting ``call_raw`` that no answer will come; forget delayed answers."""
        self._closed.set()
        self._response_queue.put_nowait(self._gone)
        for task in list(self._tasks):
            task.cancel()

    async def call_raw(
        self, action: str, payload: dict[str, Any], *, timeout: float, validate: bool = True
    ) -> CallOutcome:
        """Send a CALL with this exact JSON payload and wait for its answer.

        One CALL at a time per connection (OCPP-J 1.6 §4.1.1), hence the library's lock.
        Raises InvalidCall (schema), TimeoutError, ChargerGone.
        """
        unique_id = str(self._unique_id_generator())
        if validate:
            try:
                # Validation rewrites floats in place (Decimal): check a copy, send the original.
                await validate_payload(
                    Call(unique_id, action, copy.deepcopy(payload)), self._ocpp_version
                )
            except OCPPError as exc:
                raise InvalidCall(f"{action}: {_reason(exc)}") from exc
        request = Call(unique_id, action, payload)
        async with asyncio.timeout(timeout), self._call_lock:
            if self._closed.is_set():
                raise ChargerGone(self.id, action)
            try:
                await self._send(request.to_json())
            except ConnectionClosed as exc:
                raise ChargerGone(self.id, action) from exc
            response = await self._wait_for_response(unique_id, action)
        if isinstance(response, CallError):
            error = {
                "code": response.error_code,
                "description": response.error_description,
                "details": response.error_details,
            }
            return CallOutcome(action, unique_id, error=error)
        validation_error = None
        if validate:
            try:
                checked = CallResult(unique_id, copy.deepcopy(response.payload), action)
                await validate_payload(checked, self._ocpp_version)
            except OCPPError as exc:
                validation_error = _reason(exc)
        return CallOutcome(action, unique_id, response.payload, None, validation_error)

    async def send_raw(self, text: str, *, timeout: float) -> CallOutcome | None:
        """Send ``text`` exactly as given (a hostile or broken CSMS: malformed frames, missing
        payloads) and, when it carries a readable message id, wait for the answer to that id.

        None when the frame has no readable id (nothing can answer it). Raises TimeoutError,
        ChargerGone.
        """
        unique_id = _readable_id(text)
        async with asyncio.timeout(timeout), self._call_lock:
            if self._closed.is_set():
                raise ChargerGone(self.id, "raw frame")
            try:
                await self._send(text)
            except ConnectionClosed as exc:
                raise ChargerGone(self.id, "raw frame") from exc
            if unique_id is None:
                return None
            response = await self._wait_for_response(unique_id, "raw frame")
        if isinstance(response, CallError):
            error = {
                "code": response.error_code,
                "description": response.error_description,
                "details": response.error_details,
            }
            return CallOutcome("raw frame", unique_id, error=error)
        return CallOutcome("raw frame", unique_id, response.payload)

    async def _wait_for_response(self, unique_id: str, action: str) -> CallResult | CallError:
        while True:
            response = await self._response_queue.get()
            if response is self._gone:
                raise ChargerGone(self.id, action)
            if response.unique_id == unique_id:
                return cast(CallResult | CallError, response)
            # A late answer to a CALL that timed out: already journaled, nothing waits for it.
            LIBRARY_LOGGER.debug("%s: dropping answer %s", self.id, response.unique_id)

    # --- handlers (OCPP 1.6 chapter 4: operations initiated by the charge point) ----------

    def _id_tag_info(self, id_tag: str) -> Any:
        record = self._state.id_tag_record(id_tag)
        return datatypes.IdTagInfo(
            status=AuthorizationStatus(record.status),
            parent_id_tag=record.parent_id_tag,
            expiry_date=record.expiry_date,
        )

    @handles(Action.boot_notification)
    def on_boot_notification(self, **payload: Any) -> Any:
        """§4.2: status per settings (mutable at run time), interval = heartbeat or retry."""
        status, interval = self._state.boot(self.id, snake_to_camel_case(payload))
        return call_result.BootNotification(
            current_time=self._state.now(),
            interval=interval,
            status=RegistrationStatus(status),
        )

    @handles(Action.heartbeat)
    def on_heartbeat(self) -> Any:
        """§4.6."""
        return call_result.Heartbeat(current_time=self._state.heartbeat(self.id))

    @handles(Action.status_notification)
    def on_status_notification(self, connector_id: int, **payload: Any) -> Any:
        """§4.9: remembered per connector for ``GET /api/chargers``."""
        self._state.status(self.id, connector_id, snake_to_camel_case(payload))
        return call_result.StatusNotification()

    @handles(Action.authorize)
    def on_authorize(self, id_tag: str) -> Any:
        """§4.1: the tag's own record, else Accepted for configured tags (or any tag when none
        are configured), else Invalid."""
        return call_result.Authorize(id_tag_info=self._id_tag_info(id_tag))

    @handles(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, **_: Any
    ) -> Any:
        """§4.8: transaction ids increase from 1; idTagInfo as for Authorize."""
        transaction_id, _status = self._state.start_transaction(
            self.id, connector_id, id_tag, meter_start
        )
        return call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info=self._id_tag_info(id_tag)
        )

    @handles(Action.stop_transaction)
    def on_stop_transaction(
        self,
        transaction_id: int,
        meter_stop: int,
        id_tag: str | None = None,
        reason: str | None = None,
        **_: Any,
    ) -> Any:
        """§4.10: idTagInfo only when the charge point sent an idTag."""
        self._state.stop_transaction(transaction_id, meter_stop, reason)
        info = self._id_tag_info(id_tag) if id_tag is not None else None
        return call_result.StopTransaction(id_tag_info=info)

    @handles(Action.meter_values)
    def on_meter_values(self, **_: Any) -> Any:
        """§4.7: journaled only."""
        return call_result.MeterValues()

    @handles(Action.data_transfer)
    def on_data_transfer(self, **_: Any) -> Any:
        """§4.3: every vendor's data is Accepted."""
        return call_result.DataTransfer(status=DataTransferStatus.accepted)

    @handles(Action.diagnostics_status_notification)
    def on_diagnostics_status_notification(self, status: str) -> Any:
        """§4.4."""
        self._state.note(self.id, "diagnostics_status", status)
        return call_result.DiagnosticsStatusNotification()

    @handles(Action.firmware_status_notification)
    def on_firmware_status_notification(self, status: str) -> Any:
        """§4.5."""
        self._state.note(self.id, "firmware_status", status)
        return call_result.FirmwareStatusNotification()

    @handles(Action.signed_firmware_status_notification)
    def on_signed_firmware_status_notification(self, status: str, **_: Any) -> Any:
        """Security whitepaper (1.6 edition 2) signed firmware update."""
        self._state.note(self.id, "firmware_status", status)
        return call_result.SignedFirmwareStatusNotification()

    @handles(Action.log_status_notification)
    def on_log_status_notification(self, **_: Any) -> Any:
        """Security whitepaper (1.6 edition 2) GetLog progress."""
        return call_result.LogStatusNotification()

    @handles(Action.sign_certificate)
    def on_sign_certificate(self, csr: str, **_: Any) -> Any:
        """Security whitepaper A02: the CSR is Accepted (it is in the journal); whoever plays
        the certificate authority answers later with CertificateSigned."""
        return call_result.SignCertificate(status="Accepted")

    @handles(Action.security_event_notification)
    def on_security_event_notification(self, **_: Any) -> Any:
        """Security whitepaper (1.6 edition 2) security events."""
        return call_result.SecurityEventNotification()
