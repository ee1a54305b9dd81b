"""Range checks of a parsed config that its types alone cannot express, and the rules
across connectors (ids 1..N, one pin / pilot line / meter address each, shared RS-485 lines
that agree). Each failure is a :class:`~evsed.errors.ConfigError` naming the key."""

from __future__ import annotations

import re
from pathlib import Path

from evsed.config import Config, ConnectorConfig, MeterConfig
from evsed.errors import ConfigError


def check_values(config: Config, path: Path) -> None:
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
        *_security_checks(config),
        (
            config.csms.outbox_max_messages >= 100,
            "csms.outbox_max_messages",
            "must be at least 100",
        ),
        (
            config.charging.supply_max_current_a == 0 or config.charging.supply_max_current_a >= 6,
            "charging.supply_max_current_a",
            "must be 0 (no supply limit) or at least 6 A",
        ),
        (
            100.0 <= config.charging.nominal_voltage_v <= 480.0,
            "charging.nominal_voltage_v",
            "must be between 100 and 480 V",
        ),
        (
            config.charging.site_fuse_a == 0 or config.charging.site_fuse_a >= 6,
            "charging.site_fuse_a",
            "must be 0 (no load management) or at least 6 A",
        ),
        (
            config.charging.site_fallback_current_a >= 0
            and (
                not config.load_management
                or config.charging.site_fallback_current_a <= config.charging.site_fuse_a
            ),
            "charging.site_fallback_current_a",
            "must be between 0 and charging.site_fuse_a",
        ),
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
            _valid_languages(config.pricing.languages),
            "pricing.languages",
            'must be RFC 5646 language tags separated by commas, e.g. "en,nl"',
        ),
        (
            0.1 <= config.pricing.display_interval_s <= 60,
            "pricing.display_interval_s",
            "must be between 0.1 and 60 s",
        ),
        (
            10 <= config.charging.fault_history_rows <= 1_000_000,
            "charging.fault_history_rows",
            "must be between 10 and 1000000",
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
        (
            0 <= config.ota.casync_relay_port <= 65535,
            "ota.casync_relay_port",
            "must be 0 (no delta updates) or a TCP port",
        ),
        (
            config.ota.casync_store_url.split("://")[0] in ("", "http", "https"),
            "ota.casync_store_url",
            'must be "" (beside the bundle) or an http:// or https:// URL',
        ),
        (0 <= config.hal.sim.meter_port <= 65535, "hal.sim.meter_port", "must be 0..65535"),
    ]
    for index, connector in enumerate(config.connectors, start=1):
        checks += _connector_checks(connector, f"connectors[{index}].")
    if config.load_management:
        checks += _meter_checks(config.site_meter, "site_meter.")
    for ok, key, problem in checks:
        if not ok:
            raise ConfigError(path, key, problem)
    _check_across_connectors(config, path)


def _security_checks(config: Config) -> list[tuple[bool, str, str]]:
    """The security profile and the URL must agree (Security Whitepaper section 2)."""
    csms = config.csms
    plain = csms.url.startswith("ws://")
    key = csms.authorization_key
    return [
        (csms.security_profile in (0, 1, 2, 3), "csms.security_profile", "must be 0, 1, 2 or 3"),
        (
            not (plain and csms.security_profile >= 2),
            "csms.url",
            f"security profile {csms.security_profile} needs a wss:// URL",
        ),
        (
            not (plain and csms.security_profile == 1) or csms.allow_unencrypted,
            "csms.url",
            "security profile 1 over ws:// sends the password unencrypted: use wss:// (profile"
            " 2), or set csms.allow_unencrypted = true (only on a trusted network, e.g. a VPN)",
        ),
        (
            not key or (len(key) % 2 == 0 and 32 <= len(key) <= 40 and _hex(key)),
            "csms.authorization_key",
            "must be 32 to 40 hexadecimal digits (16 to 20 bytes)",
        ),
        (
            bool(csms.client_cert) == bool(csms.client_key),
            "csms.client_key",
            "csms.client_cert and csms.client_key go together",
        ),
        (
            1024 <= csms.max_message_bytes <= 4 * 1024 * 1024,
            "csms.max_message_bytes",
            "must be between 1024 and 4194304",
        ),
    ]


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _connector_checks(c: ConnectorConfig, where: str) -> list[tuple[bool, str, str]]:
    return [
        (1 <= c.id <= 99, f"{where}id", "must be 1..99"),
        (
            6.0 <= c.max_current_a <= 80.0,
            f"{where}max_current_a",
            "must be between 6 and 80 A (IEC 61851-1 PWM range)",
        ),
        (c.phases in (1, 3), f"{where}phases", "must be 1 or 3"),
        (
            0.02 <= c.contactor.feedback_check_s <= 2.0,
            f"{where}contactor.feedback_check_s",
            "must be between 0.02 and 2 s",
        ),
        *_meter_checks(c.meter, f"{where}meter."),
        (
            c.contactor.pin != c.contactor.feedback_pin,
            f"{where}contactor.feedback_pin",
            "must differ from contactor.pin",
        ),
    ]


def _meter_checks(m: MeterConfig, where: str) -> list[tuple[bool, str, str]]:
    return [
        (
            m.model != "custom" or bool(m.map_file),
            f"{where}map_file",
            'required when model = "custom"',
        ),
        (m.poll_interval_s > 0, f"{where}poll_interval_s", "must be > 0"),
        (m.timeout_s > 0, f"{where}timeout_s", "must be > 0"),
        (1 <= m.device_id <= 247, f"{where}device_id", "must be 1..247"),
    ]


def _check_across_connectors(config: Config, path: Path) -> None:
    """Connector ids 1..N (OCPP numbers them so), and no two connectors on one pin, one
    pilot line, or one meter address; meters that share an RS-485 line agree on its settings."""
    ids = [c.id for c in config.connectors]
    for index, connector in enumerate(config.connectors, start=1):
        if connector.id in ids[: index - 1]:
            raise ConfigError(path, f"connectors[{index}].id", f"{connector.id} is used twice")
    if sorted(ids) != list(range(1, len(ids) + 1)):
        raise ConfigError(
            path, "connectors", f"connector ids must be 1..{len(ids)} (OCPP numbering), got {ids}"
        )
    pins: dict[int, str] = {}
    pilots: dict[str, str] = {}
    meters: dict[tuple[str, ...], str] = {}
    lines: dict[str, tuple[int, str, int, str]] = {}
    for index, c in enumerate(config.connectors, start=1):
        where = f"connectors[{index}]"
        for name, pin in (("pin", c.contactor.pin), ("feedback_pin", c.contactor.feedback_pin)):
            key = f"{where}.contactor.{name}"
            if pin in pins:
                raise ConfigError(path, key, f"GPIO {pin} is already used by {pins[pin]}")
            pins[pin] = key
        if config.hal.kind == "hardware" or not config.hal.sim.simulate_pilot:
            if c.pilot.port in pilots:
                raise ConfigError(
                    path,
                    f"{where}.pilot.port",
                    f"{c.pilot.port} is already used by {pilots[c.pilot.port]}",
                )
            pilots[c.pilot.port] = where
    placed = [(f"connectors[{i}].meter", c.meter) for i, c in enumerate(config.connectors, 1)]
    if config.load_management:
        placed.append(("site_meter", config.site_meter))
    for where, m in placed:
        bus = (
            (m.transport, m.serial_port)
            if m.transport == "rtu"
            else (m.transport, m.host, str(m.port))
        )
        address = (*bus, str(m.device_id))
        if address in meters:
            raise ConfigError(
                path,
                f"{where}.device_id",
                f"device id {m.device_id} on the same line is already used by {meters[address]}",
            )
        meters[address] = where
        if m.transport == "rtu":
            settings = (m.baudrate, m.parity, m.stopbits, where)
            first = lines.setdefault(m.serial_port, settings)
            if first[:3] != settings[:3]:
                raise ConfigError(
                    path,
                    f"{where}.baudrate",
                    f"meters on {m.serial_port} share one RS-485 line: baudrate, parity and"
                    f" stopbits must match {first[3]}",
                )


def _valid_window(window: str) -> bool:
    if not window:
        return True
    match = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", window)
    if not match:
        return False
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60


def _valid_languages(text: str) -> bool:
    tags = [tag.strip() for tag in text.split(",")]
    return bool(tags) and all(
        re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", tag) for tag in tags
    )
