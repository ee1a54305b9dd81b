"""The connector's state and the policy it runs with: plain frozen data, no behaviour beyond
derived properties. The rules that change it are in :mod:`evsed.charging.session`."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from evsed.charging.events import StopReason
from evsed.charging.faults import Fault
from evsed.charging.limits import offered_current
from hal.types import CpState

PLUGGED = frozenset({CpState.B, CpState.C, CpState.D})


@dataclass(frozen=True, slots=True)
class Settings:
    """Policy the state machine needs, taken from the config by the composition root."""

    max_current_a: float = 16.0
    free_mode: bool = False
    free_mode_id_tag: str = "evsed-free"
    connection_timeout_s: float = 60.0
    stop_on_ev_disconnect: bool = True
    ventilation_available: bool = False
    c_debounce_s: float = 0.5
    require_meter: bool = True
    authorize_remote_tx_requests: bool = False
    has_lock: bool = False  # the socket has a connector lock the MCU drives
    unlock_on_ev_disconnect: bool = True


class PilotSignal(enum.Enum):
    """What the control pilot shows."""

    OFF = "off"  # +12 V, no PWM
    PWM = "pwm"
    STATE_F = "F"


class Phase(enum.StrEnum):
    """Where the connector is in a session; derived from the state, never stored."""

    IDLE = "Idle"
    WAITING_FOR_AUTH = "WaitingForAuth"  # plugged, no authorization yet
    WAITING_FOR_PLUG = "WaitingForPlug"  # authorized, no car yet
    SUSPENDED_EV = "SuspendedEV"  # transaction, PWM on, car not (yet) charging
    SUSPENDED_EVSE = "SuspendedEVSE"  # transaction, but nothing may be offered (limit < 6 A)
    CHARGING = "Charging"
    STOPPING = "Stopping"  # PWM off, waiting for the EV to leave C
    FINISHED = "Finished"  # transaction over, car still plugged
    UNAVAILABLE = "Unavailable"  # Inoperative (ChangeAvailability): no session can start


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """Everything the connector's rules depend on. Outputs are the last commanded ones."""

    settings: Settings = field(default_factory=Settings)
    cp: CpState = CpState.A
    car_present: bool = False  # from the last A-D reading; E and F say nothing about the car
    pending_tag: str | None = None  # authorization asked, no answer yet
    auth_tag: str | None = None  # authorized for the current or pending session
    auth_deadline: float | None = None  # authorized but not plugged: give up at this time
    tx_active: bool = False
    stop_reason: StopReason | None = None  # stop requested, waiting for the EV to leave C
    stop_deadline: float | None = None
    finished: bool = False  # a transaction ended and the car is still plugged
    c_since: float | None = None  # when C (or D) was first seen, for the debounce
    fault_since: float | None = None  # when the current run of blocking faults began
    faults: frozenset[Fault] = frozenset()
    limit_a: float | None = None  # lower limit from outside (smart charging); None = none
    cable_a: float | None = None  # cable rating read from PP; None = not known
    overcurrent_since: float | None = None
    pilot: PilotSignal = PilotSignal.OFF
    pwm_a: float = 0.0
    pwm_changed_at: float | None = None
    available: bool = True  # ChangeAvailability: Operative / Inoperative
    unavailable_after_tx: bool = False  # Inoperative was Scheduled during a transaction
    locked: bool = False  # the lock was last commanded to lock
    lock_confirmed: bool = False  # the lock's feedback says it is locked
    # The cable was unplugged at the EV during a transaction and UnlockConnectorOnEVSideDisconnect
    # is false: the socket keeps the cable locked until an unlock request (OCPP 1.6 §9.1).
    lock_held: bool = False
    contactor_closed: bool = False
    # The CSMS refused the transaction's idTag after the start: no energy until it ends.
    delivery_revoked: bool = False
    # A reservation holds the connector (OCPP 1.6 §5.13): only its tag (or group) may start.
    reserved: bool = False

    @property
    def plugged(self) -> bool:
        return self.car_present

    @property
    def blocking_faults(self) -> frozenset[Fault]:
        if self.settings.require_meter:
            return self.faults
        return self.faults - {Fault.METER_FAILURE}

    @property
    def offered_current_a(self) -> float:
        """What the PWM should offer now (before the 5 s rule); 0 = below the 6 A minimum."""
        if self.delivery_revoked:
            return 0.0
        return offered_current(self.settings.max_current_a, self.cable_a, self.limit_a)

    @property
    def phase(self) -> Phase:
        if self.tx_active:
            if self.stop_reason is not None:
                return Phase.STOPPING
            if self.contactor_closed:
                return Phase.CHARGING
            if self.offered_current_a == 0:
                return Phase.SUSPENDED_EVSE
            return Phase.SUSPENDED_EV
        if not self.available:
            return Phase.UNAVAILABLE
        if self.finished and self.plugged:
            return Phase.FINISHED
        if self.auth_tag is not None and not self.plugged:
            return Phase.WAITING_FOR_PLUG
        if self.plugged:
            return Phase.WAITING_FOR_AUTH
        return Phase.IDLE
