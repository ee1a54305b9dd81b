"""The simulated charger hardware and car, wired together over real transports.

- the CP MCU simulator on the master side of a pseudo-terminal (the real ``SerialPilot`` driver
  opens the slave side);
- an SDM630 Modbus TCP server on 127.0.0.1 whose energy register integrates the current the
  car draws while the contactor's main contacts are closed (kept in ``meter_energy_file``, if
  given, so it survives a crash of the process as a real meter's register does);
- gpiozero MockFactory pins for the contactor coil and its mirror contact.

``command`` takes the words of ``evsectl sim ...`` and returns a one-line answer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hal.iec61851 import duty_to_current
from hal.sim.contactor import SimContactorWiring
from hal.sim.mcu import FAULT_NAMES as MCU_FAULTS
from hal.sim.mcu import SimMcu, open_pty
from hal.sim.meter import SimMeterServer
from hal.types import CpState

log = logging.getLogger(__name__)

FAULTS = ("weld", "meter-offline", "ev-overdraw", *MCU_FAULTS)


class SimCommandError(ValueError):
    """A ``sim`` command was malformed or cannot be applied."""


class SimWorld:
    """Owns every simulator of one connector and the simulated car behind it."""

    def __init__(
        self,
        *,
        coil_pin: int,
        feedback_pin: int,
        voltage_v: float = 230.0,
        phases: int = 3,
        cable_rating_a: int = 32,
        meter_port: int = 0,
        meter_energy_file: Path | None = None,
    ) -> None:
        from gpiozero.pins.mock import MockFactory

        self.voltage_v = voltage_v
        self.phases = phases
        self.cable_rating_a = cable_rating_a
        self.ev_current_a = 16.0  # the most the simulated car wants to draw
        self.pin_factory: Any = MockFactory()
        self.contactor = SimContactorWiring(self.pin_factory, coil_pin, feedback_pin)
        self._master_fd, self.pilot_port = open_pty()
        self.mcu = SimMcu(self._master_fd)
        self.meter = SimMeterServer(
            self._load, port=meter_port, voltage_v=voltage_v, energy_file=meter_energy_file
        )
        self.active_faults: set[str] = set()

    async def start(self) -> None:
        await self.mcu.start()
        await self.meter.start()
        log.info(
            "simulated hardware up: pilot on %s, meter on 127.0.0.1:%d",
            self.pilot_port,
            self.meter.port,
        )

    async def stop(self) -> None:
        await self.meter.stop()
        await self.mcu.stop()
        os.close(self._master_fd)

    @property
    def meter_port(self) -> int:
        return int(self.meter.port)

    def drawn_current_a(self) -> float:
        """What the car draws now: it needs closed contacts and state C/D, and obeys the PWM
        unless the ``ev-overdraw`` fault makes it ignore the offered current."""
        if not self.contactor.contacts_closed:
            return 0.0
        if self.mcu.cp_state not in (CpState.C, CpState.D):
            return 0.0
        if "ev-overdraw" in self.active_faults:
            return self.ev_current_a
        return min(self.ev_current_a, duty_to_current(self.mcu.control.duty))

    def _load(self) -> tuple[float, float, float]:
        amps = self.drawn_current_a()
        return (amps, amps, amps) if self.phases == 3 else (amps, 0.0, 0.0)

    def command(self, words: list[str]) -> str:
        """Apply one ``sim`` command; raises SimCommandError with a message for the user."""
        if not words:
            raise SimCommandError("missing sim command")
        verb, args = words[0], words[1:]
        match verb, args:
            case "plug", []:
                return self._car(lambda: self.mcu.plug(self.cable_rating_a), "plugged in")
            case "unplug", []:
                return self._car(self.mcu.unplug, "unplugged")
            case "ev-state", [state]:
                return self._ev_state(state)
            case "ev-current", [amps]:
                self.ev_current_a = _parse_amps(amps)
                return f"car draws up to {self.ev_current_a:g} A"
            case "fault", [name]:
                return self._fault(name, True)
            case "clear", [name]:
                return self._fault(name, False)
        raise SimCommandError(f"unknown or malformed sim command: {' '.join(words)}")

    def _car(self, action: Callable[[], None], done: str) -> str:
        try:
            action()
        except ValueError as exc:
            raise SimCommandError(str(exc)) from None
        return done

    def _ev_state(self, state: str) -> str:
        try:
            cp = CpState(state.upper())
        except ValueError:
            raise SimCommandError(f"ev-state must be one of A-F, got {state!r}") from None
        if cp is CpState.A:
            return self._car(self.mcu.unplug, "unplugged")
        return self._car(lambda: self.mcu.set_ev_state(cp), f"car presents state {cp}")

    def _fault(self, name: str, active: bool) -> str:
        if name not in FAULTS:
            raise SimCommandError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        if name == "weld":
            self.contactor.set_welded(active)
        elif name == "meter-offline":
            self.meter.set_offline(active)
        elif name == "ev-overdraw":
            pass  # read by drawn_current_a
        else:
            self.mcu.set_fault(name, active)
        if active:
            self.active_faults.add(name)
        else:
            self.active_faults.discard(name)
        return f"fault {name} {'raised' if active else 'cleared'}"

    def snapshot(self) -> dict[str, Any]:
        return {
            "ev_current_a": self.ev_current_a,
            "drawn_current_a": round(self.drawn_current_a(), 2),
            "contacts_closed": self.contactor.contacts_closed,
            "meter_energy_wh": round(self.meter.energy_wh, 1),
            "faults": sorted(self.active_faults),
        }


def _parse_amps(text: str) -> float:
    try:
        amps = float(text)
    except ValueError:
        raise SimCommandError(f"ev-current needs a number of amps, got {text!r}") from None
    if not 0.0 <= amps <= 80.0:
        raise SimCommandError(f"ev-current must be between 0 and 80 A, got {amps:g}")
    return amps
