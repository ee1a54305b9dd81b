"""Builds the hardware drivers from the config: the same drivers in both modes; in sim mode
they talk to simulators over real transports, and ``[hal.sim]`` can swap any part for the real
device configured for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evsed.config import Config
from evsed.errors import ConfigError
from hal.interfaces import Contactor, Meter, Pilot
from hal.meter_maps import RegisterMap

SIM_METER_ENERGY_FILE = "sim-meter-energy-wh"  # in the state directory


@dataclass
class Hardware:
    pilot: Pilot
    meter: Meter
    contactor: Contactor
    world: Any = None  # hal.sim.world.SimWorld in sim mode


async def build_hardware(config: Config) -> Hardware:
    """The same drivers in both modes. In sim mode they talk to simulators over real
    transports; ``[hal.sim]`` can swap any part for the real device configured for it."""
    from hal.gpio_contactor import GpioContactor
    from hal.meter_maps import MAPS
    from hal.modbus_meter import ModbusMeter
    from hal.serial_pilot import SerialPilot

    hal = config.hal
    if hal.kind == "hardware":
        return Hardware(
            pilot=SerialPilot(hal.pilot.port, hal.pilot.baudrate),
            meter=_real_meter(config),
            contactor=_real_contactor(config),
        )
    from hal.sim.world import SimWorld

    sim = hal.sim
    world = SimWorld.single(
        coil_pin=hal.contactor.pin,
        feedback_pin=hal.contactor.feedback_pin,
        voltage_v=sim.voltage_v,
        phases=config.charging.phases,
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
    return Hardware(
        pilot=SerialPilot(
            world.pilot_port if sim.simulate_pilot else hal.pilot.port, hal.pilot.baudrate
        ),
        meter=ModbusMeter(
            MAPS["sdm630"],
            transport="tcp",
            host="127.0.0.1",
            port=world.meter_port,
            timeout=hal.meter.timeout_s,
        )
        if sim.simulate_meter
        else _real_meter(config),
        contactor=GpioContactor(
            hal.contactor.pin, hal.contactor.feedback_pin, pin_factory=world.pin_factory
        )
        if sim.simulate_contactor
        else _real_contactor(config),
        world=world,
    )


def _real_meter(config: Config) -> Meter:
    from hal.modbus_meter import ModbusMeter

    m = config.hal.meter
    return ModbusMeter(
        _register_map(config),
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


def _real_contactor(config: Config) -> Contactor:
    """GPIO contactor; with ``pin_factory = "mock"`` (no GPIO) the mock mirror contact is
    wired to follow the coil, so a board without a contactor can run whole sessions."""
    from hal.gpio_contactor import GpioContactor, make_pin_factory

    c = config.hal.contactor
    factory = make_pin_factory(c.pin_factory)
    if c.pin_factory == "mock":
        from hal.sim.contactor import SimContactorWiring

        SimContactorWiring(factory, c.pin, c.feedback_pin)
    return GpioContactor(
        c.pin, c.feedback_pin, feedback_active_high=c.feedback_active_high, pin_factory=factory
    )


def _register_map(config: Config) -> RegisterMap:
    """The meter's register map: a built-in one by name, or a custom one from a TOML file."""
    from hal.meter_maps import MAPS, load_map_file

    meter = config.hal.meter
    if meter.model == "custom":
        try:
            return load_map_file(meter.map_file)
        except (OSError, ValueError) as exc:
            raise ConfigError(config.source, "hal.meter.map_file", str(exc)) from None
    if meter.model not in MAPS:
        known = ", ".join([*sorted(MAPS), "custom"])
        raise ConfigError(config.source, "hal.meter.model", f"unknown meter; known: {known}")
    return MAPS[meter.model]
