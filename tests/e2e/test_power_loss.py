"""Power failures: the daemon is killed with SIGKILL, as by a power cut (nothing runs after it),
then started again on the same state directory, with the CSMS up or down.

OCA test cases (OCPP 1.6 Compliancy Testing Tool, "Power Failure"): TC_032_2_CS "Power failure
boot charging point - configured to stop transaction(s) after going down" and TC_034_CS "Power
Failure with Unavailable Status". TC_032_1_CS ("... configured to stop transaction(s) before
going down") needs a back-up power source and a power-fail input to act on, which this charger
does not have; the nearest thing, an orderly shutdown (SIGTERM), is tested below by behaviour.

The simulated car and its plug live in the daemon process, so after a kill -9 the connector
comes back unplugged (Available); the simulated meter keeps its register in the state
directory, as a real meter keeps counting through a crash of the charger's computer.
"""

from __future__ import annotations

import time
from pathlib import Path

from outbox_support import (
    TAG,
    TX_ACTIONS,
    Csms,
    drained,
    energy_wh,
    queued_actions,
    registered,
    statuses,
    utc_now,
)

from evsed_devtools.harness import Evsed, wait_for

CHARGING = {"meter_values_interval_s": 1.0}


def start_evsed(tmp_path: Path, csms: Csms, **charging: object) -> Evsed:
    return Evsed.start(tmp_path, csms.ws_url, charging={**CHARGING, **charging})


def charge(evsed: Evsed) -> None:
    evsed.sim("plug")
    evsed.sim("swipe", TAG)
    evsed.sim("ev-state", "C")
    wait_for(lambda: evsed.connector()["contactor_closed"], what="charging")


def test_tc_032_2_power_failure_while_charging_is_reported_with_power_loss_after_boot(
    tmp_path: Path,
) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms)
    try:
        registered(evsed)
        charge(evsed)
        wait_for(lambda: len(csms.calls("MeterValues")) >= 2, what="two meter samples")
        evsed.kill()
        before = csms.calls()
        assert not csms.calls("StopTransaction")

        evsed = start_evsed(tmp_path, csms)
        wait_for(lambda: csms.calls("StopTransaction"), what="StopTransaction")
        drained(evsed)
        connector = evsed.connector()
        assert connector["ocpp_status"] == "Available" and not connector["contactor_closed"]
        assert not connector["transaction_active"]

        # A later restart must not report the recovered transaction again.
        assert evsed.stop() == 0
        evsed = start_evsed(tmp_path, csms)
        registered(evsed)
        drained(evsed)
    finally:
        evsed.stop()
        csms.stop()

    calls = csms.calls()
    after = calls[len(before) :]
    assert [c["action"] for c in calls].count("BootNotification") == 3
    assert after[0]["action"] == "BootNotification"  # the charger booted again (§4.2)
    assert statuses(after, 0)[0] == "Available"
    # The transaction did not survive the power cut, and the simulated car left with the
    # process: the connector is free again.
    assert statuses(after, 1)[0] == "Available" and "Charging" not in statuses(after, 1)
    (start,) = [c for c in calls if c["action"] == "StartTransaction"]
    (stop,) = [c for c in calls if c["action"] == "StopTransaction"]
    samples = [c for c in before if c["action"] == "MeterValues"]
    assert stop in after and after.index(stop) > 0  # reported after the BootNotification
    payload = stop["payload"]
    assert payload["reason"] == "PowerLoss"
    assert payload["transactionId"] == start["answer"]["transactionId"]
    assert payload["idTag"] == TAG
    assert payload["meterStop"] >= max(wh for s in samples for wh in energy_wh(s["payload"]))
    assert payload["meterStop"] >= start["payload"]["meterStart"]
    assert payload["timestamp"] >= samples[-1]["payload"]["meterValue"][-1]["timestamp"]


def test_power_failure_while_offline_delivers_the_offline_start_and_the_stop_once(
    tmp_path: Path,
) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms, free_mode=True, free_mode_id_tag=TAG)
    try:
        registered(evsed)
        csms.stop()
        wait_for(lambda: evsed.status()["ocpp"]["connection"] != "connected", what="offline")
        evsed.sim("plug")
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["contactor_closed"], what="charging offline")
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 3, what="queued samples")
        evsed.kill()

        evsed = start_evsed(tmp_path, csms, free_mode=True, free_mode_id_tag=TAG)
        wait_for(lambda: not evsed.connector()["transaction_active"], what="recovery")
        queued = [a for a in queued_actions(tmp_path / "state") if a in TX_ACTIONS]
        back_online = utc_now()
        csms.start()
        registered(evsed)
        drained(evsed)
    finally:
        evsed.stop()
        csms.stop()

    sent = csms.calls(*TX_ACTIONS)
    actions = [c["action"] for c in sent]
    assert actions == queued  # what was committed before the CSMS came back, nothing else
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
    assert set(actions[1:-1]) == {"MeterValues"}
    start, stop = sent[0], sent[-1]
    transaction_id = start["answer"]["transactionId"]  # given only now, after the fact
    assert all(c["payload"]["transactionId"] == transaction_id for c in sent[1:])
    assert stop["payload"]["reason"] == "PowerLoss"
    # Recorded when it happened, not when it was delivered.
    assert start["payload"]["timestamp"] < stop["payload"]["timestamp"] < back_online
    wh = [w for c in sent[1:-1] for w in energy_wh(c["payload"])]
    assert start["payload"]["meterStart"] <= min(wh) <= max(wh) <= stop["payload"]["meterStop"]


def test_killed_again_before_the_power_loss_stop_was_delivered_it_is_reported_once(
    tmp_path: Path,
) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms)
    try:
        registered(evsed)
        charge(evsed)
        wait_for(lambda: csms.calls("StartTransaction"), what="StartTransaction")
        csms.stop()
        evsed.kill()
        evsed = start_evsed(tmp_path, csms)  # recovery queues StopTransaction(PowerLoss)
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 1, what="queued stop")
        evsed.kill()
        evsed = start_evsed(tmp_path, csms)
        evsed.kill()
        evsed = start_evsed(tmp_path, csms)
        csms.start()
        registered(evsed)
        drained(evsed)
    finally:
        evsed.stop()
        csms.stop()

    (start,) = csms.calls("StartTransaction")
    (stop,) = csms.calls("StopTransaction")
    assert stop["payload"]["reason"] == "PowerLoss"
    assert stop["payload"]["transactionId"] == start["answer"]["transactionId"]
    assert evsed.log().count("was open at start-up: stopping it (PowerLoss)") == 1


def test_killed_after_a_local_stop_was_queued_the_stop_keeps_its_reason(tmp_path: Path) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms)
    try:
        registered(evsed)
        charge(evsed)
        wait_for(lambda: csms.calls("StartTransaction"), what="StartTransaction")
        csms.stop()
        evsed.sim("swipe", TAG)  # the driver ends the session while the CSMS is away
        wait_for(lambda: evsed.connector()["pilot"] != "pwm", what="PWM off")
        evsed.sim("ev-state", "B")
        wait_for(lambda: not evsed.connector()["transaction_active"], what="stopped")
        wait_for(lambda: evsed.status()["ocpp"]["outbox_pending"] >= 1, what="queued stop")
        evsed.kill()
        evsed = start_evsed(tmp_path, csms)
        csms.start()
        registered(evsed)
        drained(evsed)
    finally:
        evsed.stop()
        csms.stop()

    (stop,) = csms.calls("StopTransaction")
    assert stop["payload"]["reason"] == "Local"
    assert "PowerLoss" not in evsed.log()


def test_orderly_shutdown_while_offline_ends_the_transaction_once_with_reboot(
    tmp_path: Path,
) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms)
    try:
        registered(evsed)
        charge(evsed)
        wait_for(lambda: csms.calls("StartTransaction"), what="StartTransaction")
        csms.stop()
        assert evsed.stop() == 0  # SIGTERM: contactor open, transaction ended, then exit
        evsed = start_evsed(tmp_path, csms)
        csms.start()
        registered(evsed)
        drained(evsed)
    finally:
        evsed.stop()
        csms.stop()

    (start,) = csms.calls("StartTransaction")
    (stop,) = csms.calls("StopTransaction")
    assert stop["payload"]["reason"] == "Reboot"
    assert stop["payload"]["transactionId"] == start["answer"]["transactionId"]


def test_tc_034_power_failure_with_unavailable_status_keeps_the_connector_unavailable(
    tmp_path: Path,
) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms)
    try:
        registered(evsed)
        answer = csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
        assert answer["status"] == "Accepted"
        wait_for(lambda: statuses(csms.calls(), 1)[-1:] == ["Unavailable"], what="Unavailable")
        evsed.kill()
        before = len(csms.calls())

        evsed = start_evsed(tmp_path, csms)
        registered(evsed)
        wait_for(lambda: statuses(csms.calls()[before:], 1), what="status after boot")
        assert evsed.connector()["ocpp_status"] == "Unavailable"
        evsed.sim("plug")  # an inoperative charger starts nothing
        evsed.sim("swipe", TAG)
        evsed.sim("ev-state", "C")
        wait_for(lambda: evsed.connector()["cp_state"] == "C", what="car asks for power")
        assert not evsed.connector()["contactor_closed"]
        assert not csms.calls("StartTransaction", "Authorize")
    finally:
        evsed.stop()
        csms.stop()

    after = csms.calls()[before:]
    assert after[0]["action"] == "BootNotification"
    assert statuses(after, 1) == ["Unavailable"]


def test_tc_034_the_charge_point_as_a_whole_reports_unavailable_before_and_after_the_failure(
    tmp_path: Path,
) -> None:
    csms = Csms(tmp_path)
    evsed = start_evsed(tmp_path, csms)
    try:
        registered(evsed)
        answer = csms.call("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
        assert answer["status"] == "Accepted"
        wait_for(lambda: statuses(csms.calls(), 1)[-1:] == ["Unavailable"], what="Unavailable")
        time.sleep(0.5)
        assert statuses(csms.calls(), 0)[-1] == "Unavailable"  # TC_034_CS step 3
        evsed.kill()
        before = len(csms.calls())
        evsed = start_evsed(tmp_path, csms)
        registered(evsed)
        wait_for(lambda: statuses(csms.calls()[before:], 1), what="status after boot")
    finally:
        evsed.stop()
        csms.stop()
    assert statuses(csms.calls()[before:], 0) == ["Unavailable"]  # TC_034_CS step 7
