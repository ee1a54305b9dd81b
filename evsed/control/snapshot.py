"""What ``evsectl status`` shows of a connector: plain data built from the runner's state."""

from __future__ import annotations

from typing import Any

from evsed.charging.state import PilotSignal
from evsed.connector import ConnectorRunner
from evsed.ocpp.v16.status import connector_status


def connector_snapshot(runner: ConnectorRunner, transaction_id: int | None) -> dict[str, Any]:
    state = runner.state
    ocpp_status, error = connector_status(state)
    reading = runner.meter_reading
    pilot = runner.pilot_status
    return {
        "id": runner.connector_id,
        "phase": str(state.phase),
        "ocpp_status": ocpp_status,
        "error_code": error,
        "cp_state": str(state.cp) if pilot else None,
        "pwm_current_a": state.pwm_a if state.pilot is PilotSignal.PWM else None,
        "pilot": state.pilot.value,
        "cable_max_current_a": state.cable_a,
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
            "link_ok": runner.pilot_link_ok,
            "firmware_version": pilot.firmware_version if pilot else None,
            "reset_reason": pilot.reset_reason if pilot else None,
            "relay_closed": pilot.relay_closed if pilot else None,
            "link_stats": runner.pilot_stats,
        },
    }
