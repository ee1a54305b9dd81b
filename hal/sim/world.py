"""The simulated charger: N connectors and their cars, wired together over real transports.

- per connector (:class:`~hal.sim.connector.SimConnector`): a CP MCU simulator on its own
  pseudo-terminal, contactor wiring on its own pins, a meter, a car;
- one gpiozero MockFactory for every pin of the charger (:attr:`SimWorld.pin_factory`);
- one Modbus server answering for every connector's meter under its device id, as the meters
  of a twin wallbox share one RS-485 line: Modbus TCP on 127.0.0.1 (``meter_transport="tcp"``,
  port :attr:`SimWorld.meter_port`), or Modbus RTU on a simulated serial line
  (``meter_transport="rtu"``: two pseudo-terminals joined by a
  :class:`~hal.sim.serial_line.PtyNullModem`, the daemon's driver opening
  :attr:`SimWorld.meter_serial_port`);
- optionally the site (:class:`~hal.sim.site.SimSite`): a meter on the same line, under its
  own device id, measuring the site's other loads and every car.

``command(words, connector_id)`` takes the words of ``evsectl sim ...`` and returns a one-line
answer; ``snapshot()`` describes the whole world as plain JSON-able data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from hal.sim.connector import FAULTS, SimCommandError, SimConnector, SimConnectorSpec
from hal.sim.meter import SimMeterBus
from hal.sim.serial_line import PtyNullModem
from hal.sim.site import SimSite

__all__ = ["FAULTS", "SimCommandError", "SimConnector", "SimConnectorSpec", "SimWorld"]

log = logging.getLogger(__name__)

METER_TRANSPORTS = ("tcp", "rtu")
SITE_COMMANDS = frozenset({"site-load", "site-meter"})


class SimWorld:
    """Owns every simulator of a charger with one or more connectors.

    ``connectors`` lists each connector's wiring; connector ids, meter device ids and pins
    must all differ. ``voltage_v`` and ``cable_rating_a`` (what PP reads when a car is
    plugged in) hold for the whole charger. ``meter_port`` is the TCP port of the meter
    server (0: the kernel picks one, read it from :attr:`meter_port` after :meth:`start`);
    it is not used with ``meter_transport="rtu"``. ``site_meter_device_id`` adds the site
    and its meter (None: no site meter).
    """

    def __init__(
        self,
        connectors: Sequence[SimConnectorSpec],
        *,
        voltage_v: float = 230.0,
        cable_rating_a: int = 32,
        meter_port: int = 0,
        meter_transport: str = "tcp",
        site_meter_device_id: int | None = None,
    ) -> None:
        """Open the ptys and wire the pins; nothing runs before :meth:`start`."""
        from gpiozero.pins.mock import MockFactory

        _check_wiring(connectors)
        if meter_transport not in METER_TRANSPORTS:
            raise ValueError(f"meter_transport {meter_transport!r} is not 'tcp' or 'rtu'")
        self.voltage_v = voltage_v
        self.cable_rating_a = cable_rating_a
        self.meter_transport = meter_transport
        self.pin_factory: Any = MockFactory()
        self._connectors = {
            spec.connector_id: SimConnector(
                spec,
                pin_factory=self.pin_factory,
                voltage_v=voltage_v,
                cable_rating_a=cable_rating_a,
            )
            for spec in connectors
        }
        self.site = (
            SimSite(
                [c.load for c in self._connectors.values()],
                device_id=site_meter_device_id,
                voltage_v=voltage_v,
            )
            if site_meter_device_id is not None
            else None
        )
        self._line = PtyNullModem() if meter_transport == "rtu" else None
        self.meter = self._meter_server(meter_port)

    def _meter_server(self, port: int) -> SimMeterBus:
        meters = [connector.meter for connector in self._connectors.values()]
        if self.site is not None:
            meters.append(self.site.meter)
        if self._line is not None:
            return SimMeterBus(meters, serial_port=self._line.meter_path)
        return SimMeterBus(meters, port=port)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self._line is not None:
            self._line.start()
        for connector in self._connectors.values():
            await connector.start()
        await self.meter.start()
        pilots = ", ".join(f"{c.connector_id} on {c.pilot_port}" for c in self.connectors)
        log.info("simulated hardware up: pilots %s, meters on %s", pilots, self._meter_where())

    async def stop(self) -> None:
        await self.meter.stop()
        for connector in self._connectors.values():
            await connector.stop()
            connector.close()
        if self._line is not None:
            self._line.close()

    # -- parts ------------------------------------------------------------------------------

    @property
    def connectors(self) -> tuple[SimConnector, ...]:
        """Every connector, in the order given."""
        return tuple(self._connectors.values())

    def connector(self, connector_id: int) -> SimConnector:
        """The connector with that id; SimCommandError if the charger has none."""
        connector = self._connectors.get(connector_id)
        if connector is None:
            known = sorted(self._connectors)
            raise SimCommandError(f"no simulated connector {connector_id}; the charger has {known}")
        return connector

    @property
    def meter_port(self) -> int:
        """The TCP port the meter server listens on (after :meth:`start` if 0 was asked);
        0 with the RTU transport."""
        return 0 if self._line is not None else self.meter.port

    @property
    def meter_serial_port(self) -> str:
        """The serial device the daemon's meter driver opens with the RTU transport; ""
        with TCP."""
        return self._line.client_path if self._line is not None else ""

    def _meter_where(self) -> str:
        if self._line is not None:
            return f"rtu {self.meter_serial_port}"
        return f"tcp 127.0.0.1:{self.meter_port}"

    # -- evsectl sim ------------------------------------------------------------------------

    def command(self, words: list[str], connector_id: int = 1) -> str:
        """Apply one ``sim`` command to a connector; raises SimCommandError with a message for
        the user (also for a connector the charger does not have)."""
        return self.connector(connector_id).command(words)

    def drive_pin(self, pin: int, high: bool) -> None:
        """Drive a mock input from outside (a switch the daemon reads: the tamper switch)."""
        mock = self.pin_factory.pin(pin)
        if high:
            mock.drive_high()
        else:
            mock.drive_low()

    def site_command(self, words: list[str]) -> str:
        """Apply one ``sim site-load`` / ``sim site-meter`` command (the whole site)."""
        if self.site is None:
            raise SimCommandError("this charger has no site meter (charging.site_fuse_a is 0)")
        return self.site.command(words)

    def snapshot(self) -> dict[str, Any]:
        """The whole world as plain JSON-able data: the meter line, then every connector."""
        meter: dict[str, Any] = {"transport": self.meter_transport}
        if self._line is not None:
            meter["serial_port"] = self.meter_serial_port
        else:
            meter.update(host="127.0.0.1", port=self.meter_port)
        return {
            "meter": meter,
            "connectors": [connector.snapshot() for connector in self.connectors],
            "site": self.site.snapshot() if self.site is not None else None,
        }


def _check_wiring(connectors: Sequence[SimConnectorSpec]) -> None:
    """Refuse two connectors on one id, one meter device id or one pin."""
    if not connectors:
        raise ValueError("a simulated charger needs at least one connector")
    for what, values in (
        ("connector id", [spec.connector_id for spec in connectors]),
        ("meter device id", [spec.meter_device_id for spec in connectors]),
        ("pin", [pin for spec in connectors for pin in (spec.coil_pin, spec.feedback_pin)]),
    ):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"simulated connectors share a {what}: {repeated}")
