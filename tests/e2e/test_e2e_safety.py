"""Safety reactions of the daemon process (IEC 61851-1 Annex A, DESIGN.md fault table)."""

import contextlib
import time
from pathlib import Path

from tests_support import charging, last_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def test_state_e_opens_contactor_with_ev_communication_error(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)
        evsed.sim("ev-state", "E")
        wait_for(lambda: "cp-state-e" in evsed.connector()["faults"], what="state E fault")
        assert not evsed.connector()["contactor_closed"]
        wait_for(lambda: last_status(csms) == ("Faulted", "EVCommunicationError"), what="Faulted")
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="charging again")
    finally:
        assert evsed.stop() == 0


def test_overcurrent_for_7s_stops_with_overcurrent_failure(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)  # offered 16 A
        evsed.sim("ev-current", "20")
        evsed.sim("fault", "ev-overdraw")  # the car ignores the PWM and draws 20 A
        wait_for(lambda: (evsed.connector()["power_w"] or 0) > 13000, what="overdraw")
        assert evsed.connector()["contactor_closed"]  # tolerated for 7 s
        wait_for(
            lambda: "over-current" in evsed.connector()["faults"], timeout=12, what="over-current"
        )
        assert not evsed.connector()["contactor_closed"]
        wait_for(lambda: last_status(csms) == ("Faulted", "OverCurrentFailure"), what="Faulted")
        evsed.sim("clear", "ev-overdraw")
        evsed.sim("unplug")  # over-current clears when the car leaves
        wait_for(lambda: not evsed.connector()["faults"], what="cleared on unplug")
        wait_for(lambda: last_status(csms) == ("Available", "NoError"), what="Available")
    finally:
        assert evsed.stop() == 0


def test_stalled_daemon_trips_the_mcu_failsafe_then_recovers(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)
        # The simulated MCU shares the daemon's event loop: a host frame written just before
        # the stall is read only after it, late, and re-arms the MCU's watchdog. A real MCU
        # would have read it in time. So stall again (at most three times) until the MCU's
        # 500 ms failsafe has seen the silence; it must trip every time it does.
        tripped = "no valid host frame for 500 ms: failsafe"
        for _ in range(3):
            assert evsed.sim("stall", "800") == "event loop stalled for 800 ms"
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: tripped in evsed.log(), 1.0, "the MCU failsafe")
                break
        assert tripped in evsed.log()
        # It opened the relay path and latched host_timeout; the daemon reports it, then
        # acknowledges it.
        wait_for(lambda: _saw_status(csms, ("Faulted", "InternalError")), what="InternalError")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="charging resumes")
        assert not evsed.connector()["faults"]
    finally:
        assert evsed.stop() == 0


def _saw_status(csms: DevCsms, wanted: tuple[str, str]) -> bool:
    sent = [m["payload"] for m in csms.calls("CP01", "StatusNotification")]
    return any((p["status"], p["errorCode"]) == wanted for p in sent if p["connectorId"] == 1)


def test_unexpected_state_f_is_a_pilot_fault(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)
        evsed.sim("ev-state", "F")  # -12 V on the pilot that the MCU is not driving
        wait_for(lambda: "cp-state-f" in evsed.connector()["faults"], what="state F fault")
        assert not evsed.connector()["contactor_closed"]
        wait_for(lambda: last_status(csms) == ("Faulted", "EVCommunicationError"), what="Faulted")
        count = len(csms.calls("CP01", "StatusNotification"))
        time.sleep(1.0)  # no flapping while the line stays at -12 V
        assert len(csms.calls("CP01", "StatusNotification")) == count
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="charging again")
        assert not evsed.connector()["faults"]
    finally:
        assert evsed.stop() == 0


def test_status_shows_cable_rating_and_mcu_link_health(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url, hal__sim={"cable_rating_a": 13})
    try:
        charging(evsed)
        connector = evsed.connector()
        assert connector["cable_max_current_a"] == 13
        assert connector["pwm_current_a"] == 13.0  # clamped below max_current_a = 16
        mcu = connector["mcu"]
        assert mcu["link_ok"] and mcu["relay_closed"]
        assert mcu["link_stats"]["frames_ok"] > 0
        assert mcu["link_stats"]["bad_crc"] == 0
    finally:
        assert evsed.stop() == 0


def test_a_pilot_fault_does_not_flap_while_it_lasts(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        charging(evsed)
        before = len(csms.calls("CP01", "StatusNotification"))
        evsed.sim("ev-state", "E")
        wait_for(lambda: "cp-state-e" in evsed.connector()["faults"], what="state E fault")
        time.sleep(1.5)  # the pilot shows F, then +12 V, while E lasts
        assert "cp-state-e" in evsed.connector()["faults"]
        sent = [m["payload"] for m in csms.calls("CP01", "StatusNotification")][before:]
        assert [(p["status"], p["errorCode"]) for p in sent] == [
            ("Faulted", "EVCommunicationError")
        ]
    finally:
        assert evsed.stop() == 0
