"""The daemon's configuration: one TOML file parsed into typed, frozen dataclasses.

Every key is declared here once, with its type and default; the parser walks these dataclasses,
so an unknown key, a wrong type or a missing required value is reported with the key's dotted
name and the file. ``evsed.example.toml`` documents every key; a test keeps the two in sync.

Connectors are data: ``[[connectors]]`` is a list of tables, one per connector (a single-socket
charger is a list of one, and the default when the file has none). A key inside one is named
``connectors[N].key``, N counting the ``[[connectors]]`` tables of the file from 1.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evsed.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ChargerConfig:
    """Identity of the charge point and where the daemon keeps its files."""

    id: str
    vendor: str = "evsed"
    model: str = "evsed"
    serial_number: str = ""
    firmware_version: str = ""
    state_dir: str = "/data/evsed"
    control_socket: str = "/run/evsed/control.sock"
    reboot_command: str = "systemctl reboot"
    # The enclosure's tamper switch (BCM pin; 0: none) and the level that means "open".
    tamper_pin: int = 0
    tamper_open_high: bool = True


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    """The OCPP-J connection. The charge point id is appended to ``url`` as a path segment."""

    url: str
    protocol: Literal["ocpp1.6"] = "ocpp1.6"
    heartbeat_interval_s: int = 300
    call_timeout_s: float = 30.0
    reconnect_min_s: float = 2.0
    reconnect_max_s: float = 300.0
    ping_interval_s: float = 60.0
    outbox_max_messages: int = 10000
    # Security Whitepaper: the profile to start with (the CSMS may raise it), and the initial
    # credentials (files in <state_dir>/security may provide them instead).
    security_profile: int = 0
    allow_unencrypted: bool = False
    authorization_key: str = ""
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    cpo_name: str = ""
    max_message_bytes: int = 262144


@dataclass(frozen=True, slots=True)
class ChargingConfig:
    """Session policy, the same for every connector, and the supply they share."""

    supply_max_current_a: float = 0.0
    nominal_voltage_v: float = 230.0
    site_fuse_a: float = 0.0
    site_fallback_current_a: float = 6.0
    free_mode: bool = False
    free_mode_id_tag: str = "evsed-free"
    connection_timeout_s: float = 60.0
    meter_values_interval_s: float = 60.0
    stop_on_ev_disconnect: bool = True
    require_meter: bool = True
    ventilation_available: bool = False
    c_debounce_s: float = 0.5
    fault_history_rows: int = 1000


@dataclass(frozen=True, slots=True)
class PilotConfig:
    """Serial line to the control-pilot MCU (hardware mode)."""

    port: str = "/dev/ttyAMA0"
    baudrate: int = 115200


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Energy meter over Modbus (hardware mode)."""

    model: str = "sdm630"
    map_file: str = ""
    transport: Literal["tcp", "rtu"] = "rtu"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = "/dev/ttyUSB0"
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    device_id: int = 1
    timeout_s: float = 1.0
    poll_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class SiteMeterConfig(MeterConfig):
    """The site meter (local load management): a meter like a connector's, by default at
    device id 10 so that it can share the connectors' RS-485 line."""

    device_id: int = 10


@dataclass(frozen=True, slots=True)
class ContactorConfig:
    """Contactor coil output and mirror-contact feedback input (BCM GPIO numbers)."""

    pin: int = 17
    feedback_pin: int = 27
    feedback_active_high: bool = True
    feedback_check_s: float = 0.1
    pin_factory: str = ""


@dataclass(frozen=True, slots=True)
class ConnectorConfig:
    """One connector (socket or tethered cable) and the hardware that serves it."""

    id: int = 1
    max_current_a: float = 16.0
    phases: int = 3
    connector_lock: bool = False
    pilot: PilotConfig = field(default_factory=PilotConfig)
    meter: MeterConfig = field(default_factory=MeterConfig)
    contactor: ContactorConfig = field(default_factory=ContactorConfig)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The simulated world used when ``hal.kind = "sim"``."""

    voltage_v: float = 230.0
    cable_rating_a: int = 32
    meter_port: int = 0
    meter_transport: Literal["tcp", "rtu"] = "tcp"
    simulate_pilot: bool = True
    simulate_meter: bool = True
    simulate_contactor: bool = True
    start_faults: str = ""


@dataclass(frozen=True, slots=True)
class HalConfig:
    """Which hardware the daemon drives."""

    kind: Literal["sim", "hardware"]
    sim: SimConfig = field(default_factory=SimConfig)


@dataclass(frozen=True, slots=True)
class OtaConfig:
    """Firmware updates: UpdateFirmware / SignedUpdateFirmware -> RAUC bundle -> A/B slot."""

    enabled: bool = True
    rauc: str = "rauc"
    keyring: str = "/etc/rauc/ca.cert.pem"
    manufacturer_root: str = ""
    ca_file: str = ""
    download_dir: str = ""
    min_free_mb: int = 64
    maintenance_window: str = ""
    health_check_timeout_s: float = 300.0
    # Delta updates (casync bundles): where the chunks come from, and the loopback port on
    # which evsed hands them to RAUC (system.conf [casync] install-args=--store=URL).
    casync_store_url: str = ""
    casync_relay_port: int = 7433


@dataclass(frozen=True, slots=True)
class ReservationsConfig:
    """Reservations (OCPP 1.6 §3.12): whether the charger accepts them, also for any connector."""

    enabled: bool = True
    connector_zero: bool = True


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """Prices and costs the CSMS sends, shown per connector (evsectl status, display feed)."""

    languages: str = "en"  # RFC 5646 tags, comma-separated; the first is the default
    display_interval_s: float = 1.0  # how often the display feed looks at energy and power


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Log output (stderr, or the journal when running under systemd)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file."""

    charger: ChargerConfig
    csms: CsmsConfig
    hal: HalConfig
    connectors: tuple[ConnectorConfig, ...] = (ConnectorConfig(),)
    charging: ChargingConfig = field(default_factory=ChargingConfig)
    site_meter: SiteMeterConfig = field(default_factory=SiteMeterConfig)
    ota: OtaConfig = field(default_factory=OtaConfig)
    reservations: ReservationsConfig = field(default_factory=ReservationsConfig)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = field(default="", compare=False)

    @property
    def load_management(self) -> bool:
        """Local load management: a site meter and the fuse it keeps the site under."""
        return self.charging.site_fuse_a > 0

    @property
    def state_dir(self) -> Path:
        return Path(self.charger.state_dir)

    @property
    def control_socket(self) -> Path:
        return Path(self.charger.control_socket)


def load_config(path: Path | str) -> Config:
    """Read and validate ``path``. Raises :class:`ConfigError` naming the key and the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(path, "", "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"invalid TOML: {exc}") from None
    config: Config = _build(Config, data, path, prefix="", skip={"source"})
    config = dataclasses.replace(config, source=str(path))
    from evsed.config_checks import check_values  # it imports the tables above

    check_values(config, path)
    return config


def config_keys(cls: type[Any] = Config, prefix: str = "") -> list[str]:
    """Dotted names of every leaf key, for documentation and the example-file test."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "source" and cls is Config:
            continue
        hint = hints[f.name]
        table = _table_of(hint)
        if table is not None:
            keys += config_keys(table, f"{prefix}{f.name}.")
        elif dataclasses.is_dataclass(hint):
            keys += config_keys(typing.cast(type[Any], hint), f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _table_of(hint: Any) -> type[Any] | None:
    """The dataclass of a list-of-tables field (``tuple[SomeConfig, ...]``), else None."""
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0]):
            return typing.cast(type[Any], args[0])
    return None


def _build(cls: type[Any], data: dict[str, Any], path: Path, prefix: str, skip: set[str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    for key in data:
        if key not in fields:
            raise ConfigError(path, f"{prefix}{key}", "unknown key")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        dotted = f"{prefix}{name}"
        hint = hints[name]
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                what = "table" if dataclasses.is_dataclass(hint) else "value"
                raise ConfigError(path, dotted, f"required {what} is missing")
            continue
        value = data[name]
        table = _table_of(hint)
        if table is not None:
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(
                    path, dotted, f"expected tables ([[{dotted}]]), got {_kind(value)}"
                )
            if not value:
                raise ConfigError(path, dotted, "needs at least one table")
            values[name] = tuple(
                _build(table, item, path, f"{dotted}[{i}].", set())
                for i, item in enumerate(value, start=1)
            )
        elif dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(path, dotted, f"expected a table, got {_kind(value)}")
            values[name] = _build(typing.cast(type[Any], hint), value, path, f"{dotted}.", set())
        else:
            values[name] = _coerce(hint, value, path, dotted)
    return cls(**values)


def _coerce(hint: Any, value: Any, path: Path, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ConfigError(path, key, f"must be one of {allowed}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type for {key}: {hint}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type for {key}: {hint}")
    name = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}[hint]
    raise ConfigError(path, key, f"expected {name}, got {_kind(value)} {value!r}")


def _kind(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)
