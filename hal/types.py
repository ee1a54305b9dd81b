"""Values exchanged between the HAL and its users. Frozen, comparable, no behaviour."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CpState(enum.StrEnum):
    """Control-pilot state as read from the CP high level (IEC 61851-1 Table A.3)."""

    A = "A"  # +12 V: no EV connected
    B = "B"  # +9 V: EV connected, not ready
    C = "C"  # +6 V: EV ready, charging
    D = "D"  # +3 V: EV ready, charging, ventilation required
    E = "E"  # 0 V: CP shorted to PE or no supply
    F = "F"  # -12 V: EVSE not available


# PWM duty is carried in units of 0.01 %. Two values are not PWM but a constant level:
DUTY_STATE_F = 0  # constant -12 V: drive state F (EVSE not available)
DUTY_OFF = 10000  # constant +12 V: no PWM (states B1/C1)


@dataclass(frozen=True, slots=True)
class PilotControl:
    """What the host asks the MCU for; sent as a full-state frame every 100 ms."""

    duty: int = DUTY_OFF  # 0.01 % units; DUTY_OFF = no PWM, DUTY_STATE_F = state F
    allow_power: bool = False  # MCU may energise the contactor path
    lock: bool = False  # connector lock request: True = locked
    # Ask for a new lock attempt after one failed (spec §6.5): acted on when it goes 0 -> 1.
    lock_retry: bool = False
    ack_faults: bool = (
        False  # acknowledge (clear) faults the MCU has latched, if their cause is gone
    )


class McuFault(enum.IntFlag):
    """Fault flags latched by the MCU and reported in every status frame."""

    NONE = 0
    HOST_TIMEOUT = 0x01  # no valid host frame for 500 ms: relay path opened, state F driven
    DIODE = 0x02  # PWM running but no -12 V low level
    RCD = 0x04  # residual-current device tripped
    OVERTEMP = 0x08  # temperature above the MCU's limit
    LOCK = 0x10  # connector lock did not reach the requested position
    INTERNAL = 0x80  # MCU self-test failure


@dataclass(frozen=True, slots=True)
class PilotStatus:
    """One status frame from the CP MCU."""

    cp_state: CpState
    duty: int = DUTY_OFF  # duty the MCU is actually generating, 0.01 % units
    cp_high_mv: int = 12000
    cp_low_mv: int = -12000
    pp_max_current_a: int = 0  # cable rating read from PP; 0 = not present / not measured
    rcd_tripped: bool = False
    relay_closed: bool = False  # MCU's own relay-path feedback
    faults: McuFault = McuFault.NONE
    firmware_version: str = ""
    reset_reason: int = 0
    # -12 V low level seen while PWM runs (True when no PWM runs); McuFault.DIODE is its latch.
    diode_ok: bool = True
    # The MCU itself drives state F (host-timeout failsafe, post-fault hold, or host duty 0).
    # cp_state F with this False means -12 V on CP for another reason: a pilot-circuit fault.
    mcu_driving_f: bool = False
    # Lock position feedback: the connector lock is in the locked position (spec §6.5).
    locked: bool = False


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One poll of the energy meter. Units are SI: Wh, W, A, V, Hz."""

    energy_import_wh: float
    power_w: float = 0.0
    current_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    voltage_v: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frequency_hz: float = 0.0
    energy_export_wh: float | None = None
    power_per_phase_w: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))
