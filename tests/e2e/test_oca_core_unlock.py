"""OCA OCPP 1.6 Core test cases: UnlockConnector and the connector lock (TC_017_1, TC_017_2,
TC_018_1, TC_018_2, TC_024, TC_030, TC_031).

``connector_lock = true`` (in ``[[connectors]]``) is a socket with a lock ("not fixed cable");
false is a tethered cable ("fixed cable"), which has nothing to unlock.
"""

import time
from collections.abc import Callable

from oca_support import booted, charging, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed

SOCKET = {"connector_lock": True}
TETHERED = {"connector_lock": False}


def _unlock(csms: DevCsms, connector_id: int = 1) -> str:
    status: str = csms.result("UnlockConnector", {"connectorId": connector_id})["status"]
    return status


def test_tc_017_1_unlock_connector_no_charging_session_running_not_fixed_cable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, connector=SOCKET)
    start = mark(csms)
    assert _unlock(csms) == "Unlocked"
    time.sleep(0.3)
    assert labels(since(csms, start)) == []
    assert evsed.connector()["ocpp_status"] == "Available"


def test_tc_017_2_unlock_connector_no_charging_session_running_fixed_cable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, connector=TETHERED)
    assert _unlock(csms) == "NotSupported"


def test_tc_018_1_unlock_connector_with_charging_session_not_fixed_cable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, connector=SOCKET)
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    assert _unlock(csms) == "Unlocked"
    wait_status(csms, "Finishing", start)
    evsed.sim("ev-state", "B")  # the car sees the PWM stop
    csms.wait_for_calls("StopTransaction")
    evsed.sim("unplug")
    wait_status(csms, "Available", start)

    calls = since(csms, start)
    # The transaction ends first, as in Stop Transaction (OCPP 1.6 §5.18).
    assert labels(calls) == ["Status:Finishing", "StopTransaction", "Status:Available"]
    stop = calls[1]["payload"]
    assert (stop["reason"], stop["transactionId"]) == ("UnlockCommand", transaction_id)


def test_tc_018_2_unlock_connector_with_charging_session_fixed_cable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, connector=TETHERED)
    charging(evsed, csms)
    start = mark(csms)
    assert _unlock(csms) == "NotSupported"
    time.sleep(0.3)
    assert labels(since(csms, start)) == []
    assert evsed.connector()["contactor_closed"]


def test_tc_024_start_charging_session_lock_failure(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, connector=SOCKET)
    start = mark(csms)
    assert csms.result("RemoteStartTransaction", {"connectorId": 1, "idTag": "04E91C2A"}) == {
        "status": "Accepted"
    }
    wait_status(csms, "Preparing", start)
    evsed.sim("fault", "lock")  # the cable is plugged in halfway: the lock cannot close
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Faulted", start)
    calls = since(csms, start)
    assert calls[-1]["payload"]["errorCode"] == "ConnectorLockFailure"
    connector = evsed.connector()
    assert connector["locked"] is False and not connector["contactor_closed"]
    assert connector["pilot"] != "pwm"
    # Nothing starts while the fault lasts, and the lock is not tried again and again.
    time.sleep(1.5)
    assert not csms.calls("CP01", "StartTransaction")
    assert labels(since(csms, calls[-1]["i"] + 1)) == []
    # Taking the plug out ends the fault.
    evsed.sim("clear", "lock")
    evsed.sim("unplug")
    wait_status(csms, "Available", calls[-1]["i"] + 1)
    assert not csms.calls("CP01", "StartTransaction")


def test_tc_030_unlock_connector_unlock_failure(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    # The cable stays locked in the socket after the EV side was unplugged (OCPP 1.6 §9.1),
    # and the lock then jams: the CSMS's unlock fails, and so does a second try.
    evsed = booted(
        start_evsed,
        csms,
        keys={"UnlockConnectorOnEVSideDisconnect": "false"},
        connector=SOCKET,
    )
    charging(evsed, csms)
    evsed.sim("fault", "lock")
    evsed.sim("unplug")
    start = mark(csms)
    csms.wait_for_calls("StopTransaction")
    assert evsed.connector()["locked"] is True
    assert _unlock(csms) == "UnlockFailed"
    wait_status(csms, "Faulted", start)
    assert since(csms, start)[-1]["payload"]["errorCode"] == "ConnectorLockFailure"
    assert _unlock(csms) == "UnlockFailed"
    assert evsed.connector()["locked"] is True
    # Freed (a technician on site), the next UnlockConnector retries and succeeds, and the
    # fault clears: no cable is in the socket any more.
    evsed.sim("clear", "lock")
    assert _unlock(csms) == "Unlocked"
    assert evsed.connector()["locked"] is False
    wait_status(csms, "Available", start)


def test_tc_031_unlock_connector_unknown_connector(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, connector=SOCKET)
    assert _unlock(csms, connector_id=2) == "NotSupported"
