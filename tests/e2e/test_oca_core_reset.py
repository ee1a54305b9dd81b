"""OCA OCPP 1.6 Core test cases: Reset (TC_013, TC_014, TC_015, TC_016).

``charger.reboot_command = ""``: a Hard reset restarts the daemon in place, as a Soft one does,
instead of rebooting the test machine. The simulated car lives inside the daemon process, so
it is gone after the restart (on a real charger it would still be plugged in and the connector
would come back Preparing or Finishing).
"""

from collections.abc import Callable

from oca_support import booted, charging, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for

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
    # The Security Whitepaper's events: the reset, then the start that followed it.
    events = [
        m["payload"]["type"]
        for m in csms.calls("CP01", "SecurityEventNotification")
        if m["i"] >= start
    ]
    assert events == ["ResetOrReboot", "StartupOfTheDevice"]


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


def test_sigterm_while_stopping_for_a_reset_stops_the_daemon(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    """`systemctl stop` during a Reset: the daemon exits instead of restarting itself."""
    evsed = booted(start_evsed, csms, charger=NO_REBOOT)
    charging(evsed, csms)
    # The CSMS is slow with StopTransaction: the daemon waits for it while shutting down.
    csms.answer("StopTransaction", "delay", delay=8)
    assert csms.result("Reset", {"type": "Soft"}) == {"status": "Accepted"}
    evsed.sim("ev-state", "B")
    wait_for(lambda: "shutting down" in evsed.log(), what="the daemon stopping for the reset")
    assert evsed.stop(timeout=10) == 0
    assert evsed.log().count(" up: charger CP01") == 1  # it did not come up again
    # What was not delivered is still queued: the next start sends it, once.
    csms.answer("StopTransaction", "normal")
    again = start_evsed(csms.ws_url)
    wait_for(lambda: again.status()["ocpp"]["outbox_pending"] == 0, what="outbox drained")
    stops = [m for m in csms.calls("CP01", "StopTransaction")]
    assert stops[-1]["payload"]["reason"] == "SoftReset"
