"""The daemon's configuration: one TOML file parsed into typed, frozen dataclasses.

Every key is declared here once, with its type and default; the parser walks these dataclasses,
so an unknown key, a wrong type or a missing required value is reported with the key's dotted
name and the file. ``evsed.example.toml`` documents every key; a test keeps the two in sync.
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


@dataclass(frozen=True, slots=True)
class CsmsConfig:
    """The OCPP-J connection. The charge point id is appended to ``url`` as a path segment."""

    url: str
    heartbeat_interval_s: int = 300
    call_timeout_s: float = 30.0
    reconnect_min_s: float = 2.0
    reconnect_max_s: float = 300.0
    ping_interval_s: float = 60.0
    outbox_max_messages: int = 10000


@dataclass(frozen=True, slots=True)
class ChargingConfig:
    """Session policy."""

    max_current_a: float = 16.0
    phases: int = 3
    free_mode: bool = False
    free_mode_id_tag: str = "evsed-free"
    connection_timeout_s: float = 60.0
    meter_values_interval_s: float = 60.0
    stop_on_ev_disconnect: bool = True
    require_meter: bool = True
    ventilation_available: bool = False
    c_debounce_s: float = 0.5
    connector_lock: bool = False


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
class ContactorConfig:
    """Contactor coil output and mirror-contact feedback input (BCM GPIO numbers)."""

    pin: int = 17
    feedback_pin: int = 27
    feedback_active_high: bool = True
    feedback_check_s: float = 0.1
    pin_factory: str = ""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The simulated world used when ``hal.kind = "sim"``."""

    voltage_v: float = 230.0
    cable_rating_a: int = 32
    meter_port: int = 0
    simulate_pilot: bool = True
    simulate_meter: bool = True
    simulate_contactor: bool = True
    start_faults: str = ""


@dataclass(frozen=True, slots=True)
class HalConfig:
    """Which hardware the daemon drives."""

    kind: Literal["sim", "hardware"]
    pilot: PilotConfig = field(default_factory=PilotConfig)
    meter: MeterConfig = field(default_factory=MeterConfig)
    contactor: ContactorConfig = field(default_factory=ContactorConfig)
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
    charging: ChargingConfig = field(default_factory=ChargingConfig)
    ota: OtaConfig = field(default_factory=OtaConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = field(default="", compare=False)

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
    _check_values(config, path)
    return config


def config_keys(cls: type[Any] = Config, prefix: str = "") -> list[str]:
    """Dotted names of every leaf key, for documentation and the example-file test."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "source" and cls is Config:
            continue
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            keys += config_keys(typing.cast(type[Any], hint), f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


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
        if dataclasses.is_dataclass(hint):
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


def _check_values(config: Config, path: Path) -> None:
    """Range checks that types alone cannot express."""
    checks: list[tuple[bool, str, str]] = [
        (bool(config.charger.id.strip()), "charger.id", "must not be empty"),
        ("/" not in config.charger.id, "charger.id", "must not contain '/'"),
        (
            config.csms.url.startswith(("ws://", "wss://")),
            "csms.url",
            "must start with ws:// or wss://",
        ),
        (config.csms.heartbeat_interval_s > 0, "csms.heartbeat_interval_s", "must be > 0"),
        (config.csms.call_timeout_s > 0, "csms.call_timeout_s", "must be > 0"),
        (config.csms.reconnect_min_s > 0, "csms.reconnect_min_s", "must be > 0"),
        (
            config.csms.reconnect_max_s >= config.csms.reconnect_min_s,
            "csms.reconnect_max_s",
            "must be >= csms.reconnect_min_s",
        ),
        (config.csms.ping_interval_s >= 0, "csms.ping_interval_s", "must be >= 0 (0 = off)"),
        (
            config.csms.outbox_max_messages >= 100,
            "csms.outbox_max_messages",
            "must be at least 100",
        ),
        (
            6.0 <= config.charging.max_current_a <= 80.0,
            "charging.max_current_a",
            "must be between 6 and 80 A (IEC 61851-1 PWM range)",
        ),
        (config.charging.phases in (1, 3), "charging.phases", "must be 1 or 3"),
        (config.charging.connection_timeout_s > 0, "charging.connection_timeout_s", "must be > 0"),
        (
            config.charging.meter_values_interval_s >= 0,
            "charging.meter_values_interval_s",
            "must be >= 0 (0 = off)",
        ),
        (
            0.0 <= config.charging.c_debounce_s <= 2.5,
            "charging.c_debounce_s",
            "must be between 0 and 2.5 s (contactor must close within 3 s of C)",
        ),
        (
            0.02 <= config.hal.contactor.feedback_check_s <= 2.0,
            "hal.contactor.feedback_check_s",
            "must be between 0.02 and 2 s",
        ),
        (
            config.hal.meter.model != "custom" or bool(config.hal.meter.map_file),
            "hal.meter.map_file",
            'required when hal.meter.model = "custom"',
        ),
        (
            _valid_window(config.ota.maintenance_window),
            "ota.maintenance_window",
            'must be "" or "HH:MM-HH:MM" (UTC)',
        ),
        (config.ota.min_free_mb >= 0, "ota.min_free_mb", "must be >= 0"),
        (
            config.ota.health_check_timeout_s >= 10,
            "ota.health_check_timeout_s",
            "must be at least 10 s",
        ),
        (config.hal.meter.poll_interval_s > 0, "hal.meter.poll_interval_s", "must be > 0"),
        (config.hal.meter.timeout_s > 0, "hal.meter.timeout_s", "must be > 0"),
        (1 <= config.hal.meter.device_id <= 247, "hal.meter.device_id", "must be 1..247"),
        (0 <= config.hal.sim.meter_port <= 65535, "hal.sim.meter_port", "must be 0..65535"),
        (
            config.hal.contactor.pin != config.hal.contactor.feedback_pin,
            "hal.contactor.feedback_pin",
            "must differ from hal.contactor.pin",
        ),
    ]
    for ok, key, problem in checks:
        if not ok:
            raise ConfigError(path, key, problem)


def _valid_window(window: str) -> bool:
    if not window:
        return True
    import re

    match = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", window)
    if not match:
        return False
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60
