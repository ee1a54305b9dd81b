"""OCA OCPP 1.6 Core test cases: charging sessions started and stopped at the charger
(TC_003, TC_004_1, TC_004_2, TC_005_1, TC_005_2, TC_005_3, TC_068, TC_069).

The simulated charger has a tethered cable: unplugging at the EV side is unplugging, so the
"Finishing until the cable is taken out of the socket" step of TC_005_x has no counterpart
(the simulator cannot leave a cable in the socket); Finishing is allowed there, not required.
"""

from collections.abc import Callable

from oca_support import (
    OTHER_TAG,
    TAG,
    answer_to,
    booted,
    charging,
    labels,
    mark,
    seconds_between,
    since,
    wait_status,
)

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _without(items: list[str], optional: str) -> list[str]:
    return [item for item in items if item != optional]


def test_tc_003_regular_charging_session_plugin_first(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    evsed.sim("plug")
    wait_status(csms, "Preparing", start)
    evsed.sim("ev-state", "C")
    evsed.sim("swipe", TAG)
    wait_status(csms, "Charging", start)

    calls = since(csms, start)
    # SuspendedEV may come between StartTransaction and Charging: the car is in C, but the
    # contactor closes only after the PWM is on.
    assert _without(labels(calls), "Status:SuspendedEV") == [
        "Status:Preparing",
        "Authorize",
        "StartTransaction",
        "Status:Charging",
    ]
    authorize, start_tx = calls[1], calls[2]
    assert authorize["payload"] == {"idTag": TAG}
    assert answer_to(csms, authorize)["idTagInfo"]["status"] == "Accepted"
    assert start_tx["payload"]["idTag"] == TAG
    assert start_tx["payload"]["connectorId"] == 1
    assert answer_to(csms, start_tx)["idTagInfo"]["status"] == "Accepted"


def test_tc_004_1_regular_charging_session_identification_first(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"MeterValueSampleInterval": "1"})
    start = mark(csms)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", start)
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Charging", start)
    csms.wait_for_calls("MeterValues")

    assert _without(labels(since(csms, start)), "Status:SuspendedEV") == [
        "Authorize",
        "Status:Preparing",
        "StartTransaction",
        "Status:Charging",
    ]


def test_tc_004_2_regular_charging_session_identification_first_connection_timeout(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"ConnectionTimeOut": "2"})
    start = mark(csms)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", start)
    wait_status(csms, "Available", start)

    calls = since(csms, start)
    assert labels(calls) == ["Authorize", "Status:Preparing", "Status:Available"]
    # Back to Available once the configured ConnectionTimeOut has expired, not before.
    assert 1.9 <= seconds_between(calls[1:], key="t")[0] <= 3.0
    assert evsed.connector()["id_tag"] is None


def test_tc_005_1_ev_side_disconnected_stop_and_unlock_on_ev_side_disconnect(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "MinimumStatusDuration": "0",
            "StopTransactionOnEVSideDisconnect": "true",
            "UnlockConnectorOnEVSideDisconnect": "true",
        },
        connector={"connector_lock": True},
    )
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    evsed.sim("unplug")
    wait_status(csms, "Available", start)

    calls = since(csms, start)
    assert _without(labels(calls), "Status:Finishing") == ["StopTransaction", "Status:Available"]
    stop = calls[0]["payload"]
    assert stop["reason"] == "EVDisconnected"
    assert stop["transactionId"] == transaction_id
    assert not evsed.connector()["contactor_closed"]


def test_tc_005_2_ev_side_disconnected_stop_but_no_unlock_on_ev_side_disconnect(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "MinimumStatusDuration": "0",
            "StopTransactionOnEVSideDisconnect": "true",
            "UnlockConnectorOnEVSideDisconnect": "false",
        },
        connector={"connector_lock": True},
    )
    charging(evsed, csms)
    start = mark(csms)
    evsed.sim("unplug")
    wait_status(csms, "Available", start)
    # The connector stays locked until the CSMS unlocks it.
    assert evsed.connector()["locked"] is True
    assert csms.result("UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert evsed.connector()["locked"] is False  # the answer came after the lock's feedback

    calls = since(csms, start)
    assert _without(labels(calls), "Status:Finishing") == ["StopTransaction", "Status:Available"]
    assert calls[0]["payload"]["reason"] == "EVDisconnected"


def test_tc_005_3_ev_side_disconnected_transaction_continues(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "MinimumStatusDuration": "0",
            "StopTransactionOnEVSideDisconnect": "false",
            "UnlockConnectorOnEVSideDisconnect": "false",
        },
    )
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    evsed.sim("unplug")
    wait_status(csms, "SuspendedEV", start)
    assert evsed.connector()["transaction_active"]
    assert not evsed.connector()["contactor_closed"]
    answer = csms.api("/api/remote-stop", {"cp": "CP01", "transaction_id": transaction_id})
    assert answer["result"] == {"status": "Accepted"}
    csms.wait_for_calls("StopTransaction")
    wait_status(csms, "Available", start)

    calls = since(csms, start)
    assert _without(labels(calls), "Status:Finishing") == [
        "Status:SuspendedEV",
        "StopTransaction",
        "Status:Available",
    ]
    assert calls[1]["payload"]["reason"] == "Remote"


def test_tc_068_stop_transaction_id_tag_in_stop_matches_start(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    # Another valid card does not stop the transaction, and no Authorize.req is sent for it.
    evsed.sim("swipe", OTHER_TAG)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Finishing", start)
    evsed.sim("ev-state", "B")
    stop = csms.wait_for_calls("StopTransaction")[0]

    assert _without(labels(since(csms, start)), "Status:Finishing") == ["StopTransaction"]
    assert stop["payload"]["idTag"] == TAG
    assert stop["payload"]["reason"] == "Local"
    assert stop["payload"]["transactionId"] == transaction_id
    assert evsed.connector()["ocpp_status"] == "Finishing"


def test_tc_069_stop_transaction_parent_id_tag_in_stop_matches_start(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    csms.set_id_tag("CHILD001", "Accepted", parent_id_tag="FLEET01")
    csms.set_id_tag("CHILD002", "Accepted", parent_id_tag="FLEET01")
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms, tag="CHILD001")
    start = mark(csms)
    evsed.sim("swipe", "CHILD002")
    wait_status(csms, "Finishing", start)
    evsed.sim("ev-state", "B")
    csms.wait_for_calls("StopTransaction")

    calls = since(csms, start)
    assert _without(labels(calls), "Status:Finishing") == ["Authorize", "StopTransaction"]
    assert calls[0]["payload"] == {"idTag": "CHILD002"}
    assert answer_to(csms, calls[0])["idTagInfo"]["parentIdTag"] == "FLEET01"
    stop = next(m for m in calls if m["action"] == "StopTransaction")["payload"]
    # The idTag of the StopTransaction is the one that stopped it (OCPP 1.6 §6.51).
    assert stop["idTag"] == "CHILD002"
    assert stop["transactionId"] == transaction_id
    wait_for(lambda: not evsed.connector()["transaction_active"], what="transaction over")
