"""Handlers for CSMS-initiated OCPP 1.6 calls (Core and Local Auth List Management).

The ``ocpp`` library runs handlers inside its receive loop, so a handler only decides and
answers; anything that sends a message or waits runs afterwards (``@after`` or a task). The
decisions are in :class:`evsed.ocpp.v16.operations.CsmsOperations`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from ocpp.exceptions import GenericError, OCPPError, UnknownCallErrorCodeError
from ocpp.messages import Call, CallError, CallResult
from ocpp.routing import after, create_route_map, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action

from evsed.charging.schedules import Profile
from evsed.diagnostics.redact import redact_text
from evsed.ocpp import rpc
from evsed.ocpp.v16.configuration_keys import FEATURE_PROFILES
from evsed.ocpp.v16.data_transfer import DataTransferHandlers
from evsed.ocpp.v16.diagnostics import DiagnosticsHandlers
from evsed.ocpp.v16.firmware import FirmwareHandlers
from evsed.ocpp.v16.operations import CsmsOperations
from evsed.ocpp.v16.reservations import ReservationHandlers
from evsed.ocpp.v16.security import SecurityHandlers, SecurityOperations
from evsed.ocpp.v16.smart_charging import ProfileRefused, SmartCharging, SmartChargingHandlers
from evsed.ocpp.v16.trigger import TriggeredMessages, TriggerHandlers

log = logging.getLogger(__name__)


# The CSMS-initiated operations of each OCPP 1.6 feature profile (§3).
PROFILE_ACTIONS: dict[str, frozenset[str]] = {
    "Core": frozenset(
        {
            "ChangeAvailability",
            "ChangeConfiguration",
            "ClearCache",
            "DataTransfer",
            "GetConfiguration",
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "Reset",
            "UnlockConnector",
        }
    ),
    "FirmwareManagement": frozenset({"GetDiagnostics", "UpdateFirmware"}),
    "LocalAuthListManagement": frozenset({"GetLocalListVersion", "SendLocalList"}),
    "Reservation": frozenset({"CancelReservation", "ReserveNow"}),
    "SmartCharging": frozenset(
        {"ClearChargingProfile", "GetCompositeSchedule", "SetChargingProfile"}
    ),
    "RemoteTrigger": frozenset({"TriggerMessage"}),
}
# Served only with [ota] enabled: the firmware manager does the work.
FIRMWARE_ACTIONS = frozenset({"UpdateFirmware", "SignedUpdateFirmware"})

_ACTIONS = frozenset(str(a.value) for a in Action)
SEEN_CALLS = 256  # message ids remembered per connection, to tell a replay from a resend
# OCPP-J 1.6 §4.2.3 spellings of the RPC error kinds.
ERROR_CODES: dict[rpc.ErrorKind, str] = {
    rpc.ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
    rpc.ErrorKind.NOT_SUPPORTED: "NotSupported",
    rpc.ErrorKind.FORMATION: "FormationViolation",
    rpc.ErrorKind.PROTOCOL: "ProtocolError",
    rpc.ErrorKind.TYPE_CONSTRAINT: "TypeConstraintViolation",
    rpc.ErrorKind.PROPERTY_CONSTRAINT: "PropertyConstraintViolation",
    rpc.ErrorKind.INTERNAL: "InternalError",
}


def served_actions(*, firmware_updates: bool) -> frozenset[str]:
    """The actions a charge point built with these features routes to a handler."""
    routed = frozenset(str(action) for action in create_route_map(V16ChargePoint))
    return routed if firmware_updates else routed - FIRMWARE_ACTIONS


def supported_profiles(actions: frozenset[str]) -> list[str]:
    """SupportedFeatureProfiles (§9.1) derived from what is served: a profile is listed when
    all its operations are handled here. GetDiagnostics needs no firmware updater and is
    served always; FirmwareManagement is listed only with UpdateFirmware too ([ota])."""
    return [p for p in FEATURE_PROFILES if PROFILE_ACTIONS[p] <= actions]


class V16ChargePoint(
    DataTransferHandlers,
    DiagnosticsHandlers,
    ReservationHandlers,
    TriggerHandlers,
    SecurityHandlers,
    SmartChargingHandlers,
    FirmwareHandlers,
    ChargePoint,  # type: ignore[misc]  # ocpp ships no type hints
):
    """One websocket session with the CSMS, speaking OCPP 1.6J."""

    route_map: dict[str, Any]  # the library's: action -> its handlers

    def __init__(
        self,
        charger_id: str,
        connection: Any,
        ops: CsmsOperations,
        triggers: TriggeredMessages,
        smart: SmartCharging,
        security: SecurityOperations,
        *,
        firmware_updates: bool,
        **kw: Any,
    ):
        super().__init__(charger_id, connection, **kw)
        self._ops = ops
        self._security = security
        self._reservations = ops.reservations
        self._extensions = ops.extensions
        self._triggers = triggers
        self._smart = smart
        self._remote_start_accepted = False
        self._remote_start_profile: Profile | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._seen_calls: OrderedDict[str, str] = OrderedDict()  # message id -> what it was
        served = served_actions(firmware_updates=firmware_updates)
        self.route_map = {a: h for a, h in self.route_map.items() if a in served}

    async def route_message(self, raw_msg: str) -> None:
        """Every frame from the CSMS, read by :mod:`evsed.ocpp.rpc` before the library sees it:
        a CALL whose message id is readable always gets an answer, with an OCPP-J 1.6 error
        code when it cannot be served (§4.2.3)."""
        size = len(raw_msg.encode() if isinstance(raw_msg, str) else raw_msg)
        if log.isEnabledFor(logging.DEBUG):  # frames carry secrets: passwords, AuthorizationKey
            shown = raw_msg if size <= 4096 else f"{raw_msg[:4096]}... ({size} bytes)"
            log.debug("<- %s", redact_text(shown))
        frame = rpc.read_frame(raw_msg)
        if size > self._security.max_message_bytes:
            frame = rpc.FrameError(
                rpc.ErrorKind.FORMATION,
                f"message of {size} bytes; at most {self._security.max_message_bytes}",
                getattr(frame, "unique_id", None),
            )
        match frame:
            case rpc.Reply(type=rpc.CALLRESULT):
                self._response_queue.put_nowait(CallResult(*frame.frame[1:]))
            case rpc.Reply():
                self._response_queue.put_nowait(CallError(*frame.frame[1:]))
            case rpc.FrameError():
                log.warning("malformed frame from the CSMS: %s", frame.description)
                self._security.invalid_message(frame.description)
                if frame.unique_id is not None:
                    await self._send_error(frame.unique_id, frame.kind, frame.description)
            case rpc.IncomingCall():
                if self._reused_id(frame):
                    self._security.replayed(frame.action)
                    await self._send_error(
                        frame.unique_id, rpc.ErrorKind.PROTOCOL, "message id already used"
                    )
                    return
                await self._serve_call(frame)

    def _reused_id(self, frame: rpc.IncomingCall) -> bool:
        """Whether the CALL reuses the id of an earlier, different CALL of this connection
        (the same CALL again is a retransmission and is served again)."""
        digest = hashlib.sha256(
            json.dumps([frame.action, frame.payload], sort_keys=True).encode()
        ).hexdigest()
        earlier = self._seen_calls.get(frame.unique_id)
        if earlier is not None and earlier != digest:
            return True
        self._seen_calls[frame.unique_id] = digest
        self._seen_calls.move_to_end(frame.unique_id)
        while len(self._seen_calls) > SEEN_CALLS:
            self._seen_calls.popitem(last=False)
        return False

    async def _serve_call(self, frame: rpc.IncomingCall) -> None:
        if frame.action not in self.route_map:
            known = frame.action in _ACTIONS
            kind = rpc.ErrorKind.NOT_SUPPORTED if known else rpc.ErrorKind.NOT_IMPLEMENTED
            log.info("CALL %.40s from the CSMS: %s", frame.action, kind.value)
            await self._send_error(frame.unique_id, kind, f"{frame.action[:40]}: {kind.value}")
            return
        problem = rpc.schema_problem(self._ocpp_version, frame.action, frame.payload)
        if problem is not None:
            log.warning("CALL %s from the CSMS: %s", frame.action, problem.description)
            self._security.invalid_message(f"{frame.action}: {problem.description}")
            await self._send_error(frame.unique_id, problem.kind, problem.description)
            return
        try:
            await self._handle_call(Call(frame.unique_id, frame.action, frame.payload))
        except OCPPError as exc:
            # Our own answer broke its schema: a bug here, not the CSMS's fault.
            log.error("answering %s failed: %s", frame.action, exc)
            await self._send_error(frame.unique_id, rpc.ErrorKind.INTERNAL, "answer not valid")

    async def _send_error(self, unique_id: str, kind: rpc.ErrorKind, description: str) -> None:
        error = CallError(unique_id, ERROR_CODES[kind], description, {})
        await self._send(error.to_json())

    async def call(self, payload: Any, suppress: bool = False, **kw: Any) -> Any:
        """The library's ``call``, with every CALLERROR raised as an ``OCPPError``: one whose
        code OCPP does not define is a GenericError (a refusal like any other), not the
        library's UnknownCallErrorCodeError, which no caller would expect."""
        try:
            return await super().call(payload, suppress=False, **kw)
        except UnknownCallErrorCodeError as exc:
            raise GenericError(description=str(exc)[:200]) from None

    async def _send(self, message: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("-> %s", redact_text(message))
        await super()._send(message)

    # -- §5.11 / §5.12 ------------------------------------------------------------------------

    @on(Action.remote_start_transaction)
    def on_remote_start(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> call_result.RemoteStartTransaction:
        # Decide now, act after the answer is sent (the StartTransaction must follow it).
        # §5.11, §5.16.2: a chargingProfile given here is a TxProfile for the transaction.
        self._remote_start_profile = None
        accepted = self._ops.remote_start_possible(connector_id, id_tag)
        if accepted and charging_profile is not None:
            try:
                self._remote_start_profile = self._smart.check(
                    connector_id or 0, charging_profile, remote_start=True
                )
            except ProfileRefused as exc:
                log.info("RemoteStartTransaction refused: %s", exc)
                accepted = False
        self._remote_start_accepted = accepted
        status = "Accepted" if accepted else "Rejected"
        return call_result.RemoteStartTransaction(status=status)

    @after(Action.remote_start_transaction)
    def after_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> None:
        if self._remote_start_accepted:
            self._spawn(self._remote_start(id_tag, connector_id, self._remote_start_profile))

    async def _remote_start(
        self, id_tag: str, connector_id: int | None, profile: Profile | None
    ) -> None:
        target = self._ops.remote_start_target(connector_id, id_tag)
        if target is None:
            log.warning("remote start: connector %s is no longer free", connector_id)
            return
        if profile is not None:
            # The profile is in force before the transaction can start.
            await self._smart.install(dataclasses.replace(profile, connector_id=target))
        self._ops.remote_start(id_tag, target)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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

    # -- §5.3 / §5.8 / §5.4 (DataTransfer §5.6: data_transfer.py) ----------------------------

    @on(Action.get_configuration)
    def on_get_configuration(
        self, key: list[str] | None = None, **_: Any
    ) -> call_result.GetConfiguration:
        # The Security Whitepaper's keys are served beside the §9 ones (AuthorizationKey is
        # write-only: asked for, it is unknown).
        known, unknown = self._ops.get_configuration(key)
        secured = self._security.entries(key or None)[0]
        unknown = [
            k for k in unknown if not self._security.owns(k) or k.casefold() == "authorizationkey"
        ]
        return call_result.GetConfiguration(
            configuration_key=[*known, *secured] or None, unknown_key=unknown or None
        )

    @on(Action.change_configuration)
    async def on_change_configuration(
        self, key: str, value: str, **_: Any
    ) -> call_result.ChangeConfiguration:
        if self._security.owns(key):
            status = await self._security.change_key(key, value)
        else:
            # Persisted (fsync) before the answer, in a worker thread: the loop runs the
            # safety path.
            status = await asyncio.to_thread(self._ops.change_configuration, key, value)
        return call_result.ChangeConfiguration(status=status)

    @after(Action.change_configuration)
    def after_change_configuration(self, **_: Any) -> None:
        self._security.answered()  # new security settings: reconnect with them now

    @on(Action.clear_cache)
    async def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status=await self._ops.clear_cache())

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
