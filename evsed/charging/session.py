"""The connector state machine: ``step(state, event, now) -> (state, commands)``.

Pure: no I/O, no clock. The state holds what happened (CP state, authorization, transaction,
faults); the pilot and contactor outputs are *derived* from it on every step and compared with
what was last commanded, so every path -- including ones nobody thought of -- ends with the
outputs the rules allow. Safety rules, IEC 61851-1 (2017) Annex A:

- the contactor is closed only in C (or D with ventilation) with PWM on, an authorized
  transaction, no fault, and C seen for ``c_debounce_s`` (seq. 4/6: close within 3 s);
- C->B, unplug, or any fault opens it at once (seq. 7/8: within 100 ms);
- when the EVSE ends a session it stops PWM and waits for the EV to go to B; if the EV keeps
  C, the contactor opens under load after 6 s (seq. 10.2);
- any fault drives state F (constant -12 V) for ``FAULT_STATE_F_S``, then +12 V without PWM
  while the fault lasts, so the car is told to stop and an unplug can still be seen.
"""

from __future__ import annotations

import dataclasses

from evsed.charging.commands import (
    AskAuthorization,
    BeginTransaction,
    CheckStopTag,
    CloseContactor,
    Command,
    EndTransaction,
    EngageLock,
    OpenContactor,
    ReleaseLock,
    SetPwm,
    ShowStateF,
    StopPwm,
)
from evsed.charging.events import (
    AuthAccepted,
    AuthorizationRevoked,
    AuthRejected,
    AvailabilityChanged,
    CableRatingRead,
    CpStateChanged,
    CurrentMeasured,
    Event,
    FaultCleared,
    FaultRaised,
    LimitChanged,
    LockPositionRead,
    RemoteStartRequested,
    ReservationChanged,
    SettingsChanged,
    StopReason,
    StopRequested,
    TagPresented,
    TimePassed,
    UnlockRequested,
)
from evsed.charging.faults import Fault
from evsed.charging.limits import (
    OVERCURRENT_GRACE_S,
    next_pwm,
    overcurrent_threshold,
)
from evsed.charging.state import PLUGGED, ConnectorState, PilotSignal
from hal.types import CpState

EV_STOP_GRACE_S = 6.0  # IEC 61851-1 Table A.6 seq. 10.2: open under load after 6 s
FAULT_STATE_F_S = 0.3  # IEC 61851-1: state F for at least 300 ms after a fault


def step(state: ConnectorState, event: Event, now: float) -> tuple[ConnectorState, list[Command]]:
    """Apply ``event`` at monotonic time ``now``; return the new state and the commands to run."""
    commands: list[Command] = []
    s = _apply(state, event, now, commands)
    return _reconcile(s, now, commands)


def _apply(s: ConnectorState, event: Event, now: float, out: list[Command]) -> ConnectorState:
    match event:
        case CpStateChanged(cp=cp, evse_drives_f=evse_drives_f):
            return _on_cp(s, cp, evse_drives_f, now, out)
        case TagPresented(id_tag=tag):
            if s.tx_active and s.stop_reason is None:
                if tag == s.auth_tag:
                    return _request_stop(s, StopReason.LOCAL, now)
                out.append(CheckStopTag(tag))  # another card of the same group may stop it
                return s
            return _ask_authorization(s, tag, out)
        case AuthAccepted(id_tag=tag):
            if tag != s.pending_tag:
                return s
            return _authorized(dataclasses.replace(s, pending_tag=None), tag, now, out)
        case AuthRejected(id_tag=tag):
            if tag != s.pending_tag:
                return s
            return dataclasses.replace(s, pending_tag=None)
        case RemoteStartRequested(id_tag=tag):
            if s.tx_active or s.auth_tag is not None:
                return s
            if s.settings.authorize_remote_tx_requests:
                return _ask_authorization(s, tag, out)  # OCPP 1.6 §5.11
            return _authorized(dataclasses.replace(s, pending_tag=None), tag, now, out)
        case AvailabilityChanged(operative=operative):
            if operative:
                return dataclasses.replace(s, available=True, unavailable_after_tx=False)
            if s.tx_active:
                return dataclasses.replace(s, unavailable_after_tx=True)  # Scheduled
            return dataclasses.replace(s, available=False, auth_tag=None, auth_deadline=None)
        case UnlockRequested():
            s = dataclasses.replace(s, lock_held=False)
            if s.tx_active and s.stop_reason is None:
                return _request_stop(s, StopReason.UNLOCK_COMMAND, now)
            if s.plugged and not s.tx_active:
                # A session authorized but not started (it may be waiting for a fault to
                # clear) holds the lock: unlocking gives it up, so the cable can come out.
                return dataclasses.replace(s, auth_tag=None, auth_deadline=None)
            return s
        case LockPositionRead(locked=locked):
            return dataclasses.replace(s, lock_confirmed=locked)
        case SettingsChanged(settings=settings):
            return dataclasses.replace(s, settings=settings)
        case ReservationChanged(reserved=reserved):
            return dataclasses.replace(s, reserved=reserved)
        case AuthorizationRevoked():
            return dataclasses.replace(s, delivery_revoked=True) if s.tx_active else s
        case StopRequested(reason=reason):
            if s.tx_active and s.stop_reason is None:
                return _request_stop(s, reason, now)
            if not s.tx_active and s.auth_tag is not None:
                return dataclasses.replace(s, auth_tag=None, auth_deadline=None)
            return s
        case FaultRaised(fault=fault):
            return dataclasses.replace(s, faults=s.faults | {fault})
        case FaultCleared(fault=fault):
            was_blocking = fault in s.blocking_faults
            s = dataclasses.replace(s, faults=s.faults - {fault})
            if was_blocking and not s.blocking_faults and s.c_since is not None:
                # Power returns only after C has been seen again for the debounce time.
                s = dataclasses.replace(s, c_since=now)
            return s
        case CableRatingRead(max_current_a=amps):
            return dataclasses.replace(s, cable_a=amps if amps > 0 else None)
        case LimitChanged(max_current_a=amps):
            return dataclasses.replace(s, limit_a=amps)
        case CurrentMeasured(amps=amps):
            return _check_overcurrent(s, amps, now)
        case TimePassed():
            if s.auth_deadline is not None and now >= s.auth_deadline and not s.plugged:
                return dataclasses.replace(s, auth_tag=None, auth_deadline=None)
            return s
    return s


def _on_cp(
    s: ConnectorState, cp: CpState, evse_drives_f: bool, now: float, out: list[Command]
) -> ConnectorState:
    was_plugged = s.car_present
    charging_request = cp in (CpState.C, CpState.D)
    c_since = (s.c_since if s.c_since is not None else now) if charging_request else None
    # In E (CP shorted) and F (the EVSE itself drives -12 V) the car cannot be sensed: keep
    # what was last known, so an unplug during a fault is still seen when the pilot returns.
    present = s.car_present if cp in (CpState.E, CpState.F) else cp in PLUGGED
    # E is a short to PE. F that the EVSE is not driving itself is -12 V from elsewhere on the
    # pilot circuit (docs/mcu-protocol.md §6.4). Both clear only on a real car state (A-D): the
    # F we drive ourselves after a fault says nothing about the line.
    faults = s.faults
    if cp is CpState.E:
        faults = faults | {Fault.CP_STATE_E}
    elif cp is CpState.F:
        if not evse_drives_f:
            faults = faults | {Fault.CP_STATE_F}
    else:
        faults = faults - {Fault.CP_STATE_E, Fault.CP_STATE_F}
    s = dataclasses.replace(s, cp=cp, c_since=c_since, car_present=present, faults=faults)
    if cp is CpState.A and was_plugged:
        # Over-current is the car's doing: it clears when that car leaves.
        s = dataclasses.replace(s, finished=False, faults=s.faults - {Fault.OVER_CURRENT})
        if s.locked and s.tx_active and not s.settings.unlock_on_ev_disconnect:
            s = dataclasses.replace(s, lock_held=True)
        if s.tx_active and (s.settings.stop_on_ev_disconnect or s.stop_reason is not None):
            reason = s.stop_reason or StopReason.EV_DISCONNECTED
            s = _end_transaction(s, reason, out)
        if not s.tx_active:
            s = dataclasses.replace(s, auth_tag=None, auth_deadline=None)
        return s
    if s.plugged and not was_plugged:
        if s.auth_tag is not None and not s.tx_active:
            return s  # _reconcile starts the transaction
        if s.settings.free_mode and not s.tx_active and not s.finished and not s.reserved:
            return dataclasses.replace(s, auth_tag=s.settings.free_mode_id_tag)
    return s


def _check_overcurrent(s: ConnectorState, amps: float, now: float) -> ConnectorState:
    """The EV must not draw more than offered (plus margin) for longer than 7 s."""
    drawing_too_much = s.contactor_closed and amps > overcurrent_threshold(s.pwm_a)
    if not drawing_too_much:
        return dataclasses.replace(s, overcurrent_since=None)
    since = now if s.overcurrent_since is None else s.overcurrent_since
    if now - since >= OVERCURRENT_GRACE_S:
        return dataclasses.replace(
            s, overcurrent_since=None, faults=s.faults | {Fault.OVER_CURRENT}
        )
    return dataclasses.replace(s, overcurrent_since=since)


def _ask_authorization(s: ConnectorState, tag: str, out: list[Command]) -> ConnectorState:
    if s.tx_active or s.pending_tag is not None or s.blocking_faults or not s.available:
        return s  # busy, faulted or unavailable: no new session
    out.append(AskAuthorization(tag))
    return dataclasses.replace(s, pending_tag=tag)


def _authorized(s: ConnectorState, tag: str, now: float, out: list[Command]) -> ConnectorState:
    s = dataclasses.replace(s, auth_tag=tag, finished=False)
    if s.plugged:
        return s  # _reconcile starts the transaction
    return dataclasses.replace(s, auth_deadline=now + s.settings.connection_timeout_s)


def _start_transaction(s: ConnectorState, out: list[Command]) -> ConnectorState:
    assert s.auth_tag is not None
    out.append(BeginTransaction(s.auth_tag))
    return dataclasses.replace(s, tx_active=True, auth_deadline=None, finished=False)


def _request_stop(s: ConnectorState, reason: StopReason, now: float) -> ConnectorState:
    return dataclasses.replace(s, stop_reason=reason, stop_deadline=now + EV_STOP_GRACE_S)


def _end_transaction(s: ConnectorState, reason: StopReason, out: list[Command]) -> ConnectorState:
    """Close the transaction. The contactor is opened first by the caller (see _reconcile)."""
    if s.contactor_closed:
        out.append(OpenContactor())
        s = dataclasses.replace(s, contactor_closed=False)
    out.append(EndTransaction(reason))
    return dataclasses.replace(
        s,
        tx_active=False,
        stop_reason=None,
        stop_deadline=None,
        auth_tag=None,
        finished=s.plugged,
        available=s.available and not s.unavailable_after_tx,
        unavailable_after_tx=False,
        delivery_revoked=False,
    )


def _reconcile(
    s: ConnectorState, now: float, out: list[Command]
) -> tuple[ConnectorState, list[Command]]:
    """Derive the outputs the rules allow and emit commands for what changed.

    Opening comes before any pilot change and closing after, so the contactor never carries
    load while the pilot says the EV may not draw it.
    """
    if s.stop_reason is not None and s.tx_active:
        ev_left_c = s.cp not in (CpState.C, CpState.D)
        grace_over = s.stop_deadline is not None and now >= s.stop_deadline
        if ev_left_c or grace_over or not s.contactor_closed or s.blocking_faults:
            s = _end_transaction(s, s.stop_reason, out)

    # A socket's lock must hold the plug before a transaction starts or power flows.
    lock_holds = not s.settings.has_lock or s.lock_confirmed
    startable = s.plugged and not s.tx_active and not s.blocking_faults and s.available
    if s.auth_tag is not None and startable and lock_holds:
        # Plugged, authorized and locked: the transaction starts (OCPP 1.6 §3.6). Never while
        # faulted or unavailable.
        s = _start_transaction(s, out)

    if s.blocking_faults:
        fault_since = now if s.fault_since is None else s.fault_since
        s = dataclasses.replace(s, fault_since=fault_since)
        in_hold = now - fault_since < FAULT_STATE_F_S
        pilot, pwm_a = (PilotSignal.STATE_F if in_hold else PilotSignal.OFF), 0.0
    elif s.tx_active and s.stop_reason is None and s.plugged and s.offered_current_a > 0:
        pilot = PilotSignal.PWM
        current = s.pwm_a if s.pilot is PilotSignal.PWM else 0.0
        pwm_a = next_pwm(current, s.offered_current_a, s.pwm_changed_at, now)
    else:
        pilot, pwm_a = PilotSignal.OFF, 0.0
    if not s.blocking_faults and s.fault_since is not None:
        s = dataclasses.replace(s, fault_since=None)

    ventilation_ok = s.cp is CpState.C or (s.cp is CpState.D and s.settings.ventilation_available)
    debounced = s.c_since is not None and now - s.c_since >= s.settings.c_debounce_s
    keep_for_stop = s.stop_reason is not None and s.contactor_closed and ventilation_ok
    want_closed = (
        s.tx_active
        and not s.blocking_faults
        and ventilation_ok
        and lock_holds
        and ((pilot is PilotSignal.PWM and debounced) or keep_for_stop)
    )

    # Lock once plugged and authorized; after a lock failure, release (the driver must be able
    # to take the plug out) until the fault clears on unplug.
    session = s.plugged and (s.tx_active or s.auth_tag is not None)
    want_locked = (
        s.settings.has_lock and Fault.CONNECTOR_LOCK not in s.faults and (session or s.lock_held)
    )
    if s.contactor_closed and not want_closed:
        out.append(OpenContactor())
        s = dataclasses.replace(s, contactor_closed=False)
    if s.locked and not want_locked:
        out.append(ReleaseLock())
        s = dataclasses.replace(s, locked=False)
    if pilot is not s.pilot or (pilot is PilotSignal.PWM and pwm_a != s.pwm_a):
        match pilot:
            case PilotSignal.PWM:
                out.append(SetPwm(pwm_a))
            case PilotSignal.OFF:
                out.append(StopPwm())
            case PilotSignal.STATE_F:
                out.append(ShowStateF())
        s = dataclasses.replace(s, pilot=pilot, pwm_a=pwm_a, pwm_changed_at=now)
    if want_locked and not s.locked:
        out.append(EngageLock())
        s = dataclasses.replace(s, locked=True)
    if want_closed and not s.contactor_closed:
        out.append(CloseContactor())
        s = dataclasses.replace(s, contactor_closed=True)
    return s, out
