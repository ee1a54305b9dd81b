"""OCA OCPP 1.6 Core test cases: configuration keys (TC_019, TC_021, TC_040_1, TC_040_2)."""

from collections.abc import Callable

from oca_support import booted

from evsed_devtools.harness import DevCsms, Evsed

# OCPP 1.6 §9.1 / §9.2: the keys a Charge Point with Core and Local Auth List Management must
# report, with their accessibility (None: R or RW, the implementation chooses).
REQUIRED_CORE = {
    "AuthorizeRemoteTxRequests": None,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MeterValuesAlignedData": False,
    "MeterValuesSampledData": False,
    "MeterValueSampleInterval": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnEVSideDisconnect": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnSampledData": False,
    "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": False,
}
REQUIRED_LOCAL_AUTH_LIST = {
    "LocalAuthListEnabled": False,
    "LocalAuthListMaxLength": True,
    "SendLocalListMaxLength": True,
}


def test_tc_019_retrieve_configuration(csms: DevCsms, start_evsed: Callable[..., Evsed]) -> None:
    booted(start_evsed, csms)
    profiles = csms.result("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})
    assert "unknownKey" not in profiles
    (entry,) = profiles["configurationKey"]
    assert entry["key"] == "SupportedFeatureProfiles"
    supported = entry["value"].split(",")
    assert "Core" in supported and "LocalAuthListManagement" in supported

    everything = csms.result("GetConfiguration", {})
    keys = {k["key"]: k for k in everything["configurationKey"]}
    required = REQUIRED_CORE | REQUIRED_LOCAL_AUTH_LIST
    assert set(required) <= set(keys), set(required) - set(keys)
    for name, readonly in required.items():
        if readonly is not None:
            assert keys[name]["readonly"] is readonly, name
    assert keys["NumberOfConnectors"]["value"] == "1"

    some = csms.result("GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
    assert [k["key"] for k in some["configurationKey"]] == ["HeartbeatInterval"]
    assert some["unknownKey"] == ["NoSuchKey"]


def test_tc_021_change_set_configuration(csms: DevCsms, start_evsed: Callable[..., Evsed]) -> None:
    booted(start_evsed, csms)
    before = csms.result("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert before["configurationKey"][0]["value"] != "17"
    changed = csms.result("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "17"})
    assert changed == {"status": "Accepted"}
    after = csms.result("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert after["configurationKey"] == [
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "17"}
    ]


def test_tc_040_1_configuration_key_not_supported(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    answer = csms.result("ChangeConfiguration", {"key": "Testing", "value": "true"})
    assert answer == {"status": "NotSupported"}


def test_tc_040_2_configuration_key_invalid_value(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    answer = csms.result("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "-1"})
    assert answer == {"status": "Rejected"}
    unchanged = csms.result("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert unchanged["configurationKey"][0]["value"] != "-1"
