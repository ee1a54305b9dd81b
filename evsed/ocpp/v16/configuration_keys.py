"""The OCPP 1.6 standard configuration keys we offer, and the grammar of their values.

OCPP 1.6 §9.1 (Core profile) and §9.2 (Local Auth List Management profile). ``KEYS`` is the
table; :func:`normalise` checks a value against a key's type and range and returns it in the
one spelling we store and report. :class:`~evsed.ocpp.v16.configuration.ConfigurationKeys`
adds persistence and the GetConfiguration/ChangeConfiguration semantics.

Effect names the part of the daemon that acts on a key: it reads the key through ``get_*`` when
needed, or hears changes through ``subscribe`` (the composition root wires this). authorization
= ``authorization.py``; invalid id = ``invalid_id.py``; metering =
``metering.py``/``transactions.py``; session = the charging settings; connector, heartbeat loop
and outbox = ``connector.py``/``service.py``; transport = the websocket link. "this store": a
*MaxLength that ChangeConfiguration enforces here; "fixed": a read-only fact; "advisory": see
GetConfiguration in ``configuration.py``. "informational" keys are stored and reported as §9.1
requires, but nothing in the daemon acts on them (yet).

=================================  =====  ==  ===============================  ===  ==============
Key                                Type   RW  Default                          Rb.  Effect
=================================  =====  ==  ===============================  ===  ==============
AllowOfflineTxForUnknownId         bool   RW  false                            no   authorization
AuthorizationCacheEnabled          bool   RW  true                             no   authorization
AuthorizeRemoteTxRequests          bool   RW  false (true: Authorize.req       no   session
                                                before a remote start, §5.11)
ClockAlignedDataInterval           int    RW  0 (0..86400 s, 0 = off)          no   metering
ConnectionTimeOut                  int    RW  60 (1..86400 s)                  no   session
ConnectorPhaseRotation             CSL    RW  1.Unknown,...,N.Unknown          no   informational
ConnectorPhaseRotationMaxLength    int    R   connectors + 1                   no   this store
GetConfigurationMaxKeys            int    R   50                               no   advisory
HeartbeatInterval                  int    RW  300 (1..86400 s)                 no   heartbeat loop
LocalAuthorizeOffline              bool   RW  true                             no   authorization
LocalPreAuthorize                  bool   RW  false                            no   authorization
MaxEnergyOnInvalidId               int    RW  0 (Wh)                           no   invalid id
MeterValuesAlignedData             CSL    RW  Energy.Active.Import.Register    no   metering
MeterValuesAlignedDataMaxLength    int    R   20                               no   this store
MeterValuesSampledData             CSL    RW  Energy.Active.Import.Register,   no   metering
                                                Power.Active.Import,
                                                Current.Import,Voltage
MeterValuesSampledDataMaxLength    int    R   20                               no   this store
MeterValueSampleInterval           int    RW  60 (0..86400 s, 0 = off)         no   connector
MinimumStatusDuration              int    RW  0 (0..86400 s)                   no   informational
NumberOfConnectors                 int    R   constructor argument             no   fixed
ResetRetries                       int    RW  2 (0..100)                       no   informational
StopTransactionOnEVSideDisconnect  bool   RW  true                             no   session
StopTransactionOnInvalidId         bool   RW  true                             no   invalid id
StopTxnAlignedData                 CSL    RW  (empty)                          no   metering
StopTxnAlignedDataMaxLength        int    R   20                               no   this store
StopTxnSampledData                 CSL    RW  (empty)                          no   metering
StopTxnSampledDataMaxLength        int    R   20                               no   this store
SupportedFeatureProfiles           CSL    R   constructor argument             no   fixed
SupportedFeatureProfilesMaxLength  int    R   6 (all 1.6 profiles)             no   this store
SupportedFileTransferProtocols     CSL    R   FTP,HTTP,HTTPS                   no   fixed
TransactionMessageAttempts         int    RW  3 (1..100)                       no   outbox
TransactionMessageRetryInterval    int    RW  10 (1..86400 s)                  no   outbox
UnlockConnectorOnEVSideDisconnect  bool   RW  true                             no   informational
WebSocketPingInterval              int    RW  60 (0..86400 s, 0 = off)         yes  transport
LocalAuthListEnabled (§9.2)        bool   RW  true                             no   authorization
LocalAuthListMaxLength (§9.2)      int    R   1000                             no   authorization
SendLocalListMaxLength (§9.2)      int    R   1000                             no   authorization
ChargeProfileMaxStackLevel (§9.4)  int    R   8                                no   smart charging
ChargingScheduleAllowedCharging-   CSL    R   Current,Power                    no   smart charging
  RateUnit (§9.4)
ChargingScheduleMaxPeriods (§9.4)  int    R   24                               no   smart charging
ConnectorSwitch3to1Phase-          bool   R   false                            no   fixed
  Supported (§9.4)
MaxChargingProfilesInstalled       int    R   16                               no   smart charging
  (§9.4)
ReserveConnectorZeroSupported      bool   R   reservations.connector_zero      no   reservations
  (§9.3)
=================================  =====  ==  ===============================  ===  ==============

The §9.2 keys exist only when LocalAuthListManagement is a supported profile, the §9.4 keys only
when SmartCharging is. Not offered: BlinkRepeat and LightIntensity (optional in §9.1; the
charger has no lights to blink or dim), AuthorizationKey (Security whitepaper, not 1.6 core).
WebSocketPingInterval is "RebootRequired" because the websocket keep-alive is fixed per
connection; the transport reads it when it next connects. smart charging = ``smart_charging.py``,
which refuses a profile that breaks the §9.4 limits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ocpp.v16.enums import Measurand, Phase

INT32_MAX = 2**31 - 1
DAY_S = 86_400
MAX_VALUE_LENGTH = 500  # ChangeConfiguration.req / KeyValue: value is CiString500Type

CORE = "Core"
LOCAL_AUTH_LIST = "LocalAuthListManagement"
RESERVATION = "Reservation"
SMART_CHARGING = "SmartCharging"
# The six feature profiles of OCPP 1.6 (§3).
FEATURE_PROFILES = (
    CORE,
    "FirmwareManagement",
    LOCAL_AUTH_LIST,
    RESERVATION,
    "SmartCharging",
    "RemoteTrigger",
)
PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")

# Keys whose value comes from a constructor argument, never from ``defaults`` or the CSMS.
NUMBER_OF_CONNECTORS = "NumberOfConnectors"
SUPPORTED_FEATURE_PROFILES = "SupportedFeatureProfiles"


class KeyType(StrEnum):
    BOOL = "boolean"
    INT = "integer"
    CSL = "CSL"
    STRING = "string"  # free text (vendor keys), checked by the key's own ``check``


class Vocabulary(StrEnum):
    """What the members of a comma-separated list may be."""

    MEASURANDS = "measurands"  # a Measurand, optionally ".<Phase>" (§9.1.17: "Voltage.L1")
    PHASE_ROTATION = "phase rotation"  # "<connectorId>.<rotation>", e.g. 0.RST,1.RTS
    PROFILES = "feature profiles"
    RATE_UNITS = "charging rate units"  # Current, Power (§9.4)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """One standard configuration key: its type, access, range and default (OCPP 1.6 §9)."""

    name: str
    type: KeyType
    readonly: bool
    default: str
    reboot_required: bool = False
    minimum: int = 0
    maximum: int = INT32_MAX
    vocabulary: Vocabulary | None = None
    max_items_key: str = ""  # CSL only: the *MaxLength key that bounds the number of items
    profile: str = CORE
    # STRING only: the value in canonical form, or None when it is not valid for the key.
    check: Callable[[str], str | None] | None = None


def _bool(name: str, default: bool, *, readonly: bool = False, profile: str = CORE) -> KeySpec:
    return KeySpec(name, KeyType.BOOL, readonly, "true" if default else "false", profile=profile)


def _int(name: str, default: int, low: int, high: int, *, reboot: bool = False) -> KeySpec:
    return KeySpec(name, KeyType.INT, False, str(default), reboot, low, high)


def _ro_int(name: str, default: int, *, profile: str = CORE) -> KeySpec:
    return KeySpec(name, KeyType.INT, True, str(default), profile=profile)


def _csl(name: str, default: str, vocabulary: Vocabulary, *, readonly: bool = False) -> KeySpec:
    return KeySpec(
        name,
        KeyType.CSL,
        readonly,
        default,
        vocabulary=vocabulary,
        max_items_key=f"{name}MaxLength",
    )


_M = Vocabulary.MEASURANDS
SAMPLED_DEFAULT = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage"

# Spec order (§9.1, then §9.2); GetConfiguration answers in this order. Defaults marked
# "derived" in the module table are filled in by ConfigurationKeys from its arguments.
KEYS: tuple[KeySpec, ...] = (
    _bool("AllowOfflineTxForUnknownId", False),
    _bool("AuthorizationCacheEnabled", True),
    _bool("AuthorizeRemoteTxRequests", False),
    _int("ClockAlignedDataInterval", 0, 0, DAY_S),
    _int("ConnectionTimeOut", 60, 1, DAY_S),
    _csl("ConnectorPhaseRotation", "", Vocabulary.PHASE_ROTATION),
    _ro_int("ConnectorPhaseRotationMaxLength", 0),
    _ro_int("GetConfigurationMaxKeys", 50),
    _int("HeartbeatInterval", 300, 1, DAY_S),
    _bool("LocalAuthorizeOffline", True),
    _bool("LocalPreAuthorize", False),
    _int("MaxEnergyOnInvalidId", 0, 0, INT32_MAX),
    _csl("MeterValuesAlignedData", "Energy.Active.Import.Register", _M),
    _ro_int("MeterValuesAlignedDataMaxLength", 20),
    _csl("MeterValuesSampledData", SAMPLED_DEFAULT, _M),
    _ro_int("MeterValuesSampledDataMaxLength", 20),
    _int("MeterValueSampleInterval", 60, 0, DAY_S),
    _int("MinimumStatusDuration", 0, 0, DAY_S),
    _ro_int(NUMBER_OF_CONNECTORS, 1),
    _int("ResetRetries", 2, 0, 100),
    _bool("StopTransactionOnEVSideDisconnect", True),
    _bool("StopTransactionOnInvalidId", True),
    _csl("StopTxnAlignedData", "", _M),
    _ro_int("StopTxnAlignedDataMaxLength", 20),
    _csl("StopTxnSampledData", "", _M),
    _ro_int("StopTxnSampledDataMaxLength", 20),
    _csl(SUPPORTED_FEATURE_PROFILES, CORE, Vocabulary.PROFILES, readonly=True),
    _ro_int("SupportedFeatureProfilesMaxLength", len(FEATURE_PROFILES)),
    # What GetDiagnostics, GetLog and UpdateFirmware locations may use (evsed/upload.py,
    # evsed/ota/download.py).
    KeySpec("SupportedFileTransferProtocols", KeyType.STRING, True, "FTP,HTTP,HTTPS"),
    _int("TransactionMessageAttempts", 3, 1, 100),
    _int("TransactionMessageRetryInterval", 10, 1, DAY_S),
    _bool("UnlockConnectorOnEVSideDisconnect", True),
    _int("WebSocketPingInterval", 60, 0, DAY_S, reboot=True),
    _bool("LocalAuthListEnabled", True, profile=LOCAL_AUTH_LIST),
    _ro_int("LocalAuthListMaxLength", 1000, profile=LOCAL_AUTH_LIST),
    _ro_int("SendLocalListMaxLength", 1000, profile=LOCAL_AUTH_LIST),
    _bool("ReserveConnectorZeroSupported", True, readonly=True, profile=RESERVATION),
    _ro_int("ChargeProfileMaxStackLevel", 8, profile=SMART_CHARGING),
    KeySpec(
        "ChargingScheduleAllowedChargingRateUnit",
        KeyType.CSL,
        True,
        "Current,Power",
        vocabulary=Vocabulary.RATE_UNITS,
        profile=SMART_CHARGING,
    ),
    _ro_int("ChargingScheduleMaxPeriods", 24, profile=SMART_CHARGING),
    _bool("ConnectorSwitch3to1PhaseSupported", False, readonly=True, profile=SMART_CHARGING),
    _ro_int("MaxChargingProfilesInstalled", 16, profile=SMART_CHARGING),
)

# ASCII digits only: rejects "+5", "-1", "1.5", "1e3", "1_000" and non-ASCII digits.
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_MEASURAND_NAMES: dict[str, str] = {str(m.value).lower(): str(m.value) for m in Measurand}
_PHASE_NAMES: dict[str, str] = {str(p.value).lower(): str(p.value) for p in Phase}
_ROTATION_NAMES = {r.lower(): r for r in PHASE_ROTATIONS}
_PROFILE_NAMES = {p.lower(): p for p in FEATURE_PROFILES}
_RATE_UNIT_NAMES = {"current": "Current", "power": "Power"}
MEASURANDS = frozenset(_MEASURAND_NAMES.values())  # the whole OCPP 1.6 Measurand enum


def normalise(
    spec: KeySpec,
    raw: str,
    *,
    connectors: int,
    max_items: int,
    measurands: frozenset[str] = MEASURANDS,
) -> str | None:
    """``raw`` in canonical form if it is a valid value for ``spec``, else None.

    Values are CiString500Type, so booleans and list members match case-insensitively and are
    stored in their spec spelling; surrounding spaces (also after commas) are dropped.
    ``max_items`` bounds a CSL (its *MaxLength key); ``connectors`` bounds phase-rotation ids;
    ``measurands`` narrows the Measurand enum to what the meter can deliver.
    """
    if len(raw) > MAX_VALUE_LENGTH:
        return None
    text = raw.strip()
    if spec.type is KeyType.BOOL:
        lowered = text.lower()
        return lowered if lowered in ("true", "false") else None
    if spec.type is KeyType.STRING:
        return spec.check(raw) if spec.check is not None else raw
    if spec.type is KeyType.INT:
        if not _DIGITS.fullmatch(text):
            return None
        number = int(text)
        return str(number) if spec.minimum <= number <= spec.maximum else None
    items = [item.strip() for item in text.split(",")] if text else []
    if len(items) > max_items or not all(items):
        return None
    members: list[str] = []
    identities: set[str] = set()
    for item in items:
        member = _member(spec.vocabulary, item, connectors, measurands)
        if member is None:
            return None
        # A connector appears once in ConnectorPhaseRotation; any other member once per list.
        identity = (
            member.partition(".")[0] if spec.vocabulary is Vocabulary.PHASE_ROTATION else member
        )
        if identity in identities:
            return None
        identities.add(identity)
        members.append(member)
    return ",".join(members)


def _member(
    vocabulary: Vocabulary | None, item: str, connectors: int, measurands: frozenset[str]
) -> str | None:
    lowered = item.lower()
    if vocabulary is Vocabulary.MEASURANDS:
        base, phase = lowered, ""
        if lowered not in _MEASURAND_NAMES:
            base, _, phase = lowered.rpartition(".")
            if phase not in _PHASE_NAMES:
                return None
        name = _MEASURAND_NAMES.get(base)
        if name is None or name not in measurands:
            return None
        return f"{name}.{_PHASE_NAMES[phase]}" if phase else name
    if vocabulary is Vocabulary.PHASE_ROTATION:
        connector, _, rotation = lowered.partition(".")
        valid_connector = bool(_DIGITS.fullmatch(connector)) and int(connector) <= connectors
        if valid_connector and rotation in _ROTATION_NAMES:
            return f"{int(connector)}.{_ROTATION_NAMES[rotation]}"
        return None
    if vocabulary is Vocabulary.PROFILES:
        return _PROFILE_NAMES.get(lowered)
    if vocabulary is Vocabulary.RATE_UNITS:
        return _RATE_UNIT_NAMES.get(lowered)
    return None
