"""Connector status for OCPP 1.6 (§4.9, §7.7), computed from the charging core's state."""

from __future__ import annotations

from evsed.charging.faults import FAULT_DETAILS, Fault
from evsed.charging.state import ConnectorState, Phase

# Most severe first: the first active fault in this order names the errorCode.
ERROR_CODES: dict[Fault, str] = {
    Fault.RCD_TRIPPED: "GroundFailure",
    Fault.CONTACTOR_WELDED: "PowerSwitchFailure",
    Fault.CONTACTOR_STUCK_OPEN: "PowerSwitchFailure",
    Fault.OVER_TEMPERATURE: "HighTemperature",
    Fault.OVER_CURRENT: "OverCurrentFailure",
    Fault.CONNECTOR_LOCK: "ConnectorLockFailure",
    Fault.MCU_LINK_LOST: "InternalError",
    Fault.MCU_FAILSAFE: "InternalError",
    Fault.STORAGE_FAILURE: "InternalError",
    Fault.CP_DIODE: "EVCommunicationError",
    Fault.CP_STATE_E: "EVCommunicationError",
    Fault.CP_STATE_F: "EVCommunicationError",
    Fault.METER_FAILURE: "PowerMeterFailure",
}

Detail = tuple[str | None, str | None]  # StatusNotification info, vendorErrorCode

_BY_PHASE = {
    Phase.IDLE: "Available",
    Phase.WAITING_FOR_AUTH: "Preparing",
    Phase.WAITING_FOR_PLUG: "Preparing",
    Phase.SUSPENDED_EV: "SuspendedEV",
    Phase.SUSPENDED_EVSE: "SuspendedEVSE",
    Phase.CHARGING: "Charging",
    Phase.STOPPING: "Finishing",
    Phase.FINISHED: "Finishing",
    Phase.UNAVAILABLE: "Unavailable",
}


def connector_status(state: ConnectorState) -> tuple[str, str]:
    """(status, errorCode) for StatusNotification.

    A fault that blocks charging makes the connector Faulted; one that does not (a meter
    failure with ``require_meter = false``) is reported as errorCode with the normal status.
    """
    error = next((code for fault, code in ERROR_CODES.items() if fault in state.faults), "NoError")
    if state.blocking_faults:
        return "Faulted", error
    if state.phase is Phase.IDLE and state.reserved:
        return "Reserved", error  # §5.13: held for a reservation
    return _BY_PHASE[state.phase], error


def fault_detail(state: ConnectorState) -> Detail:
    """(info, vendorErrorCode) of the fault that names the errorCode (§7.40: CiString50 each),
    with how many more faults there are; (None, None) without a fault."""
    faults = [fault for fault in ERROR_CODES if fault in state.faults]
    if not faults:
        return None, None
    vendor, info = FAULT_DETAILS[faults[0]]
    if len(faults) > 1:
        more = f" (+{len(faults) - 1} more)"
        info = info[: 50 - len(more)] + more
    return info[:50], vendor[:50]
