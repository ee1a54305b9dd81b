"""Builds the hardware drivers from the config, per connector: the same drivers in both modes;
in sim mode they talk to simulators over real transports, and ``[hal.sim]`` can swap any part
for the real device configured for it.

Meters on one Modbus line (the RS-485 bus of a twin wallbox, or one TCP gateway) share one
client, handed out per line by a :class:`~hal.modbus_bus.BusRegistry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evsed.config import Config, ConnectorConfig
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
            }
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
    parts: dict[int, ConnectorHardware] = {}
    for c in config.connectors:
        if sim.meter_transport == "rtu":
            line = BusSettings(
                "rtu", serial_port=world.meter_serial_port, timeout=c.meter.timeout_s
            )
        else:
            line = BusSettings("tcp", port=world.meter_port, timeout=c.meter.timeout_s)
        meter: Meter = (
            ModbusMeter(
                MAPS["sdm630"],
                bus=_bus(config, c, buses, line),
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
    return Hardware(parts, world)


def _where(config: Config, c: ConnectorConfig) -> str:
    return f"connectors[{config.connectors.index(c) + 1}]"


def _bus(config: Config, c: ConnectorConfig, buses: BusRegistry, line: BusSettings) -> ModbusBus:
    try:
        return buses.bus_for(line, c.meter.device_id, f"connector {c.id}")
    except ValueError as exc:
        raise ConfigError(config.source, f"{_where(config, c)}.meter", str(exc)) from None


def _real_pilot(c: ConnectorConfig) -> Pilot:
    from hal.serial_pilot import SerialPilot

    return SerialPilot(c.pilot.port, c.pilot.baudrate)


def _real_meter(config: Config, c: ConnectorConfig, buses: BusRegistry) -> Meter:
    from hal.modbus_bus import BusSettings
    from hal.modbus_meter import ModbusMeter

    m = c.meter
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
        _register_map(config, c), bus=_bus(config, c, buses, line), device_id=m.device_id
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


def _register_map(config: Config, c: ConnectorConfig) -> RegisterMap:
    """The meter's register map: a built-in one by name, or a custom one from a TOML file."""
    from hal.meter_maps import MAPS, load_map_file

    where = f"{_where(config, c)}.meter"
    meter = c.meter
    if meter.model == "custom":
        try:
            return load_map_file(meter.map_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(config.source, f"{where}.map_file", str(exc)) from None
    if meter.model not in MAPS:
        known = ", ".join([*sorted(MAPS), "custom"])
        raise ConfigError(config.source, f"{where}.model", f"unknown meter; known: {known}")
    return MAPS[meter.model]
