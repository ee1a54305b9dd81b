"""OCPP 1.6 configuration keys (§9.1, §9.2): GetConfiguration, ChangeConfiguration, persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, validate_payload
from ocpp.v16 import call_result

from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.store.db import Database

# name -> readonly, for every key we offer with the default profiles (§9.1 + §9.2).
EXPECTED_ACCESS = {
    "AllowOfflineTxForUnknownId": False,
    "AuthorizationCacheEnabled": False,
    "AuthorizeRemoteTxRequests": False,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "ConnectorPhaseRotationMaxLength": True,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MaxEnergyOnInvalidId": False,
    "MeterValuesAlignedData": False,
    "MeterValuesAlignedDataMaxLength": True,
    "MeterValuesSampledData": False,
    "MeterValuesSampledDataMaxLength": True,
    "MeterValueSampleInterval": False,
    "MinimumStatusDuration": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnAlignedDataMaxLength": True,
    "StopTxnSampledData": False,
    "StopTxnSampledDataMaxLength": True,
    "SupportedFeatureProfiles": True,
    "SupportedFeatureProfilesMaxLength": True,
    "SupportedFileTransferProtocols": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": False,
    "WebSocketPingInterval": False,
    "LocalAuthListEnabled": False,
    "LocalAuthListMaxLength": True,
    "SendLocalListMaxLength": True,
}
READ_ONLY = sorted(k for k, ro in EXPECTED_ACCESS.items() if ro)

# The Measurand enumeration of OCPP 1.6, spelled out independently of the library.
MEASURANDS_16 = [
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Factor",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "RPM",
    "SoC",
    "Temperature",
    "Voltage",
]
MEASURAND_KEYS = [
    "MeterValuesAlignedData",
    "MeterValuesSampledData",
    "StopTxnAlignedData",
    "StopTxnSampledData",
]
DAEMON_DEFAULTS = {
    "HeartbeatInterval": "300",
    "ConnectionTimeOut": "60",
    "MeterValueSampleInterval": "60",
    "StopTransactionOnEVSideDisconnect": "true",
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path)
    yield database
    database.close()


def make(
    db: Database,
    defaults: dict[str, str] | None = None,
    connectors: int = 2,
    profiles: list[str] | None = None,
) -> ConfigurationKeys:
    return ConfigurationKeys(
        db,
        defaults=DAEMON_DEFAULTS if defaults is None else defaults,
        number_of_connectors=connectors,
        supported_profiles=["Core", "LocalAuthListManagement"] if profiles is None else profiles,
    )


def test_get_configuration_lists_every_key_with_its_access(db: Database) -> None:
    entries, unknown = make(db).get_configuration(None)
    assert unknown == []
    assert {e["key"]: e["readonly"] for e in entries} == EXPECTED_ACCESS
    assert len(entries) == len(EXPECTED_ACCESS)
    assert all(isinstance(e["value"], str) for e in entries)


def test_empty_key_list_means_all_keys(db: Database) -> None:
    keys = make(db)
    assert keys.get_configuration([]) == keys.get_configuration(None)


def test_built_in_defaults(db: Database) -> None:
    keys = make(db, defaults={}, connectors=2)
    assert keys.get("HeartbeatInterval") == "300"
    assert keys.get("NumberOfConnectors") == "2"
    assert keys.get("ConnectorPhaseRotation") == "1.Unknown,2.Unknown"
    assert keys.get("ConnectorPhaseRotationMaxLength") == "3"
    assert keys.get("SupportedFeatureProfiles") == "Core,LocalAuthListManagement"
    assert keys.get_csl("MeterValuesSampledData") == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Voltage",
    ]
    assert keys.get_csl("StopTxnSampledData") == []
    assert keys.get_bool("AuthorizeRemoteTxRequests") is False
    assert keys.get_int("GetConfigurationMaxKeys") >= len(EXPECTED_ACCESS)


def test_supported_feature_profiles_reports_exactly_the_argument(db: Database) -> None:
    profiles = ["Core", "RemoteTrigger", "LocalAuthListManagement"]
    keys = make(db, profiles=profiles)
    assert keys.get_csl("SupportedFeatureProfiles") == profiles


def test_local_auth_list_keys_exist_only_with_that_profile(db: Database) -> None:
    keys = make(db, profiles=["Core"])
    entries, _ = keys.get_configuration(None)
    names = {e["key"] for e in entries}
    assert names.isdisjoint({"LocalAuthListEnabled", "LocalAuthListMaxLength"})
    assert keys.change("LocalAuthListEnabled", "false") == "NotSupported"
    with pytest.raises(KeyError):
        keys.get("SendLocalListMaxLength")


@pytest.mark.parametrize(
    "profiles",
    [["LocalAuthListManagement"], ["Core", "Bogus"], ["Core", "Core"]],
)
def test_bad_profile_lists_are_refused(db: Database, profiles: list[str]) -> None:
    with pytest.raises(ValueError):
        make(db, profiles=profiles)


def test_requested_keys_answered_in_order_and_unknown_reported(db: Database) -> None:
    keys = make(db)
    entries, unknown = keys.get_configuration(
        ["MeterValueSampleInterval", "NoSuchKey", "heartbeatinterval", "HeartbeatInterval"]
    )
    assert entries == [
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
    ]
    assert unknown == ["NoSuchKey"]


def test_more_keys_than_get_configuration_max_keys_are_all_answered(db: Database) -> None:
    keys = make(db, defaults={"GetConfigurationMaxKeys": "3"})
    requested = list(EXPECTED_ACCESS)
    entries, unknown = keys.get_configuration(requested)
    assert [e["key"] for e in entries] == requested
    assert unknown == []


# (key, value, status, stored value afterwards or None when unchanged)
CHANGES: list[tuple[str, str, str, str | None]] = [
    ("HeartbeatInterval", "120", "Accepted", "120"),
    ("HeartbeatInterval", " 0120 ", "Accepted", "120"),
    ("HeartbeatInterval", "86400", "Accepted", "86400"),
    ("HeartbeatInterval", "0", "Rejected", None),
    ("HeartbeatInterval", "86401", "Rejected", None),
    ("HeartbeatInterval", "-1", "Rejected", None),
    ("HeartbeatInterval", "+5", "Rejected", None),
    ("HeartbeatInterval", "1.5", "Rejected", None),
    ("HeartbeatInterval", "1e3", "Rejected", None),
    ("HeartbeatInterval", "1_000", "Rejected", None),
    ("HeartbeatInterval", "\u0663", "Rejected", None),  # ARABIC-INDIC DIGIT THREE
    ("HeartbeatInterval", "", "Rejected", None),
    ("HeartbeatInterval", "true", "Rejected", None),
    ("ConnectionTimeOut", "30", "Accepted", "30"),
    ("ConnectionTimeOut", "0", "Rejected", None),
    ("ClockAlignedDataInterval", "900", "Accepted", "900"),
    ("ClockAlignedDataInterval", "0", "Accepted", "0"),
    ("ClockAlignedDataInterval", "90000", "Rejected", None),
    ("MeterValueSampleInterval", "0", "Accepted", "0"),
    ("MeterValueSampleInterval", "15", "Accepted", "15"),
    ("MeterValueSampleInterval", "x", "Rejected", None),
    ("MinimumStatusDuration", "5", "Accepted", "5"),
    ("MaxEnergyOnInvalidId", "2147483647", "Accepted", "2147483647"),
    ("MaxEnergyOnInvalidId", "2147483648", "Rejected", None),
    ("ResetRetries", "100", "Accepted", "100"),
    ("ResetRetries", "101", "Rejected", None),
    ("TransactionMessageAttempts", "5", "Accepted", "5"),
    ("TransactionMessageAttempts", "0", "Rejected", None),
    ("TransactionMessageRetryInterval", "30", "Accepted", "30"),
    ("TransactionMessageRetryInterval", "0", "Rejected", None),
    ("AllowOfflineTxForUnknownId", "TRUE", "Accepted", "true"),
    ("AuthorizationCacheEnabled", "False", "Accepted", "false"),
    ("LocalAuthorizeOffline", "false", "Accepted", "false"),
    ("AuthorizeRemoteTxRequests", "true", "Accepted", "true"),
    ("LocalPreAuthorize", "true", "Accepted", "true"),
    ("LocalPreAuthorize", "1", "Rejected", None),
    ("LocalPreAuthorize", "yes", "Rejected", None),
    ("StopTransactionOnEVSideDisconnect", "false", "Accepted", "false"),
    ("StopTransactionOnInvalidId", "false", "Accepted", "false"),
    ("StopTransactionOnInvalidId", "", "Rejected", None),
    ("UnlockConnectorOnEVSideDisconnect", "false", "Accepted", "false"),
    ("LocalAuthListEnabled", "false", "Accepted", "false"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register", "Accepted", None),
    ("MeterValuesSampledData", "Voltage, Current.Import", "Accepted", "Voltage,Current.Import"),
    ("MeterValuesSampledData", "voltage.l1-n,SOC", "Accepted", "Voltage.L1-N,SoC"),
    ("MeterValuesSampledData", "Voltage.L1", "Accepted", "Voltage.L1"),
    ("MeterValuesSampledData", "", "Accepted", ""),
    ("MeterValuesSampledData", "Voltage,Bogus", "Rejected", None),
    ("MeterValuesSampledData", "Voltage.L4", "Rejected", None),
    ("MeterValuesSampledData", "Voltage,,SoC", "Rejected", None),
    ("MeterValuesSampledData", "Voltage,", "Rejected", None),
    ("MeterValuesSampledData", "Voltage,voltage", "Rejected", None),
    ("MeterValuesSampledData", "Power.Active", "Rejected", None),
    ("MeterValuesAlignedData", "Energy.Active.Import.Interval", "Accepted", None),
    ("StopTxnSampledData", "Energy.Active.Import.Register", "Accepted", None),
    ("StopTxnAlignedData", "Temperature,Frequency", "Accepted", None),
    ("StopTxnAlignedData", "Watts", "Rejected", None),
    ("ConnectorPhaseRotation", "0.RST, 1.RST, 2.RTS", "Accepted", "0.RST,1.RST,2.RTS"),
    ("ConnectorPhaseRotation", "1.notapplicable", "Accepted", "1.NotApplicable"),
    ("ConnectorPhaseRotation", "3.RST", "Rejected", None),  # only 2 connectors
    ("ConnectorPhaseRotation", "1.RST,1.TSR", "Rejected", None),
    ("ConnectorPhaseRotation", "1.XYZ", "Rejected", None),
    ("ConnectorPhaseRotation", "RST", "Rejected", None),
    ("ConnectorPhaseRotation", "0.RST,1.RST,2.RST,0.RTS", "Rejected", None),
    ("WebSocketPingInterval", "0", "RebootRequired", "0"),
    ("WebSocketPingInterval", "30", "RebootRequired", "30"),
    ("WebSocketPingInterval", "-5", "Rejected", None),
]


@pytest.mark.parametrize(("key", "value", "status", "stored"), CHANGES)
def test_change_validation(
    db: Database, key: str, value: str, status: str, stored: str | None
) -> None:
    keys = make(db)
    before = keys.get(key)
    assert keys.change(key, value) == status
    if status == "Rejected":
        assert keys.get(key) == before
    else:
        assert keys.get(key) == (value if stored is None else stored)


@pytest.mark.parametrize("measurand", MEASURANDS_16)
@pytest.mark.parametrize("key", MEASURAND_KEYS)
def test_every_ocpp16_measurand_is_accepted(db: Database, key: str, measurand: str) -> None:
    keys = make(db)
    assert keys.change(key, measurand) == "Accepted"
    assert keys.get_csl(key) == [measurand]


METER_MEASURANDS = [
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "Current.Import",
    "Voltage",
]


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("Voltage.L1-N,current.import", "Accepted"),
        ("Energy.Active.Import.Register", "Accepted"),
        ("SoC", "Rejected"),
        ("Voltage,Frequency", "Rejected"),
        ("Temperature.L1", "Rejected"),
    ],
)
def test_measurand_lists_accept_only_what_the_meter_delivers(
    db: Database, value: str, status: str
) -> None:
    keys = ConfigurationKeys(
        db,
        defaults={},
        number_of_connectors=1,
        supported_profiles=["Core"],
        measurands=METER_MEASURANDS,
    )
    for key in MEASURAND_KEYS:
        assert keys.change(key, value) == status


@pytest.mark.parametrize("measurands", [["Voltage", "Watts"], ["Voltage"]])
def test_bad_measurand_sets_are_refused(db: Database, measurands: list[str]) -> None:
    # "Watts" is no 1.6 measurand; ["Voltage"] cannot hold the default MeterValuesSampledData.
    with pytest.raises(ValueError):
        ConfigurationKeys(
            db,
            defaults={},
            number_of_connectors=1,
            supported_profiles=["Core"],
            measurands=measurands,
        )


def test_unknown_key_is_not_supported(db: Database) -> None:
    keys = make(db)
    assert keys.change("NoSuchKey", "1") == "NotSupported"
    assert keys.change("BlinkRepeat", "3") == "NotSupported"
    assert keys.change("LightIntensity", "50") == "NotSupported"
    assert keys.change("AuthorizationKey", "00") == "NotSupported"


@pytest.mark.parametrize("key", READ_ONLY)
def test_read_only_keys_reject_changes(db: Database, key: str) -> None:
    keys = make(db)
    before = keys.get(key)
    assert keys.change(key, before) == "Rejected"
    assert keys.get(key) == before


def test_key_names_are_case_insensitive(db: Database) -> None:
    keys = make(db)
    assert keys.change("heartbeatINTERVAL", "42") == "Accepted"
    assert keys.get("HeartbeatInterval") == "42"
    assert keys.get_int("heartbeatinterval") == 42


def test_value_longer_than_500_characters_is_rejected(db: Database) -> None:
    keys = make(db)
    assert keys.change("HeartbeatInterval", "0" * 499 + "60") == "Rejected"
    assert keys.change("HeartbeatInterval", "0" * 498 + "60") == "Accepted"


def test_csl_max_length_is_enforced(db: Database) -> None:
    keys = make(db, defaults={"MeterValuesSampledDataMaxLength": "4"})
    assert keys.change("MeterValuesSampledData", "Voltage,SoC,RPM,Frequency") == "Accepted"
    assert keys.change("MeterValuesSampledData", "Voltage,SoC,RPM,Frequency,Power.Offered") == (
        "Rejected"
    )
    assert keys.get_csl("MeterValuesSampledData") == ["Voltage", "SoC", "RPM", "Frequency"]


def test_default_csl_max_length_bounds_each_measurand_list(db: Database) -> None:
    keys = make(db)
    for key in MEASURAND_KEYS:
        limit = keys.get_int(f"{key}MaxLength")
        too_many = [f"Voltage.{p}" for p in ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N")]
        too_many += [m for m in MEASURANDS_16 if m != "Voltage"]
        assert len(too_many) > limit
        assert keys.change(key, ",".join(too_many[:limit])) == "Accepted"
        assert keys.change(key, ",".join(too_many[: limit + 1])) == "Rejected"


def test_default_that_exceeds_its_max_length_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="MeterValuesSampledData"):
        make(db, defaults={"MeterValuesSampledDataMaxLength": "1"})


def test_changes_survive_a_restart(tmp_path: Path) -> None:
    first = Database(tmp_path)
    keys = make(first)
    assert keys.change("HeartbeatInterval", "77") == "Accepted"
    assert keys.change("MeterValuesSampledData", "SoC, Voltage") == "Accepted"
    assert keys.change("WebSocketPingInterval", "15") == "RebootRequired"
    first.close()

    second = Database(tmp_path)
    try:
        again = make(second)
        assert again.get("HeartbeatInterval") == "77"
        assert again.get_csl("MeterValuesSampledData") == ["SoC", "Voltage"]
        assert again.get_int("WebSocketPingInterval") == 15
        assert again.get("MeterValueSampleInterval") == "60"
    finally:
        second.close()


def test_defaults_override_built_ins_and_changes_override_defaults(db: Database) -> None:
    keys = make(
        db, defaults={"HeartbeatInterval": "900", "StopTransactionOnEVSideDisconnect": "false"}
    )
    assert keys.get("HeartbeatInterval") == "900"
    assert keys.get_bool("StopTransactionOnEVSideDisconnect") is False
    assert keys.change("HeartbeatInterval", "60") == "Accepted"

    restarted = make(db, defaults={"HeartbeatInterval": "1800"})
    assert restarted.get("HeartbeatInterval") == "60"
    assert restarted.get_bool("StopTransactionOnEVSideDisconnect") is True


def test_defaults_are_normalised(db: Database) -> None:
    keys = make(db, defaults={"LocalPreAuthorize": "TRUE", "StopTxnSampledData": "SoC, Voltage"})
    assert keys.get("LocalPreAuthorize") == "true"
    assert keys.get("StopTxnSampledData") == "SoC,Voltage"


@pytest.mark.parametrize(
    "defaults",
    [
        {"HeartbeatInterval": "soon"},
        {"NoSuchKey": "1"},
        {"NumberOfConnectors": "4"},
        {"SupportedFeatureProfiles": "Core"},
    ],
)
def test_bad_defaults_are_refused(db: Database, defaults: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        make(db, defaults=defaults)


def test_read_only_keys_can_take_a_daemon_default(db: Database) -> None:
    keys = make(db, defaults={"LocalAuthListMaxLength": "250"})
    assert keys.get_int("LocalAuthListMaxLength") == 250


def test_invalid_stored_value_falls_back_to_default(db: Database) -> None:
    with db.transaction() as cur:
        cur.execute("INSERT INTO kv (key, value) VALUES ('ocpp16.HeartbeatInterval', 'soon')")
        cur.execute("INSERT INTO kv (key, value) VALUES ('ocpp16.NumberOfConnectors', '9')")
        cur.execute("INSERT INTO kv (key, value) VALUES ('ocpp16.Gone', '1')")
        cur.execute("INSERT INTO kv (key, value) VALUES ('other.HeartbeatInterval', '5')")
    keys = make(db)
    assert keys.get("HeartbeatInterval") == "300"
    assert keys.get("NumberOfConnectors") == "2"


def test_subscribers_hear_accepted_changes_only(db: Database) -> None:
    keys = make(db)
    heard: list[tuple[str, str]] = []
    keys.subscribe(lambda key, value: heard.append((key, value)))
    assert keys.change("heartbeatinterval", "0045") == "Accepted"
    assert keys.change("HeartbeatInterval", "-1") == "Rejected"
    assert keys.change("NumberOfConnectors", "3") == "Rejected"
    assert keys.change("WebSocketPingInterval", "10") == "RebootRequired"
    assert keys.change("NoSuchKey", "1") == "NotSupported"
    assert keys.change("LocalPreAuthorize", "TRUE") == "Accepted"
    assert heard == [("HeartbeatInterval", "45"), ("LocalPreAuthorize", "true")]


def test_a_failing_subscriber_does_not_stop_the_others(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make(db)
    heard: list[str] = []

    def broken(key: str, value: str) -> None:
        raise RuntimeError("listener bug")

    keys.subscribe(broken)
    keys.subscribe(lambda key, value: heard.append(value))
    assert keys.change("HeartbeatInterval", "99") == "Accepted"
    assert heard == ["99"]
    assert "listener failed" in caplog.text


def test_typed_getters_check_the_key_type(db: Database) -> None:
    keys = make(db)
    assert keys.get_int("MeterValueSampleInterval") == 60
    assert keys.get_bool("StopTransactionOnEVSideDisconnect") is True
    with pytest.raises(TypeError):
        keys.get_int("LocalPreAuthorize")
    with pytest.raises(TypeError):
        keys.get_bool("HeartbeatInterval")
    with pytest.raises(TypeError):
        keys.get_csl("HeartbeatInterval")
    with pytest.raises(KeyError):
        keys.get("NoSuchKey")


async def test_get_configuration_answer_passes_the_ocpp_library_schema(db: Database) -> None:
    """The entries go through the library's own serialisation and GetConfiguration.conf schema."""
    entries, unknown = make(db).get_configuration(["HeartbeatInterval", "Nope"])
    result = call_result.GetConfiguration(configuration_key=entries, unknown_key=unknown)
    payload = snake_to_camel_case(remove_nones(serialize_as_dict(result)))
    assert payload == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Nope"],
    }
    everything, _ = make(db).get_configuration(None)
    full = call_result.GetConfiguration(configuration_key=everything)
    for body in (payload, snake_to_camel_case(remove_nones(serialize_as_dict(full)))):
        response = Call("1", "GetConfiguration", {}).create_call_result(body)
        await validate_payload(response, "1.6")


def test_supported_file_transfer_protocols_are_the_ones_the_transfers_speak(db: Database) -> None:
    from evsed import upload
    from evsed.ota import download

    listed = set(make(db).get("SupportedFileTransferProtocols").split(","))
    assert listed == {s.upper() for s in download.SCHEMES} == {s.upper() for s in upload.SCHEMES}
