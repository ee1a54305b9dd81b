"""A twin-socket charger: two connectors, each with its own MCU link, meter and contactor, one
OCPP connection, one supply. The daemon runs as a process against the development CSMS on
simulated hardware: two simulated MCUs on their own pseudo-terminals, one Modbus server that
answers each connector's meter at its own device id, mock GPIO pins per connector.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from oca_support import TAG, answer_to, mark, since

from evsed_devtools.harness import DevCsms, Evsed, wait_for

OTHER = "PARENT01"  # the csms fixture accepts both tags


def _twin(start_evsed: Callable[..., Evsed], csms: DevCsms, **sections: Any) -> Evsed:
    evsed = start_evsed(csms.ws_url, connectors=2, **sections)
    evsed.wait_registered()
    wait_for(lambda: len(_reported(csms)) == 3, what="a status for connectors 0, 1 and 2")
    return evsed


def _reported(csms: DevCsms, start: int = 0) -> dict[int, str]:
    return {
        m["payload"]["connectorId"]: m["payload"]["status"]
        for m in csms.calls("CP01", "StatusNotification")
        if m["i"] >= start
    }


def _statuses_of(csms: DevCsms, connector_id: int, start: int = 0) -> list[str]:
    return [
        m["payload"]["status"]
        for m in csms.calls("CP01", "StatusNotification")
        if m["payload"]["connectorId"] == connector_id and m["i"] >= start
    ]


def _end(evsed: Evsed, connector: int) -> None:
    evsed.sim("ev-state", "B", connector=connector)
    evsed.sim("unplug", connector=connector)


def test_two_overlapping_sessions_have_their_own_transactions_and_readings(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    assert [c["id"] for c in evsed.status()["connectors"]] == [1, 2]
    evsed.charge(TAG, connector=1)
    wait_for(lambda: (evsed.connector(1)["energy_wh"] or 0) >= 3, what="energy on connector 1")
    evsed.charge(OTHER, connector=2)  # the first car is still charging
    wait_for(lambda: (evsed.connector(2)["energy_wh"] or 0) >= 3, what="energy on connector 2")
    assert evsed.connector(1)["contactor_closed"] and evsed.connector(2)["contactor_closed"]
    _end(evsed, 1)
    wait_for(lambda: len(csms.calls("CP01", "StopTransaction")) == 1, what="first stop")
    assert evsed.connector(2)["contactor_closed"]  # the other session goes on
    time.sleep(1.0)
    _end(evsed, 2)
    wait_for(lambda: len(csms.calls("CP01", "StopTransaction")) == 2, what="second stop")

    starts = {m["payload"]["connectorId"]: m for m in csms.calls("CP01", "StartTransaction")}
    assert starts[1]["payload"]["idTag"] == TAG and starts[2]["payload"]["idTag"] == OTHER
    ids = {cid: answer_to(csms, start)["transactionId"] for cid, start in starts.items()}
    assert ids[1] != ids[2]
    stops = {
        m["payload"]["transactionId"]: m["payload"] for m in csms.calls("CP01", "StopTransaction")
    }
    for cid in (1, 2):
        stop = stops[ids[cid]]
        assert stop["meterStop"] > starts[cid]["payload"]["meterStart"]
        assert stop["reason"] == "EVDisconnected"
    # Each connector's meter counts its own car: connector 1 charged longer.
    delivered = {
        cid: stops[ids[cid]]["meterStop"] - starts[cid]["payload"]["meterStart"] for cid in (1, 2)
    }
    assert delivered[1] > delivered[2] > 0
    for m in csms.calls("CP01", "MeterValues"):
        payload = m["payload"]
        if "transactionId" in payload:
            cid = payload["connectorId"]
            assert payload["transactionId"] == ids[cid]


def test_each_connector_and_the_charge_point_report_their_own_status(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    assert _reported(csms) == {0: "Available", 1: "Available", 2: "Available"}
    start = mark(csms)
    evsed.sim("plug", connector=2)
    wait_for(lambda: _reported(csms, start).get(2) == "Preparing", what="connector 2 Preparing")
    assert 1 not in _reported(csms, start)
    assert evsed.connector(1)["ocpp_status"] == "Available"
    assert evsed.connector(2)["ocpp_status"] == "Preparing"


def test_remote_start_on_connector_2_and_without_a_connector(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    evsed.sim("plug", connector=2)
    answer = csms.result("RemoteStartTransaction", {"idTag": TAG, "connectorId": 2})
    assert answer == {"status": "Accepted"}
    (start,) = csms.wait_for_calls("StartTransaction")
    assert start["payload"]["connectorId"] == 2
    assert evsed.connector(1)["transaction_active"] is False
    # Without connectorId the charger picks a free connector: 1, as 2 is busy.
    assert csms.result("RemoteStartTransaction", {"idTag": OTHER}) == {"status": "Accepted"}
    wait_for(lambda: evsed.connector(1)["id_tag"] == OTHER, what="connector 1 authorized")
    evsed.sim("plug", connector=1)
    starts = csms.wait_for_calls("StartTransaction", 2)
    assert [s["payload"]["connectorId"] for s in starts] == [2, 1]
    # Nothing left: a third remote start is refused.
    assert csms.result("RemoteStartTransaction", {"idTag": TAG}) == {"status": "Rejected"}


def test_change_availability_of_connector_0_makes_both_unavailable_scheduled_while_charging(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    evsed.charge(TAG, connector=2)
    start = mark(csms)
    answer = csms.result("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert answer == {"status": "Scheduled"}  # connector 2 is charging
    wait_for(lambda: _reported(csms, start).get(1) == "Unavailable", what="connector 1 Unavailable")
    assert evsed.connector(2)["contactor_closed"]
    assert 0 not in _reported(csms, start)  # a transaction is left on the charge point
    _end(evsed, 2)
    wait_for(lambda: _reported(csms, start).get(0) == "Unavailable", what="connector 0 Unavailable")
    assert _reported(csms, start) == {0: "Unavailable", 1: "Unavailable", 2: "Unavailable"}
    assert csms.result("RemoteStartTransaction", {"idTag": TAG}) == {"status": "Rejected"}
    answer = csms.result("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert answer == {"status": "Accepted"}
    wait_for(
        lambda: _reported(csms, start) == {0: "Available", 1: "Available", 2: "Available"},
        what="all Available again",
    )


def test_reset_ends_both_transactions(csms: DevCsms, start_evsed: Callable[..., Evsed]) -> None:
    evsed = _twin(start_evsed, csms, charger={"reboot_command": ""})
    evsed.charge(TAG, connector=1)
    evsed.charge(OTHER, connector=2)
    start = mark(csms)
    assert csms.result("Reset", {"type": "Soft"}) == {"status": "Accepted"}
    wait_for(lambda: _reported(csms, start).get(2) == "Finishing", what="stopping")
    for cid in (1, 2):
        evsed.sim("ev-state", "B", connector=cid)
    wait_for(lambda: len(csms.calls("CP01", "BootNotification")) == 2, what="the restart")
    stops = [m["payload"] for m in since(csms, start) if m["action"] == "StopTransaction"]
    assert sorted(s["reason"] for s in stops) == ["SoftReset", "SoftReset"]
    assert len({s["transactionId"] for s in stops}) == 2


def test_kill_9_with_two_open_transactions_ends_both_with_power_loss_once(
    tmp_path: Path, csms: DevCsms
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url, connectors=2)
    evsed.wait_registered()
    evsed.charge(TAG, connector=1)
    evsed.charge(OTHER, connector=2)
    wait_for(lambda: min(evsed.connector(c)["energy_wh"] or 0 for c in (1, 2)) >= 3, what="energy")
    samples = {c: evsed.connector(c)["energy_wh"] for c in (1, 2)}
    evsed.kill()
    assert not csms.calls("CP01", "StopTransaction")

    evsed = Evsed.launch(evsed.config, tmp_path / "evsed.log")
    try:
        wait_for(lambda: len(csms.calls("CP01", "StopTransaction")) == 2, what="two stops")
        time.sleep(1.0)
    finally:
        assert evsed.stop() == 0
    stops = csms.calls("CP01", "StopTransaction")
    assert len(stops) == 2  # once each, not again at the orderly stop
    starts = {m["payload"]["connectorId"]: m for m in csms.calls("CP01", "StartTransaction")}
    for cid in (1, 2):
        tx = answer_to(csms, starts[cid])["transactionId"]
        (stop,) = [s["payload"] for s in stops if s["payload"]["transactionId"] == tx]
        assert stop["reason"] == "PowerLoss"
        # Its own connector's meter: at least what it showed before the kill.
        assert stop["meterStop"] >= int(samples[cid])
        assert stop["meterStop"] > starts[cid]["payload"]["meterStart"]


def test_a_fault_on_one_connector_does_not_stop_the_other(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    evsed.charge(TAG, connector=1)
    evsed.charge(OTHER, connector=2)
    # Both Charging statuses are in before the mark: only what the fault causes comes after.
    wait_for(
        lambda: [_reported(csms).get(c) for c in (1, 2)] == ["Charging"] * 2, what="both Charging"
    )
    start = mark(csms)
    evsed.sim("fault", "rcd", connector=1)
    wait_for(lambda: _reported(csms, start).get(1) == "Faulted", what="connector 1 Faulted")
    assert not evsed.connector(1)["contactor_closed"]
    assert "rcd-tripped" in evsed.connector(1)["faults"]
    time.sleep(0.5)
    connector2 = evsed.connector(2)
    assert connector2["contactor_closed"] and connector2["faults"] == []
    assert 2 not in _reported(csms, start)
    assert not csms.calls("CP01", "StopTransaction")


def _offers(evsed: Evsed) -> tuple[float, ...]:
    """What each simulated MCU's PWM offers now (A), as the cars see it."""
    return tuple(c["offered_current_a"] for c in evsed.status()["sim"]["connectors"])


def test_the_supply_budget_is_shared_and_given_back(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms, charging={"supply_max_current_a": 20.0})
    evsed.charge(TAG, connector=1)
    wait_for(lambda: _offers(evsed)[0] == 16.0, what="connector 1 alone gets its 16 A")
    seen: list[tuple[float, ...]] = []

    def watch(until: Callable[[], bool], what: str) -> None:
        def check() -> bool:
            seen.append(_offers(evsed))
            return until()

        wait_for(check, timeout=20, what=what)

    evsed.charge(OTHER, connector=2)
    watch(lambda: _offers(evsed) == (10.0, 10.0), "a fair share each")
    assert [c["limit_a"] for c in evsed.status()["connectors"]] == [10.0, 10.0]
    _end(evsed, 2)
    # Given back: connector 1 rises again (at most every 5 s, so not at once).
    watch(lambda: _offers(evsed)[0] == 16.0, "connector 1 back to 16 A")
    assert all(sum(offers) <= 20.0 for offers in seen), seen
    assert len(seen) > 10


def test_two_meters_on_one_rtu_line_are_read_through_one_client(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms, hal__sim={"meter_transport": "rtu"})
    line = evsed.status()["sim"]["meter"]
    assert line["transport"] == "rtu"
    evsed.charge(TAG, connector=2)
    wait_for(lambda: (evsed.connector(2)["energy_wh"] or 0) >= 3, what="energy on connector 2")
    assert evsed.connector(1)["energy_wh"] == 0  # its own device id: nothing drawn there
    assert "meter-failure" not in evsed.connector(1)["faults"]
    # The two meters share one client: the daemon has the line open once, beside the one end
    # the simulated line itself keeps open (the simulator runs in the daemon's process).
    fds = Path(f"/proc/{evsed.proc.pid}/fd")
    target = os.path.realpath(line["serial_port"])
    opened = [fd for fd in fds.iterdir() if os.path.realpath(fd) == target]
    assert len(opened) == 2, opened


@pytest.mark.parametrize("verb", [("network", "down"), ("stall", "10")])
def test_charger_wide_sim_verbs_take_no_connector(
    csms: DevCsms, start_evsed: Callable[..., Evsed], verb: tuple[str, str]
) -> None:
    evsed = _twin(start_evsed, csms)
    refused = evsed.ctl("sim", "--connector", "2", *verb)
    assert refused.returncode == 1 and "charger-wide" in refused.stderr
    unknown = evsed.ctl("sim", "--connector", "3", "plug")
    assert unknown.returncode == 1 and "no connector 3" in unknown.stderr
    text = evsed.ctl("status").stdout
    assert "connector 1:" in text and "connector 2:" in text
