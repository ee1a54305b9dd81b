"""End to end: the daemon as a process, the development CSMS over a real websocket, and the
simulated hardware over a real pty, Modbus TCP and mock GPIO, driven only through evsectl."""

from pathlib import Path

from evsed_devtools.harness import DevCsms, Evsed, wait_for

TAG = "04E91C2A"


def statuses(csms: DevCsms) -> list[str]:
    return [
        m["payload"]["status"]
        for m in csms.calls("CP01", "StatusNotification")
        if m["payload"]["connectorId"] == 1
    ]


def test_plug_swipe_charge_unplug_reports_the_session_in_order(
    tmp_path: Path, csms: DevCsms
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        evsed.wait_registered()
        wait_for(lambda: "Available" in statuses(csms), what="Available")

        evsed.sim("plug")
        wait_for(lambda: evsed.connector()["ocpp_status"] == "Preparing", what="Preparing")
        evsed.sim("swipe", TAG)
        wait_for(lambda: evsed.connector()["pwm_current_a"] == 16.0, what="PWM on")
        evsed.sim("ev-current", "10")
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="contactor closed")
        wait_for(lambda: (evsed.connector()["power_w"] or 0) > 6000, what="power flowing")
        wait_for(lambda: csms.calls("CP01", "MeterValues"), what="MeterValues")
        charging = evsed.connector()
        assert charging["ocpp_status"] == "Charging"
        assert charging["transaction_id"] == 1
        text = evsed.ctl("status").stdout
        assert "connector 1: Charging (Charging)  CP C  PWM 16.0" in text
        assert "contactor closed  tx 1  id 04E91C2A" in text

        evsed.sim("ev-state", "B")
        wait_for(lambda: not evsed.connector()["contactor_closed"], what="contactor open")
        evsed.sim("unplug")
        wait_for(lambda: csms.calls("CP01", "StopTransaction"), what="StopTransaction")
        wait_for(lambda: statuses(csms)[-1:] == ["Available"], what="Available again")
    finally:
        assert evsed.stop() == 0, evsed.log()

    calls = [m["action"] for m in csms.calls("CP01")]
    core = [
        a
        for a in calls
        if a in ("BootNotification", "Authorize", "StartTransaction", "StopTransaction")
    ]
    assert core == ["BootNotification", "Authorize", "StartTransaction", "StopTransaction"]
    assert calls[0] == "BootNotification"
    assert calls.index("Authorize") < calls.index("StartTransaction")
    assert calls.index("StartTransaction") < calls.index("MeterValues")
    assert calls.index("MeterValues") < calls.index("StopTransaction")
    assert statuses(csms) == [
        "Available",
        "Preparing",
        "SuspendedEV",
        "Charging",
        "SuspendedEV",
        "Available",
    ]

    # The transaction message goes before the status change it caused (OCA TC_005).
    last_status = max(i for i, a in enumerate(calls) if a == "StatusNotification")
    assert calls.index("StopTransaction") < last_status
    labels = [
        m["payload"].get("status", m["action"])
        if m["action"] == "StatusNotification"
        else m["action"]
        for m in csms.calls("CP01")
    ]
    assert labels.index("StartTransaction") < labels.index("SuspendedEV")

    start = csms.calls("CP01", "StartTransaction")[0]["payload"]
    stop = csms.calls("CP01", "StopTransaction")[0]["payload"]
    assert start["idTag"] == TAG and start["connectorId"] == 1
    assert stop["transactionId"] == 1
    assert stop["reason"] == "EVDisconnected"
    assert stop["meterStop"] > start["meterStart"]
    for sample in csms.calls("CP01", "MeterValues"):
        assert sample["payload"]["transactionId"] == 1
        measurands = {
            v.get("measurand") for v in sample["payload"]["meterValue"][0]["sampledValue"]
        }
        assert "Energy.Active.Import.Register" in measurands


def test_remote_start_and_remote_stop(tmp_path: Path, csms: DevCsms) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        evsed.wait_registered()
        evsed.sim("plug")
        answer = csms.api("/api/remote-start", {"cp": "CP01", "id_tag": "PARENT01"})
        assert answer["result"]["status"] == "Accepted"
        wait_for(lambda: evsed.connector()["transaction_id"] == 1, what="transaction id")
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="contactor closed")

        answer = csms.api("/api/remote-stop", {"cp": "CP01", "transaction_id": 1})
        assert answer["result"]["status"] == "Accepted"
        # The car sees the PWM stop and goes to B; only then does the contactor open.
        wait_for(lambda: evsed.connector()["pilot"] == "off", what="PWM off")
        assert evsed.connector()["contactor_closed"]
        evsed.sim("ev-state", "B")
        wait_for(lambda: csms.calls("CP01", "StopTransaction"), what="StopTransaction")
        assert not evsed.connector()["contactor_closed"]
        assert evsed.connector()["ocpp_status"] == "Finishing"
        unknown = csms.api("/api/remote-stop", {"cp": "CP01", "transaction_id": 99})
        assert unknown["result"]["status"] == "Rejected"
    finally:
        assert evsed.stop() == 0, evsed.log()
    stop = csms.calls("CP01", "StopTransaction")[0]["payload"]
    assert stop["reason"] == "Remote" and stop["transactionId"] == 1
    assert "Authorize" not in [m["action"] for m in csms.calls("CP01")]
