"""Simulated faults end to end: the contactor opens and the CSMS learns the right errorCode."""

import time
from pathlib import Path

import pytest
from tests_support import charging, last_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for


@pytest.mark.parametrize(
    ("fault", "error_code", "daemon_fault"),
    [
        ("rcd", "GroundFailure", "rcd-tripped"),
        ("overtemp", "HighTemperature", "over-temperature"),
        ("meter-offline", "PowerMeterFailure", "meter-failure"),
        ("mcu-silent", "InternalError", "mcu-link-lost"),
        ("diode", "EVCommunicationError", "cp-diode"),
    ],
)
def test_fault_while_charging_opens_contactor_and_reports_faulted(
    tmp_path: Path, csms: DevCsms, fault: str, error_code: str, daemon_fault: str
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)
        evsed.sim("fault", fault)
        wait_for(lambda: daemon_fault in evsed.connector()["faults"], what=daemon_fault)
        assert not evsed.connector()["contactor_closed"]
        assert evsed.status()["sim"]["connectors"][0]["contacts_closed"] is False
        wait_for(lambda: last_status(csms) == ("Faulted", error_code), what="Faulted")

        evsed.sim("clear", fault)
        if fault == "rcd":  # GroundFailure clears only once the car is unplugged
            evsed.sim("unplug")
        wait_for(lambda: not evsed.connector()["faults"], timeout=10, what="fault cleared")
        wait_for(lambda: (last_status(csms) or ("", ""))[1] == "NoError", what="NoError")
        if fault != "rcd":
            # The transaction survived the fault: power comes back once it clears.
            wait_for(lambda: evsed.connector()["contactor_closed"], what="contactor closed")
    finally:
        assert evsed.stop() == 0


def test_welded_contactor_is_detected_and_latched(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)
        evsed.sim("fault", "weld")
        evsed.sim("ev-state", "B")  # the daemon opens the contactor; the mirror stays closed
        wait_for(lambda: "contactor-welded" in evsed.connector()["faults"], what="weld")
        wait_for(lambda: last_status(csms) == ("Faulted", "PowerSwitchFailure"), what="Faulted")
        evsed.sim("clear", "weld")
        evsed.sim("unplug")
        # Latched: repairing the contactor does not clear the fault by itself.
        wait_for(lambda: csms.calls("CP01", "StopTransaction"), what="StopTransaction")
        assert "contactor-welded" in evsed.connector()["faults"]
        # A welded contactor blocks new sessions until someone clears it.
        evsed.sim("plug")
        evsed.sim("swipe", "04E91C2A")
        time.sleep(0.5)
        assert len(csms.calls("CP01", "Authorize")) == 1
        assert evsed.connector()["pilot"] != "pwm"
        assert evsed.ctl("clear-faults").stdout.strip() == "cleared: contactor-welded"
        wait_for(lambda: last_status(csms) == ("Preparing", "NoError"), what="Preparing")
        evsed.sim("unplug")
        wait_for(lambda: last_status(csms) == ("Available", "NoError"), what="Available")
    finally:
        assert evsed.stop() == 0


def test_meter_failure_does_not_stop_charging_when_the_meter_is_optional(
    tmp_path: Path, csms: DevCsms
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url, charging={"require_meter": False})
    try:
        charging(evsed)
        evsed.sim("fault", "meter-offline")
        wait_for(lambda: "meter-failure" in evsed.connector()["faults"], what="meter failure")
        wait_for(lambda: last_status(csms) == ("Charging", "PowerMeterFailure"), what="reported")
        assert evsed.connector()["contactor_closed"]
    finally:
        assert evsed.stop() == 0


def test_unknown_sim_fault_is_refused_with_the_known_names(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        result = evsed.ctl("sim", "fault", "lightning")
        assert result.returncode == 1
        assert "unknown fault 'lightning'" in result.stderr
        assert "weld" in result.stderr and "meter-offline" in result.stderr
        bad_state = evsed.ctl("sim", "ev-state", "Z")
        assert bad_state.returncode == 1 and "A-F" in bad_state.stderr
    finally:
        assert evsed.stop() == 0
