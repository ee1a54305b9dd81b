"""TriggerMessage (OCPP 1.6 §5.17), the feature profiles the charger says it supports, and
MeterValues on a single-phase charger.

TriggerMessage belongs to Remote Trigger, not to firmware updates: it works with ``[ota]``
disabled. The triggered message follows the answer; a connector that does not exist is
Rejected. SupportedFeatureProfiles lists a profile whose operations are all served, and an
operation that is not served (UpdateFirmware with ``[ota]`` disabled) is refused with
NotSupported, not accepted and ignored; GetDiagnostics is served either way.
"""

from collections.abc import Callable
from typing import Any

from oca_support import booted, charging

from evsed_devtools.harness import DevCsms, Evsed, wait_for


def _trigger(csms: DevCsms, message: str, connector_id: int | None = None) -> str:
    payload: dict[str, Any] = {"requestedMessage": message}
    if connector_id is not None:
        payload["connectorId"] = connector_id
    status: str = csms.result("TriggerMessage", payload)["status"]
    return status


def _answer_then_message(csms: DevCsms, message: str, before: int) -> tuple[int, int]:
    """Journal positions of the last TriggerMessage answer and of the first ``message`` CALL
    after the ``before`` that were in the journal when the trigger was sent."""
    answer = [
        m for m in csms.messages("CP01") if m["type"] == 3 and m["action"] == "TriggerMessage"
    ][-1]
    new = wait_for(lambda: csms.calls("CP01", message)[before:], what=f"triggered {message}")
    return answer["i"], new[0]["i"]


def _profiles(csms: DevCsms) -> set[str]:
    key = csms.result("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    value: str = key["configurationKey"][0]["value"]
    return set(value.split(","))


def test_trigger_message_works_without_firmware_updates_and_answers_first(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    for _ in range(3):
        before = len(csms.calls("CP01", "Heartbeat"))
        assert _trigger(csms, "Heartbeat") == "Accepted"
        answer, triggered = _answer_then_message(csms, "Heartbeat", before)
        assert answer < triggered
    for _ in range(3):
        before = len(csms.calls("CP01", "MeterValues"))
        assert _trigger(csms, "MeterValues", 1) == "Accepted"
        answer, triggered = _answer_then_message(csms, "MeterValues", before)
        assert answer < triggered
    assert _trigger(csms, "StatusNotification", 1) == "Accepted"
    assert _trigger(csms, "BootNotification") == "Accepted"
    # No update machinery: the firmware status is Idle.
    assert _trigger(csms, "FirmwareStatusNotification") == "Accepted"
    status = wait_for(lambda: csms.calls("CP01", "FirmwareStatusNotification"), what="status")
    assert status[-1]["payload"] == {"status": "Idle"}
    # Remote diagnostics, no upload in progress: Idle (§4.4, §5.17).
    assert _trigger(csms, "DiagnosticsStatusNotification") == "Accepted"
    status = wait_for(lambda: csms.calls("CP01", "DiagnosticsStatusNotification"), what="status")
    assert status[-1]["payload"] == {"status": "Idle"}
    assert evsed.status()["ocpp"]["connection"] == "connected"


def test_trigger_message_for_a_connector_that_does_not_exist_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    for message in ("StatusNotification", "MeterValues"):
        assert _trigger(csms, message, 7) == "Rejected"
    # Connector 0 is the charge point: it has a status, and no meter of its own.
    before = len(csms.calls("CP01", "StatusNotification"))
    assert _trigger(csms, "StatusNotification", 0) == "Accepted"
    sent = wait_for(
        lambda: csms.calls("CP01", "StatusNotification")[before:], what="connector 0 status"
    )
    assert sent[0]["payload"]["connectorId"] == 0
    assert _trigger(csms, "MeterValues", 0) == "Rejected"
    assert "KeyError" not in evsed.log() and "Traceback" not in evsed.log()


def test_supported_feature_profiles_follow_what_is_served(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    assert _profiles(csms) == {
        "Core",
        "LocalAuthListManagement",
        "RemoteTrigger",
        "Reservation",
        "SmartCharging",
    }
    refused = csms.call(
        "UpdateFirmware",
        {"location": "http://127.0.0.1:1/x.raucb", "retrieveDate": "2030-01-01T00:00:00Z"},
    )
    assert refused["error"]["code"] == "NotSupported"
    assert not csms.calls("CP01", "FirmwareStatusNotification")
    # GetDiagnostics needs no firmware updater: answered, though its profile is not listed.
    assert "fileName" in csms.result("GetDiagnostics", {"location": "http://127.0.0.1:1/up/"})


def test_supported_feature_profiles_with_firmware_updates(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, ota={"enabled": True, "health_check_timeout_s": 10})
    assert _profiles(csms) == {
        "Core",
        "FirmwareManagement",
        "LocalAuthListManagement",
        "RemoteTrigger",
        "Reservation",
        "SmartCharging",
    }


def _phases(values: list[dict[str, Any]]) -> set[str]:
    return {v["phase"] for v in values if "phase" in v}


def test_a_single_phase_charger_reports_one_phase_on_every_path(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={
            "MeterValuesSampledData": "Current.Import,Voltage",
            "MeterValuesAlignedData": "Current.Import,Voltage",
            "ClockAlignedDataInterval": "1",
            "MeterValueSampleInterval": "1",
        },
        connector={"phases": 1},
    )

    def values(context: str) -> list[dict[str, Any]]:
        return [
            v
            for m in csms.calls("CP01", "MeterValues")
            for v in m["payload"]["meterValue"][0]["sampledValue"]
            if v["context"] == context
        ]

    # Idle, clock-aligned.
    wait_for(lambda: values("Sample.Clock"), what="an idle clock-aligned sample")
    # Triggered.
    assert _trigger(csms, "MeterValues", 1) == "Accepted"
    wait_for(lambda: values("Trigger"), what="a triggered sample")
    # In a transaction: periodic and clock-aligned.
    charging(evsed, csms)
    wait_for(lambda: values("Sample.Periodic"), what="a periodic sample")
    for context in ("Sample.Clock", "Trigger", "Sample.Periodic"):
        assert _phases(values(context)) == {"L1", "L1-N"}, context


def test_the_password_in_a_firmware_location_is_never_shown(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms, ota={"enabled": True, "health_check_timeout_s": 10})
    secret = "Fw-s3cret-99"
    location = f"ftp://maker:{secret}@127.0.0.1:1/evsed-2.0.raucb"
    request = {"location": location, "retrieveDate": "2020-01-01T00:00:00Z", "retries": 3}
    assert csms.result("UpdateFirmware", request) == {}
    wait_for(lambda: csms.calls("CP01", "FirmwareStatusNotification"), what="Downloading")
    shown = evsed.ctl("status", "--json").stdout + evsed.ctl("status").stdout
    assert "maker:***@127.0.0.1" in shown
    assert secret not in shown and secret not in evsed.log()
