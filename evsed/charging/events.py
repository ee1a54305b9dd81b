"""Events fed to the charging core. Past tense: they say what happened."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evsed.charging.faults import Fault

if TYPE_CHECKING:
    from evsed.charging.state import Settings
from hal.types import CpState


class StopReason(enum.StrEnum):
    """Why a transaction ended (the OCPP 1.6 Reason values the core can produce)."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    DE_AUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    HARD_RESET = "HardReset"
    SOFT_RESET = "SoftReset"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"


@dataclass(frozen=True, slots=True)
class CpStateChanged:
    cp: CpState
    evse_drives_f: bool = False  # the MCU itself drives -12 V (failsafe, post-fault hold)


@dataclass(frozen=True, slots=True)
class TagPresented:
    """An id tag was read locally (RFID, QR)."""

    id_tag: str


@dataclass(frozen=True, slots=True)
class AuthAccepted:
    id_tag: str


@dataclass(frozen=True, slots=True)
class AuthRejected:
    id_tag: str


@dataclass(frozen=True, slots=True)
class RemoteStartRequested:
    """The CSMS asked to start a session for ``id_tag`` (already authorized by the CSMS)."""

    id_tag: str


@dataclass(frozen=True, slots=True)
class StopRequested:
    reason: StopReason


@dataclass(frozen=True, slots=True)
class FaultRaised:
    fault: Fault


@dataclass(frozen=True, slots=True)
class FaultCleared:
    fault: Fault


@dataclass(frozen=True, slots=True)
class CableRatingRead:
    """The PP resistor was read: the cable carries at most ``max_current_a`` (0 = no reading)."""

    max_current_a: float


@dataclass(frozen=True, slots=True)
class CurrentMeasured:
    """The meter's highest phase current."""

    amps: float


@dataclass(frozen=True, slots=True)
class LimitChanged:
    """An external limit (smart charging, load management); None removes it."""

    max_current_a: float | None


@dataclass(frozen=True, slots=True)
class AvailabilityChanged:
    """Operative (True) or Inoperative (False); Inoperative waits for a running transaction."""

    operative: bool


@dataclass(frozen=True, slots=True)
class UnlockRequested:
    """Unlock the connector (e.g. OCPP UnlockConnector): a running transaction ends first;
    a session authorized but not started is given up."""


@dataclass(frozen=True, slots=True)
class LockPositionRead:
    """The lock's position feedback changed (True = locked)."""

    locked: bool


@dataclass(frozen=True, slots=True)
class AuthorizationRevoked:
    """The CSMS refused the running transaction's idTag after it started, and the transaction
    is to go on without energy (OCPP 1.6 §4.8, StopTransactionOnInvalidId false): the PWM
    stops and the contactor opens (SuspendedEVSE) until the transaction ends."""


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    """Policy changed at run time (e.g. through OCPP ChangeConfiguration)."""

    settings: Settings


@dataclass(frozen=True, slots=True)
class ReservationChanged:
    """A reservation now holds the connector (True) or no longer does: while held, the connector
    shows Reserved when idle, and free mode does not start a session on it."""

    reserved: bool


@dataclass(frozen=True, slots=True)
class TimePassed:
    """Periodic tick so time-based rules (debounce, timeouts) can fire."""


Event = (
    CpStateChanged
    | TagPresented
    | AuthAccepted
    | AuthRejected
    | RemoteStartRequested
    | StopRequested
    | FaultRaised
    | FaultCleared
    | CableRatingRead
    | CurrentMeasured
    | LimitChanged
    | AvailabilityChanged
    | UnlockRequested
    | LockPositionRead
    | AuthorizationRevoked
    | SettingsChanged
    | ReservationChanged
    | TimePassed
)
