"""What ``evsectl status`` shows of a connector: plain data from the connector's port and the
CSMS client's view of it (its status words are the client's version's)."""

from __future__ import annotations

from typing import Any

from evsed.charging.state import PilotSignal
from evsed.port import Connector


def connector_snapshot(
    connector: Connector,
    status: tuple[str, str],
    transaction_id: int | None,
    limit: tuple[float | None, str],
) -> dict[str, Any]:
    state = connector.state
    ocpp_status, error = status
    reading = connector.meter_reading
    pilot = connector.pilot_status
    return {
        "id": connector.connector_id,
        "phase": str(state.phase),
        "ocpp_status": ocpp_status,
        "error_code": error,
        "cp_state": str(state.cp) if pilot else None,
        "pwm_current_a": state.pwm_a if state.pilot is PilotSignal.PWM else None,
        "pilot": state.pilot.value,
        "cable_max_current_a": state.cable_a,
        "limit_a": state.limit_a,
        # The most it may offer now and what sets it: installation, cable, charging profile,
        # supply or site.
        "limit": {"amps": limit[0], "source": limit[1]},
        "contactor_closed": state.contactor_closed,
        # None for a tethered cable (no lock); otherwise what the lock's feedback says.
        "locked": state.lock_confirmed if state.settings.has_lock else None,
        "id_tag": state.auth_tag,
        "transaction_active": state.tx_active,
        "transaction_id": transaction_id,
        "energy_wh": round(reading.energy_import_wh, 1) if reading else None,
        "power_w": round(reading.power_w, 1) if reading else None,
        "current_a": [round(a, 2) for a in reading.current_a] if reading else None,
        "voltage_v": [round(v, 1) for v in reading.voltage_v] if reading else None,
        "faults": sorted(str(f) for f in state.faults),
        "mcu": {
            "link_ok": connector.pilot_link_ok,
            "firmware_version": pilot.firmware_version if pilot else None,
            "reset_reason": pilot.reset_reason if pilot else None,
            "relay_closed": pilot.relay_closed if pilot else None,
            "link_stats": connector.pilot_stats,
        },
    }
