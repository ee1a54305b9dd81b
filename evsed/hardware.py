"""Builds the hardware drivers from the config, per connector: the same drivers in both modes;
in sim mode they talk to simulators over real transports, and ``[hal.sim]`` can swap any part
for the real device configured for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evsed.config import Config, ConnectorConfig
from evsed.errors import ConfigError
from hal.interfaces import Contactor, Meter, Pilot
from hal.meter_maps import RegisterMap

SIM_METER_ENERGY_FILE = "sim-meter-energy-wh"  # in the state directory


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
    if config.hal.kind == "hardware":
        return Hardware(
            {
                c.id: ConnectorHardware(_real_pilot(c), _real_meter(config, c), _real_contactor(c))
                for c in config.connectors
            }
        )
    return await _simulated(config)


async def _simulated(config: Config) -> Hardware:
    from hal.gpio_contactor import GpioContactor
    from hal.meter_maps import MAPS
    from hal.modbus_meter import ModbusMeter
    from hal.serial_pilot import SerialPilot
    from hal.sim.world import SimWorld

    if len(config.connectors) != 1:
        raise ConfigError(config.source, "connectors", "the simulator serves one connector")
    (c,) = config.connectors
    sim = config.hal.sim
    world = SimWorld.single(
        coil_pin=c.contactor.pin,
        feedback_pin=c.contactor.feedback_pin,
        voltage_v=sim.voltage_v,
        phases=c.phases,
        cable_rating_a=sim.cable_rating_a,
        meter_port=sim.meter_port,
        # The simulated meter's count survives a crash of the daemon, as a real meter's does.
        meter_energy_file=config.state_dir / SIM_METER_ENERGY_FILE,
    )
    await world.start()
    for name in filter(None, (f.strip() for f in sim.start_faults.split(","))):
        try:
            world.command(["fault", name])
        except ValueError as exc:
            raise ConfigError(config.source, "hal.sim.start_faults", str(exc)) from None
    pilot = (
        SerialPilot(world.pilot_port, c.pilot.baudrate) if sim.simulate_pilot else _real_pilot(c)
    )
    meter: Meter = (
        ModbusMeter(
            MAPS["sdm630"],
            transport="tcp",
            host="127.0.0.1",
            port=world.meter_port,
            timeout=c.meter.timeout_s,
        )
        if sim.simulate_meter
        else _real_meter(config, c)
    )
    contactor: Contactor = (
        GpioContactor(c.contactor.pin, c.contactor.feedback_pin, pin_factory=world.pin_factory)
        if sim.simulate_contactor
        else _real_contactor(c)
    )
    return Hardware({c.id: ConnectorHardware(pilot, meter, contactor)}, world)


def _real_pilot(c: ConnectorConfig) -> Pilot:
    from hal.serial_pilot import SerialPilot

    return SerialPilot(c.pilot.port, c.pilot.baudrate)


def _real_meter(config: Config, c: ConnectorConfig) -> Meter:
    from hal.modbus_meter import ModbusMeter

    m = c.meter
    return ModbusMeter(
        _register_map(config, c),
        transport=m.transport,
        host=m.host,
        port=m.port,
        serial_port=m.serial_port,
        baudrate=m.baudrate,
        parity=m.parity,
        stopbits=m.stopbits,
        device_id=m.device_id,
        timeout=m.timeout_s,
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

    where = f"connectors[{config.connectors.index(c) + 1}].meter"
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
