"""OCPP 1.6J behaviour of the daemon process: boot gating, heartbeat, offline transactions and
recovery after a crash. The CSMS is the development CSMS on 127.0.0.1."""

from pathlib import Path

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def test_boot_pending_sends_nothing_else_until_accepted(tmp_path: Path) -> None:
    csms = DevCsms.start(tmp_path, "--boot-status", "Pending", "--heartbeat-interval", "1")
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        wait_for(lambda: len(csms.calls("CP01", "BootNotification")) >= 2, what="boot retry")
        evsed.sim("plug")  # would produce a StatusNotification if boot gating failed
        wait_for(lambda: len(csms.calls("CP01", "BootNotification")) >= 3, what="boot retry")
        assert {m["action"] for m in csms.calls("CP01")} == {"BootNotification"}
        assert evsed.status()["ocpp"]["registration"] == "Pending"

        csms.api("/api/boot-status", {"status": "Accepted"})

        def statuses() -> dict[int, str]:
            return {
                m["payload"]["connectorId"]: m["payload"]["status"]
                for m in csms.calls("CP01", "StatusNotification")
            }

        wait_for(lambda: len(statuses()) == 2, what="statuses after accept")
        assert statuses() == {0: "Available", 1: "Preparing"}
    finally:
        assert evsed.stop() == 0
        csms.stop()


def test_heartbeat_follows_the_interval_from_boot_notification(tmp_path: Path) -> None:
    csms = DevCsms.start(tmp_path, "--heartbeat-interval", "1")
    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        wait_for(lambda: len(csms.calls("CP01", "Heartbeat")) >= 3, timeout=10, what="heartbeats")
    finally:
        assert evsed.stop() == 0
        csms.stop()


def test_transaction_while_offline_is_delivered_in_order_after_reconnect(
    tmp_path: Path, csms: DevCsms
) -> None:
    evsed = Evsed.start(
        tmp_path,
        csms.ws_url,
        charging={
            "free_mode": True,
            "free_mode_id_tag": "04E91C2A",
            "meter_values_interval_s": 0.5,
        },
    )
    try:
        evsed.wait_registered()
        evsed.sim("network", "down")
        wait_for(lambda: evsed.status()["ocpp"]["connection"] == "network-down", what="down")
        evsed.sim("plug")
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="charging offline")
        wait_for(lambda: (evsed.connector()["energy_wh"] or 0) >= 2, what="energy")
        # StartTransaction and at least one periodic MeterValues (every 1 s) are queued.
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 2, what="a queued sample")
        evsed.sim("ev-state", "B")
        evsed.sim("unplug")
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 3, what="queued")
        assert not csms.calls("CP01", "StartTransaction")

        evsed.sim("network", "up")
        wait_for(lambda: csms.calls("CP01", "StopTransaction"), what="StopTransaction")
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] == 0, what="outbox drained")
    finally:
        assert evsed.stop() == 0
    actions = [
        m["action"]
        for m in csms.calls("CP01")
        if m["action"] in ("StartTransaction", "MeterValues", "StopTransaction")
    ]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
    assert set(actions[1:-1]) == {"MeterValues"}
    start = csms.calls("CP01", "StartTransaction")[0]["payload"]
    stop = csms.calls("CP01", "StopTransaction")[0]["payload"]
    tx_id = 1  # the CSMS's id from StartTransaction.conf replaces the local one
    assert stop["transactionId"] == tx_id
    assert all(m["payload"]["transactionId"] == tx_id for m in csms.calls("CP01", "MeterValues"))
    assert stop["meterStop"] > start["meterStart"]
    # Offline records keep the time they happened, not the time they were delivered.
    assert start["timestamp"] < stop["timestamp"]


def test_kill_9_while_charging_then_restart_reports_power_loss_once(
    tmp_path: Path, csms: DevCsms
) -> None:
    evsed = Evsed.start(tmp_path, csms.ws_url)
    evsed.wait_registered()
    evsed.charge()
    wait_for(lambda: csms.calls("CP01", "MeterValues"), what="a meter sample")
    evsed.kill()
    assert not csms.calls("CP01", "StopTransaction")

    evsed = Evsed.start(tmp_path, csms.ws_url)
    try:
        wait_for(lambda: csms.calls("CP01", "StopTransaction"), what="StopTransaction")
        assert not evsed.connector()["contactor_closed"]
    finally:
        assert evsed.stop() == 0
    stops = csms.calls("CP01", "StopTransaction")
    assert len(stops) == 1
    stop = stops[0]["payload"]
    assert stop["reason"] == "PowerLoss" and stop["transactionId"] == 1
    sampled = max(
        float(v["value"])
        for m in csms.calls("CP01", "MeterValues")
        for v in m["payload"]["meterValue"][0]["sampledValue"]
        if v["measurand"] == "Energy.Active.Import.Register"
    )
    assert stop["meterStop"] >= sampled
    assert len(csms.calls("CP01", "StartTransaction")) == 1
