"""Builds the hardware drivers from the config, per connector: the same drivers in both modes;
in sim mode they talk to simulators over real transports, and ``[hal.sim]`` can swap any part
for the real device configured for it.

Meters on one Modbus line (the RS-485 bus of a twin wallbox, or one TCP gateway) share one
client, handed out per line by a :class:`~hal.modbus_bus.BusRegistry`. With local load
management (``charging.site_fuse_a``) the site meter is one more meter, on a line of its own
or beside the connectors' meters.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evsed.config import Config, ConnectorConfig, MeterConfig
from evsed.errors import ConfigError
from hal.interfaces import Contactor, Meter, Pilot
from hal.meter_maps import RegisterMap

if TYPE_CHECKING:
    from hal.modbus_bus import BusRegistry, BusSettings, ModbusBus

SIM_METER_ENERGY_FILE = "sim-meter-energy-wh"  # in the state directory; connector 2: ...-2


@dataclass
class ConnectorHardware:
    """The drivers of one connector."""

    pilot: Pilot
    meter: Meter
    contactor: Contactor


@dataclass
class Hardware:
    connectors: dict[int, ConnectorHardware]
    world: Any = None  # hal.sim.world.SimWorld in sim mode
    site_meter: Meter | None = None  # local load management
    tamper: Any = None  # hal.tamper.GpioTamperSwitch, when charger.tamper_pin is set


async def build_hardware(config: Config) -> Hardware:
    """Every connector's drivers, real or (``[hal] kind = "sim"``) talking to simulators."""
    from hal.modbus_bus import BusRegistry

    buses = BusRegistry()
    if config.hal.kind == "hardware":
        return Hardware(
            {
                c.id: ConnectorHardware(
                    _real_pilot(c), _real_meter(config, c, buses), _real_contactor(c)
                )
                for c in config.connectors
            },
            site_meter=_real_site_meter(config, buses) if config.load_management else None,
            tamper=_tamper(config, None),
        )
    return await _simulated(config, buses)


def sim_energy_file(config: Config, connector_id: int) -> Path:
    """Where the simulated meter of a connector keeps its energy register: its count survives
    a crash of the daemon, as a real meter's does."""
    suffix = "" if connector_id == 1 else f"-{connector_id}"
    return config.state_dir / f"{SIM_METER_ENERGY_FILE}{suffix}"


async def _simulated(config: Config, buses: BusRegistry) -> Hardware:
    from hal.gpio_contactor import GpioContactor
    from hal.meter_maps import MAPS
    from hal.modbus_bus import BusSettings
    from hal.modbus_meter import ModbusMeter
    from hal.serial_pilot import SerialPilot
    from hal.sim.world import SimConnectorSpec, SimWorld

    sim = config.hal.sim
    world = SimWorld(
        [
            SimConnectorSpec(
                c.id,
                c.contactor.pin,
                c.contactor.feedback_pin,
                meter_device_id=c.meter.device_id,
                phases=c.phases,
                energy_file=sim_energy_file(config, c.id),
            )
            for c in config.connectors
        ],
        voltage_v=sim.voltage_v,
        cable_rating_a=sim.cable_rating_a,
        meter_port=sim.meter_port,
        meter_transport=sim.meter_transport,
        site_meter_device_id=config.site_meter.device_id if config.load_management else None,
    )
    await world.start()
    for entry in filter(None, (f.strip() for f in sim.start_faults.split(","))):
        target, _, name = entry.rpartition(":")
        ids = [int(target)] if target.isdigit() else [c.id for c in config.connectors]
        try:
            for connector_id in ids:
                world.command(["fault", name], connector_id)
        except ValueError as exc:
            raise ConfigError(config.source, "hal.sim.start_faults", str(exc)) from None

    def sim_line(m: MeterConfig) -> BusSettings:
        if sim.meter_transport == "rtu":
            return BusSettings("rtu", serial_port=world.meter_serial_port, timeout=m.timeout_s)
        return BusSettings("tcp", port=world.meter_port, timeout=m.timeout_s)

    parts: dict[int, ConnectorHardware] = {}
    for c in config.connectors:
        meter: Meter = (
            ModbusMeter(
                MAPS["sdm630"],
                bus=_bus(config, c.meter, buses, sim_line(c.meter), _where(config, c)),
                device_id=c.meter.device_id,
            )
            if sim.simulate_meter
            else _real_meter(config, c, buses)
        )
        parts[c.id] = ConnectorHardware(
            SerialPilot(world.connector(c.id).pilot_port, c.pilot.baudrate)
            if sim.simulate_pilot
            else _real_pilot(c),
            meter,
            GpioContactor(c.contactor.pin, c.contactor.feedback_pin, pin_factory=world.pin_factory)
            if sim.simulate_contactor
            else _real_contactor(c),
        )
    site_meter: Meter | None = None
    if config.load_management:
        m = config.site_meter
        site_meter = (
            ModbusMeter(
                MAPS["sdm630"],
                bus=_bus(config, m, buses, sim_line(m), "site"),
                device_id=m.device_id,
            )
            if sim.simulate_meter
            else _real_site_meter(config, buses)
        )
    return Hardware(parts, world, site_meter, tamper=_tamper(config, world.pin_factory))


def _where(config: Config, c: ConnectorConfig) -> str:
    return f"connectors[{config.connectors.index(c) + 1}]"


def _bus(
    config: Config, m: MeterConfig, buses: BusRegistry, line: BusSettings, where: str
) -> ModbusBus:
    """The client of ``line`` for the meter of ``where`` (``connectors[N]``, or "site")."""
    if where == "site":
        user, key = "the site meter", "site_meter"
    else:
        index = int(where.removeprefix("connectors[").removesuffix("]"))
        user, key = f"connector {config.connectors[index - 1].id}", f"{where}.meter"
    try:
        return buses.bus_for(line, m.device_id, user)
    except ValueError as exc:
        raise ConfigError(config.source, key, str(exc)) from None


def _real_pilot(c: ConnectorConfig) -> Pilot:
    from hal.serial_pilot import SerialPilot

    return SerialPilot(c.pilot.port, c.pilot.baudrate)


def _real_meter(config: Config, c: ConnectorConfig, buses: BusRegistry) -> Meter:
    return _modbus_meter(config, c.meter, buses, _where(config, c))


def _real_site_meter(config: Config, buses: BusRegistry) -> Meter:
    return _modbus_meter(config, config.site_meter, buses, "site")


def _modbus_meter(config: Config, m: MeterConfig, buses: BusRegistry, where: str) -> Meter:
    from hal.modbus_bus import BusSettings
    from hal.modbus_meter import ModbusMeter

    line = BusSettings(
        m.transport,
        host=m.host,
        port=m.port,
        serial_port=m.serial_port,
        baudrate=m.baudrate,
        parity=m.parity,
        stopbits=m.stopbits,
        timeout=m.timeout_s,
    )
    return ModbusMeter(
        _register_map(config, m, where),
        bus=_bus(config, m, buses, line, where),
        device_id=m.device_id,
    )


def _real_contactor(c: ConnectorConfig) -> Contactor:
    """GPIO contactor; with ``pin_factory = "mock"`` (no GPIO) the mock mirror contact is
    wired to follow the coil, so a board without a contactor can run whole sessions."""
    from hal.gpio_contactor import GpioContactor, make_pin_factory

    k = c.contactor
    factory = make_pin_factory(k.pin_factory)
    if k.pin_factory == "mock":
        from hal.sim.contactor import SimContactorWiring

        SimContactorWiring(factory, k.pin, k.feedback_pin)
    return GpioContactor(
        k.pin, k.feedback_pin, feedback_active_high=k.feedback_active_high, pin_factory=factory
    )


def _register_map(config: Config, meter: MeterConfig, where: str) -> RegisterMap:
    """The meter's register map: a built-in one by name, or a custom one from a TOML file."""
    from hal.meter_maps import MAPS, load_map_file

    where = "site_meter" if where == "site" else f"{where}.meter"
    if meter.model == "custom":
        try:
            return load_map_file(meter.map_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(config.source, f"{where}.map_file", str(exc)) from None
    if meter.model not in MAPS:
        known = ", ".join([*sorted(MAPS), "custom"])
        raise ConfigError(config.source, f"{where}.model", f"unknown meter; known: {known}")
    return MAPS[meter.model]


def _tamper(config: Config, pin_factory: Any) -> Any:
    """The tamper switch, or None; on real hardware with the first connector's pin factory."""
    from hal.gpio_contactor import make_pin_factory
    from hal.tamper import GpioTamperSwitch

    charger = config.charger
    if not charger.tamper_pin:
        return None
    if pin_factory is None:
        pin_factory = make_pin_factory(config.connectors[0].contactor.pin_factory)
    return GpioTamperSwitch(
        charger.tamper_pin, open_high=charger.tamper_open_high, pin_factory=pin_factory
    )
