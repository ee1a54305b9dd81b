"""OCA OCPP 1.6 Core test cases: booting (TC_001, TC_002).

The daemon runs as a process against the development CSMS on 127.0.0.1; the assertions are on
the frames the CSMS received.
"""

from collections.abc import Callable

from oca_support import labels, reported, seconds_between

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def test_tc_001_cold_boot_charge_point(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms = start_csms("--heartbeat-interval", "1")
    start_evsed(csms.ws_url)
    heartbeats = csms.wait_for_calls("Heartbeat", 3)
    calls = csms.calls("CP01")
    assert calls[0]["action"] == "BootNotification"
    assert calls[0]["payload"]["chargePointVendor"] == "evsed"
    # A StatusNotification per connector and for connectorId 0, all Available, before the
    # first heartbeat.
    assert labels(calls[1:3]) == ["Status:Available", "Status:Available"]
    assert {m["payload"]["connectorId"] for m in calls[1:3]} == {0, 1}
    # Then the first heartbeat; the startup's security event (Security Whitepaper) may come
    # before it, once the statuses are out.
    after = [m["action"] for m in calls[3:] if m["action"] != "SecurityEventNotification"]
    assert after[0] == "Heartbeat"
    events = [m["payload"]["type"] for m in csms.calls("CP01", "SecurityEventNotification")]
    assert events == ["StartupOfTheDevice"]
    # Every x seconds, x = the interval from BootNotification.conf.
    assert all(0.8 <= gap <= 2.0 for gap in seconds_between(heartbeats[:3])), heartbeats


def test_tc_002_cold_boot_charge_point_pending(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms = start_csms(
        "--boot-status", "Pending", "--boot-retry-interval", "1", "--heartbeat-interval", "1"
    )
    evsed = start_evsed(csms.ws_url)
    wait_for(lambda: evsed.status()["ocpp"]["registration"] == "Pending", what="Pending")
    # While Pending the CSMS may read and set the configuration.
    answer = csms.result("GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert answer["configurationKey"][0]["key"] == "HeartbeatInterval"
    changed = csms.result("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "7"})
    assert changed == {"status": "Accepted"}
    csms.api("/api/boot-status", {"status": "Accepted"})
    wait_for(lambda: reported(csms) == {0: "Available", 1: "Available"}, what="statuses")
    csms.wait_for_calls("Heartbeat", 2)
    kept = csms.result("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert kept["configurationKey"][0]["value"] == "7"

    calls = csms.calls("CP01")
    boots = [m for m in calls if m["action"] == "BootNotification"]
    accepted = max(m["i"] for m in boots)
    # Nothing but BootNotification until it is Accepted, each after the interval from the
    # previous BootNotification.conf (1 s).
    assert {m["action"] for m in calls if m["i"] < accepted} == {"BootNotification"}
    assert len(boots) >= 2
    assert all(gap >= 0.9 for gap in seconds_between(boots)), boots
    after = [m for m in calls if m["i"] > accepted and m["action"] != "SecurityEventNotification"]
    assert labels(after[:2]) == ["Status:Available", "Status:Available"]
    assert after[2]["action"] == "Heartbeat"


def test_boot_notification_sends_the_serial_number_in_both_fields(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    """chargeBoxSerialNumber is deprecated in 1.6, yet many CSMSs still read it: with a serial
    configured, it goes beside chargePointSerialNumber."""
    csms = start_csms()
    evsed = start_evsed(csms.ws_url, charger={"serial_number": "EVS-0042"})
    evsed.wait_registered()
    boot = csms.calls("CP01", "BootNotification")[0]["payload"]
    assert boot["chargePointSerialNumber"] == "EVS-0042"
    assert boot["chargeBoxSerialNumber"] == "EVS-0042"


def test_boot_notification_without_a_serial_number_sends_neither_field(
    start_csms: Callable[..., DevCsms], start_evsed: Callable[..., Evsed]
) -> None:
    csms = start_csms()
    evsed = start_evsed(csms.ws_url)
    evsed.wait_registered()
    boot = csms.calls("CP01", "BootNotification")[0]["payload"]
    assert "chargePointSerialNumber" not in boot and "chargeBoxSerialNumber" not in boot
