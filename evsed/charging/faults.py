"""Faults the charging core knows about, as data. OCPP error codes are mapped in the OCPP layer."""

from __future__ import annotations

import enum


class Fault(enum.StrEnum):
    """A condition that stops power flow while it is active."""

    MCU_LINK_LOST = "mcu-link-lost"  # no valid status frame from the CP MCU for 300 ms
    MCU_FAILSAFE = "mcu-failsafe"  # the MCU latched host_timeout or an internal fault
    METER_FAILURE = "meter-failure"  # energy meter unreadable
    RCD_TRIPPED = "rcd-tripped"
    OVER_TEMPERATURE = "over-temperature"
    CONTACTOR_WELDED = "contactor-welded"
    CONTACTOR_STUCK_OPEN = "contactor-stuck-open"
    CP_DIODE = "cp-diode"  # PWM running without the -12 V low level
    CP_STATE_E = "cp-state-e"  # CP shorted to PE
    CP_STATE_F = "cp-state-f"  # the CP line reads -12 V although the MCU is not driving it
    OVER_CURRENT = "over-current"  # the EV drew more than offered for 7 s; clears on unplug
    CONNECTOR_LOCK = "connector-lock"  # the lock did not reach its position; clears on unplug
    # The state database does not take writes (disk full, read-only): nothing may start or
    # flow that could not be recorded; clears when a write succeeds again.
    STORAGE_FAILURE = "storage-failure"


# What a technician is told of each fault: a vendor error code and a short text (both at most
# 50 characters, so they fit OCPP 1.6 StatusNotification vendorErrorCode and info).
FAULT_DETAILS: dict[Fault, tuple[str, str]] = {
    Fault.MCU_LINK_LOST: ("EVSED-MCU-LINK", "no status from the pilot MCU for 300 ms"),
    Fault.MCU_FAILSAFE: ("EVSED-MCU-FAILSAFE", "pilot MCU failsafe or internal fault"),
    Fault.METER_FAILURE: ("EVSED-METER", "energy meter does not answer"),
    Fault.RCD_TRIPPED: ("EVSED-RCD", "residual current trip; clears on unplug"),
    Fault.OVER_TEMPERATURE: ("EVSED-OVERTEMP", "over-temperature at the MCU sensor"),
    Fault.CONTACTOR_WELDED: ("EVSED-WELDED", "contactor welded; inspect, then clear"),
    Fault.CONTACTOR_STUCK_OPEN: ("EVSED-STUCK-OPEN", "contactor does not close; inspect"),
    Fault.CP_DIODE: ("EVSED-CP-DIODE", "EV diode missing on the control pilot"),
    Fault.CP_STATE_E: ("EVSED-CP-E", "control pilot shorted to PE (state E)"),
    Fault.CP_STATE_F: ("EVSED-CP-F", "control pilot at -12 V from outside"),
    Fault.OVER_CURRENT: ("EVSED-OVERCURRENT", "EV drew more than offered for 7 s"),
    Fault.CONNECTOR_LOCK: ("EVSED-LOCK", "connector lock did not reach position"),
    Fault.STORAGE_FAILURE: ("EVSED-STORAGE", "state database takes no writes"),
}
