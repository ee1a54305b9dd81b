"""The independent OCPP 1.6 schema check itself: it must pass good frames and name what is wrong
with bad ones, or the end-to-end check built on it proves nothing."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ocpp_schema import SchemaValidator, charger_frame_violations, read_journal

BOOT = {
    "chargePointVendor": "evsed",
    "chargePointModel": "evsed-sim",
    "chargePointSerialNumber": "SIM-0001",
    "firmwareVersion": "0.1.0",
}
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


@pytest.fixture(scope="module")
def validator() -> Iterator[SchemaValidator]:
    with SchemaValidator() as validator:
        yield validator


def test_known_good_boot_notification_passes(validator: SchemaValidator) -> None:
    assert validator.validate("BootNotification", "req", BOOT) == []


def test_missing_required_field_is_named(validator: SchemaValidator) -> None:
    payload = {k: v for k, v in BOOT.items() if k != "chargePointModel"}
    assert validator.validate("BootNotification", "req", payload) == [
        "(root) must have required property 'chargePointModel'"
    ]


def test_status_outside_the_enumeration_lists_the_allowed_values(
    validator: SchemaValidator,
) -> None:
    [error] = validator.validate("StatusNotification", "req", {**STATUS, "status": "Ready"})
    assert error.startswith("/status must be equal to one of the allowed values: Available,")
    assert "SuspendedEVSE" in error


def test_extra_property_is_refused_where_the_schema_forbids_it(
    validator: SchemaValidator,
) -> None:
    assert validator.validate("Heartbeat", "req", {"uptime": 5}) == [
        "(root) must NOT have additional properties: 'uptime'"
    ]
    errors = validator.validate(
        "MeterValues",
        "req",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2024-05-01T12:00:00Z",
                    "sampledValue": [{"value": "1", "units": "Wh"}],
                }
            ],
        },
    )
    assert errors == ["/meterValue/0/sampledValue/0 must NOT have additional properties: 'units'"]


def test_id_tag_longer_than_20_characters_fails(validator: SchemaValidator) -> None:
    """IdToken is CiString20Type (OCPP 1.6 §7.28)."""
    assert validator.validate("Authorize", "req", {"idTag": "A" * 20}) == []
    assert validator.validate("Authorize", "req", {"idTag": "A" * 21}) == [
        "/idTag must NOT have more than 20 characters"
    ]


def test_timestamp_without_time_offset_fails(validator: SchemaValidator) -> None:
    """JSON schema "date-time" is RFC 3339: a naive datetime is a bug."""
    assert (
        validator.validate(
            "StatusNotification", "req", {**STATUS, "timestamp": "2024-05-01T12:00:00Z"}
        )
        == []
    )
    assert validator.validate(
        "StatusNotification", "req", {**STATUS, "timestamp": "2024-05-01T12:00:00"}
    ) == ['/timestamp must match format "date-time"']


def test_callresult_is_checked_against_the_response_schema(validator: SchemaValidator) -> None:
    accepted = {"status": "Accepted"}
    assert validator.validate("RemoteStartTransaction", "conf", accepted) == []
    # The request schema would want an idTag: proof that "conf" picks the *Response schema.
    assert validator.validate("RemoteStartTransaction", "req", accepted) != []
    assert validator.validate("ChangeConfiguration", "conf", {"status": "Done"}) == [
        "/status must be equal to one of the allowed values: "
        "Accepted, Rejected, RebootRequired, NotSupported"
    ]


def test_limit_that_is_a_multiple_of_0_1_in_decimal_passes(validator: SchemaValidator) -> None:
    """16.1 / 0.1 is not an integer in binary floating point; the schema means decimal."""

    def schedule(limit: float) -> dict[str, Any]:
        period = {"startPeriod": 0, "limit": limit}
        unit = {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]}
        return {"status": "Accepted", "connectorId": 1, "chargingSchedule": unit}

    assert validator.validate("GetCompositeSchedule", "conf", schedule(16.1)) == []
    assert validator.validate("GetCompositeSchedule", "conf", schedule(16.15)) == [
        "/chargingSchedule/chargingSchedulePeriod/0/limit must be multiple of 0.1"
    ]


def test_action_outside_ocpp_1_6_fails(validator: SchemaValidator) -> None:
    assert validator.validate("TransactionEvent", "req", {}) == [
        "no OCPP 1.6 schema for TransactionEvent.req"
    ]


def _entry(i: int, direction: str, kind: int, action: str | None, payload: Any) -> dict[str, Any]:
    return {
        "i": i,
        "t": "2024-05-01T12:00:00.000+00:00",
        "cp": "CP01",
        "dir": direction,
        "type": kind,
        "id": str(100 + i),
        "action": action,
        "payload": payload,
    }


def test_journal_check_names_action_message_id_and_error(validator: SchemaValidator) -> None:
    entries = [
        _entry(0, "in", 2, "BootNotification", BOOT),
        # From the CSMS: not the charger's to get right.
        _entry(1, "out", 3, "BootNotification", {"status": "Bogus"}),
        _entry(2, "in", 2, "StatusNotification", {**STATUS, "status": "Ready"}),
        _entry(3, "in", 3, "GetConfiguration", {"configurationKey": [{"key": "X"}]}),
        _entry(4, "in", 3, None, {}),
        _entry(5, "in", 4, "Reset", {"errorCode": "NotSupported"}),
    ]
    violations = charger_frame_violations(entries, validator)
    assert [v.entry["i"] for v in violations] == [2, 3, 4]
    text = str(violations[0])
    assert text.startswith(
        "CP01 CALL StatusNotification message id '102' (journal #2) against "
        "StatusNotification.req:\n    /status must be equal to one of the allowed values"
    )
    assert '"status": "Ready"' in text
    assert "GetConfiguration.conf:\n    /configurationKey/0 must have required property " in str(
        violations[1]
    )
    assert "answers no CALL the CSMS sent" in str(violations[2])


def test_journal_reader_skips_checked_and_half_written_lines(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    assert read_journal(path) == []
    path.write_text('{"i": 0}\n{"i": 1}\n{"i": 2')
    assert read_journal(path) == [{"i": 0}, {"i": 1}]
    assert read_journal(path, skip=1) == [{"i": 1}]
