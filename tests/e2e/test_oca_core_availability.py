"""ChangeAvailability (OCPP 1.6 §5.2): Operative, Inoperative, Scheduled.

The OCA 1.6 Charge Point test cases use ChangeAvailability inside TC_013/TC_014 (see
test_oca_core_reset.py) and have no case of its own that could be confirmed, so these tests
are named after the behaviour.
"""

import time
from collections.abc import Callable

from oca_support import TAG, booted, charging, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _change(csms: DevCsms, connector_id: int, kind: str) -> str:
    payload = {"connectorId": connector_id, "type": kind}
    status: str = csms.result("ChangeAvailability", payload)["status"]
    return status


def test_change_availability_inoperative_connector_takes_no_session_until_operative(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _change(csms, 1, "Inoperative") == "Accepted"
    wait_status(csms, "Unavailable", start)
    assert _change(csms, 1, "Inoperative") == "Accepted"  # already so: Accepted, no status
    evsed.sim("plug")
    evsed.sim("swipe", TAG)
    remote = csms.result("RemoteStartTransaction", {"connectorId": 1, "idTag": TAG})
    assert remote == {"status": "Rejected"}
    time.sleep(0.3)
    assert labels(since(csms, start)) == ["Status:Unavailable"]

    assert _change(csms, 1, "Operative") == "Accepted"
    wait_status(csms, "Preparing", start)  # the car is plugged in
    evsed.sim("swipe", TAG)
    csms.wait_for_calls("StartTransaction")
    assert labels(since(csms, start))[:4] == [
        "Status:Unavailable",
        "Status:Preparing",
        "Authorize",
        "StartTransaction",
    ]


def test_change_availability_charge_point_inoperative_makes_every_connector_unavailable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _change(csms, 0, "Inoperative") == "Accepted"
    wait_status(csms, "Unavailable", start)
    wait_status(csms, "Unavailable", start, connector=0)
    assert evsed.connector()["ocpp_status"] == "Unavailable"
    back = mark(csms)
    assert _change(csms, 0, "Operative") == "Accepted"
    wait_status(csms, "Available", back)
    wait_status(csms, "Available", back, connector=0)
    assert _change(csms, 2, "Inoperative") == "Rejected"  # no such connector

    calls = since(csms, start)
    # connectorId 0 is the Charge Point itself: it reports its own availability too.
    assert labels(calls, connector=0) == ["Status:Unavailable", "Status:Available"]
    assert labels(calls, connector=1) == ["Status:Unavailable", "Status:Available"]


def test_change_availability_charge_point_inoperative_during_a_transaction_is_scheduled(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    charging(evsed, csms)
    start = mark(csms)
    assert _change(csms, 0, "Inoperative") == "Scheduled"
    time.sleep(0.3)
    assert labels(since(csms, start)) == []
    evsed.sim("swipe", TAG)
    evsed.sim("ev-state", "B")
    wait_status(csms, "Unavailable", start, connector=0)
    calls = since(csms, start)
    assert [x for x in labels(calls) if x != "Status:Finishing"] == [
        "StopTransaction",
        "Status:Unavailable",
        "Status:Unavailable",
    ]
    assert {m["payload"]["connectorId"] for m in calls[-2:]} == {0, 1}


def test_change_availability_during_a_transaction_is_scheduled(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    assert _change(csms, 1, "Inoperative") == "Scheduled"
    time.sleep(0.3)
    assert evsed.connector()["contactor_closed"]  # the transaction goes on
    assert labels(since(csms, start)) == []

    evsed.sim("swipe", TAG)  # the driver ends it
    evsed.sim("ev-state", "B")
    wait_status(csms, "Unavailable", start)
    evsed.sim("unplug")
    time.sleep(0.3)
    calls = since(csms, start)
    assert [x for x in labels(calls) if x != "Status:Finishing"] == [
        "StopTransaction",
        "Status:Unavailable",
    ]
    assert calls[-2]["payload"]["transactionId"] == transaction_id
    # Unavailable from the end of the transaction on, plugged in or not.
    assert evsed.connector()["ocpp_status"] == "Unavailable"

    assert _change(csms, 1, "Operative") == "Accepted"
    wait_status(csms, "Available", start)
    wait_for(lambda: evsed.connector()["ocpp_status"] == "Available", what="Available")
