"""OCA OCPP 1.6 Core test cases: Reset (TC_013, TC_014, TC_015, TC_016).

``charger.reboot_command = ""``: a Hard reset restarts the daemon in place, as a Soft one does,
instead of rebooting the test machine. The simulated car lives inside the daemon process, so
it is gone after the restart (on a real charger it would still be plugged in and the connector
would come back Preparing or Finishing).
"""

from collections.abc import Callable

from oca_support import booted, charging, labels, mark, since, wait_status

from evsed.devcsms.harness import DevCsms, Evsed, wait_for

NO_REBOOT = {"reboot_command": ""}


def _boots(csms: DevCsms) -> int:
    return len(csms.calls("CP01", "BootNotification"))


def _reset_without_transaction(csms: DevCsms, start_evsed: Callable[..., Evsed], kind: str) -> None:
    evsed = booted(start_evsed, csms, charger=NO_REBOOT)
    pid = evsed.proc.pid
    start = mark(csms)
    inoperative = {"connectorId": 1, "type": "Inoperative"}
    assert csms.result("ChangeAvailability", inoperative) == {"status": "Accepted"}
    wait_status(csms, "Unavailable", start)
    assert csms.result("Reset", {"type": kind}) == {"status": "Accepted"}
    wait_for(lambda: _boots(csms) == 2, what="BootNotification after the reset")
    rebooted = csms.calls("CP01", "BootNotification")[-1]["i"]
    wait_status(csms, "Unavailable", rebooted)
    operative = {"connectorId": 1, "type": "Operative"}
    assert csms.result("ChangeAvailability", operative) == {"status": "Accepted"}
    wait_status(csms, "Available", rebooted)

    calls = since(csms, start)
    assert labels(calls) == [
        "Status:Unavailable",
        "BootNotification",
        "Status:Available",  # connector 0
        "Status:Unavailable",  # connector 1: availability survives a reset (§5.14)
        "Status:Available",
    ]
    assert [m["payload"]["connectorId"] for m in calls[2:]] == [0, 1, 1]
    assert evsed.proc.pid == pid and evsed.proc.poll() is None


def test_tc_013_hard_reset_without_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    _reset_without_transaction(csms, start_evsed, "Hard")


def test_tc_014_soft_reset_without_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    _reset_without_transaction(csms, start_evsed, "Soft")


def _reset_with_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed], kind: str, reason: str
) -> None:
    evsed = booted(start_evsed, csms, charger=NO_REBOOT)
    transaction_id = charging(evsed, csms)
    start = mark(csms)
    assert csms.result("Reset", {"type": kind}) == {"status": "Accepted"}
    wait_status(csms, "Finishing", start)
    evsed.sim("ev-state", "B")  # the car sees the PWM stop
    wait_for(lambda: _boots(csms) == 2, what="BootNotification after the reset")
    rebooted = csms.calls("CP01", "BootNotification")[-1]["i"]
    wait_status(csms, "Available", rebooted)

    calls = since(csms, start)
    assert labels(calls) == [
        "Status:Finishing",
        "StopTransaction",
        "BootNotification",
        "Status:Available",
        "Status:Available",
    ]
    stop = calls[1]["payload"]
    assert (stop["reason"], stop["transactionId"]) == (reason, transaction_id)
    assert len(csms.calls("CP01", "StopTransaction")) == 1  # not again after the restart


def test_tc_015_hard_reset_with_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    _reset_with_transaction(csms, start_evsed, "Hard", "HardReset")


def test_tc_016_soft_reset_with_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    _reset_with_transaction(csms, start_evsed, "Soft", "SoftReset")
