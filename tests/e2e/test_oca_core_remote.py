"""OCA OCPP 1.6 Core test cases: remote start and stop (TC_010, TC_011_1, TC_011_2, TC_012,
TC_026, TC_027, TC_028), plus remote starts with AuthorizeRemoteTxRequests."""

import time
from collections.abc import Callable

from oca_support import TAG, answer_to, booted, charging, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _remote_start(csms: DevCsms, tag: str = TAG, connector_id: int | None = 1) -> str:
    payload: dict[str, object] = {"idTag": tag}
    if connector_id is not None:
        payload["connectorId"] = connector_id
    status: str = csms.result("RemoteStartTransaction", payload)["status"]
    return status


def _authorize_remote_tx_requests(csms: DevCsms) -> str:
    answer = csms.result("GetConfiguration", {"key": ["AuthorizeRemoteTxRequests"]})
    (key,) = answer["configurationKey"]
    assert key["key"] == "AuthorizeRemoteTxRequests"
    value: str = key["value"]
    return value


def test_tc_010_remote_start_charging_session_cable_plugged_in_first(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    assert _authorize_remote_tx_requests(csms) == "false"
    start = mark(csms)
    evsed.sim("plug")
    wait_status(csms, "Preparing", start)
    evsed.sim("ev-state", "C")
    assert _remote_start(csms) == "Accepted"
    wait_status(csms, "Charging", start)

    calls = since(csms, start)
    # AuthorizeRemoteTxRequests is false: no Authorize.req.
    assert [x for x in labels(calls) if x != "Status:SuspendedEV"] == [
        "Status:Preparing",
        "StartTransaction",
        "Status:Charging",
    ]
    assert calls[1]["payload"]["idTag"] == TAG
    assert calls[1]["payload"]["connectorId"] == 1


def test_tc_010_remote_start_cable_plugged_in_first_with_authorize_remote_tx_requests(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"AuthorizeRemoteTxRequests": "true"})
    assert _authorize_remote_tx_requests(csms) == "true"
    start = mark(csms)
    evsed.sim("plug")
    wait_status(csms, "Preparing", start)
    evsed.sim("ev-state", "C")
    assert _remote_start(csms) == "Accepted"
    wait_status(csms, "Charging", start)

    calls = since(csms, start)
    assert [x for x in labels(calls) if x != "Status:SuspendedEV"] == [
        "Status:Preparing",
        "Authorize",
        "StartTransaction",
        "Status:Charging",
    ]
    assert answer_to(csms, calls[1])["idTagInfo"]["status"] == "Accepted"


def test_tc_011_1_remote_start_charging_session_remote_start_first(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _remote_start(csms) == "Accepted"
    wait_status(csms, "Preparing", start)
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Charging", start)

    assert [x for x in labels(since(csms, start)) if x != "Status:SuspendedEV"] == [
        "Status:Preparing",
        "StartTransaction",
        "Status:Charging",
    ]


def test_tc_011_2_remote_start_charging_session_time_out(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"ConnectionTimeOut": "1"})
    start = mark(csms)
    assert _remote_start(csms) == "Accepted"
    wait_status(csms, "Preparing", start)
    wait_status(csms, "Available", start)  # nobody plugged in within ConnectionTimeOut
    plugged = mark(csms)
    evsed.sim("plug")
    wait_status(csms, "Preparing", plugged)
    time.sleep(0.5)

    # The lapsed remote start does not start a transaction when a car turns up later.
    assert labels(since(csms, start)) == [
        "Status:Preparing",
        "Status:Available",
        "Status:Preparing",
    ]
    assert not evsed.connector()["transaction_active"]


def test_remote_start_with_authorize_remote_tx_requests_and_no_authorize_answer(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    """Behaviour, no OCA id: the CSMS never answers the Authorize.req of a remote start;
    after the call timeout the unknown tag is refused and nothing starts (OCPP 1.6 §5.11)."""
    csms = start_csms("--tags", TAG)
    evsed = booted(
        start_evsed,
        csms,
        keys={"AuthorizeRemoteTxRequests": "true"},
        csms={"call_timeout_s": 1.0},
    )
    evsed.sim("plug")
    csms.answer("Authorize", "drop", times=1)
    start = mark(csms)
    assert _remote_start(csms) == "Accepted"
    wait_for(lambda: "Authorize failed" in evsed.log(), what="Authorize timed out")
    time.sleep(0.3)

    assert labels(since(csms, start)) == ["Authorize"]
    assert not csms.calls("CP01", "StartTransaction")
    assert evsed.connector()["id_tag"] is None


def test_tc_012_remote_stop_charging_session(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    answer = csms.result("RemoteStopTransaction", {"transactionId": transaction_id})
    assert answer == {"status": "Accepted"}
    wait_status(csms, "Finishing", start)
    evsed.sim("ev-state", "B")  # the car sees the PWM stop
    csms.wait_for_calls("StopTransaction")
    evsed.sim("unplug")
    wait_status(csms, "Available", start)

    calls = since(csms, start)
    assert labels(calls) == ["Status:Finishing", "StopTransaction", "Status:Available"]
    stop = calls[1]["payload"]
    assert (stop["reason"], stop["transactionId"]) == ("Remote", transaction_id)


def test_tc_026_remote_start_charging_session_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, keys={"LocalPreAuthorize": "false"})
    charging(evsed, csms)
    start = mark(csms)
    assert _remote_start(csms, connector_id=1) == "Rejected"
    time.sleep(0.3)
    assert labels(since(csms, start)) == []
    assert evsed.connector()["contactor_closed"]


def test_tc_027_remote_start_transaction_connector_id_shall_not_be_0(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _remote_start(csms, connector_id=0) == "Rejected"
    time.sleep(0.3)
    assert labels(since(csms, start)) == []
    assert evsed.connector()["id_tag"] is None


def test_tc_028_remote_stop_transaction_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    answer = csms.result("RemoteStopTransaction", {"transactionId": transaction_id + 100})
    assert answer == {"status": "Rejected"}
    time.sleep(0.3)
    assert labels(since(csms, start)) == []
    assert evsed.connector()["contactor_closed"]


def test_remote_start_with_a_charging_profile_other_than_tx_profile_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    """§5.11: the chargingProfile of a RemoteStartTransaction must be a TxProfile."""
    evsed = booted(start_evsed, csms)
    schedule = {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
    }
    for purpose in ("ChargePointMaxProfile", "TxDefaultProfile"):
        profile = {
            "chargingProfileId": 7,
            "stackLevel": 0,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": schedule,
        }
        answer = csms.result(
            "RemoteStartTransaction", {"idTag": TAG, "connectorId": 1, "chargingProfile": profile}
        )
        assert answer == {"status": "Rejected"}, purpose
    evsed.sim("plug")
    time.sleep(0.5)
    assert evsed.connector()["id_tag"] is None
    assert not csms.calls("CP01", "StartTransaction")
