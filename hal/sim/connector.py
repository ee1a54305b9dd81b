"""One simulated connector: its CP MCU, its contactor wiring, its meter, and the car behind it.

- the CP MCU simulator on the master side of its own pseudo-terminal (the real
  ``SerialPilot`` driver opens the slave side, :attr:`SimConnector.pilot_port`);
- contactor wiring on its own two pins of the charger's gpiozero MockFactory;
- a meter (a :class:`~hal.sim.meter.SimMeterDevice`, served by the charger's Modbus server
  under the connector's device id) whose energy register integrates the current this
  connector's car draws while this connector's main contacts are closed;
- the car: plugged or not, the CP state it presents, how much current it wants.

:meth:`SimConnector.command` takes the words of ``evsectl sim ...`` for this connector and
returns a one-line answer. :class:`hal.sim.world.SimWorld` puts connectors together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hal.iec61851 import duty_to_current
from hal.sim.contactor import SimContactorWiring
from hal.sim.mcu import FAULT_NAMES as MCU_FAULTS
from hal.sim.mcu import SimMcu, open_pty
from hal.sim.meter import SimMeterDevice
from hal.types import CpState

log = logging.getLogger(__name__)

FAULTS = ("weld", "meter-offline", "ev-overdraw", *MCU_FAULTS)
MAX_EV_CURRENT_A = 80.0


class SimCommandError(ValueError):
    """A ``sim`` command was malformed or cannot be applied."""


@dataclass(frozen=True, slots=True)
class SimConnectorSpec:
    """What one simulated connector is wired to.

    ``coil_pin`` and ``feedback_pin`` are the contactor's GPIO pins, ``meter_device_id`` the
    Modbus id its meter answers to on the charger's meter line, ``phases`` 1 or 3 (how many
    phases the car draws on), ``energy_file`` where its meter keeps its energy register.
    """

    connector_id: int
    coil_pin: int
    feedback_pin: int
    meter_device_id: int
    phases: int = 3
    energy_file: Path | None = None

    def __post_init__(self) -> None:
        """Refuse a connector that cannot be wired."""
        if self.connector_id < 1:
            raise ValueError(f"connector id {self.connector_id} must be 1 or more")
        if self.coil_pin == self.feedback_pin:
            raise ValueError(f"connector {self.connector_id}: coil and feedback share a pin")
        if not 1 <= self.meter_device_id <= 247:
            raise ValueError(
                f"connector {self.connector_id}: meter device id {self.meter_device_id}"
                " is outside 1..247"
            )
        if self.phases not in (1, 3):
            raise ValueError(f"connector {self.connector_id}: phases must be 1 or 3")


class SimConnector:
    """Every simulator of one connector and the simulated car behind it (module docstring)."""

    def __init__(
        self, spec: SimConnectorSpec, *, pin_factory: Any, voltage_v: float, cable_rating_a: int
    ) -> None:
        """Open the MCU's pty and wire the pins; nothing runs before :meth:`start`."""
        self.spec = spec
        self.connector_id = spec.connector_id
        self.cable_rating_a = cable_rating_a  # what PP reads when the car is plugged in
        self.ev_current_a = 16.0  # the most the simulated car wants to draw
        self.active_faults: set[str] = set()
        self.contactor = SimContactorWiring(pin_factory, spec.coil_pin, spec.feedback_pin)
        self.meter = SimMeterDevice(
            self.load,
            device_id=spec.meter_device_id,
            voltage_v=voltage_v,
            energy_file=spec.energy_file,
        )
        self._master_fd, self.pilot_port = open_pty()
        self.mcu = SimMcu(self._master_fd)

    async def start(self) -> None:
        await self.mcu.start()

    async def stop(self) -> None:
        await self.mcu.stop()

    def close(self) -> None:
        """Release the MCU's pty (after :meth:`stop`)."""
        os.close(self._master_fd)

    def drawn_current_a(self) -> float:
        """What the car draws now: it needs closed contacts and state C/D, and obeys the PWM
        unless the ``ev-overdraw`` fault makes it ignore the offered current."""
        if not self.contactor.contacts_closed:
            return 0.0
        if self.mcu.cp_state not in (CpState.C, CpState.D):
            return 0.0
        if "ev-overdraw" in self.active_faults:
            return self.ev_current_a
        return min(self.ev_current_a, self.offered_current_a())

    def offered_current_a(self) -> float:
        """The current the PWM the MCU last received offers (IEC 61851-1 Table A.8); 0
        without PWM."""
        return duty_to_current(self.mcu.control.duty)

    def load(self) -> tuple[float, float, float]:
        """What the car draws now on L1, L2, L3 (A)."""
        amps = self.drawn_current_a()
        return (amps, amps, amps) if self.spec.phases == 3 else (amps, 0.0, 0.0)

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
        """Plain JSON-able data: the car, the contacts, the meter, the pilot, the faults."""
        return {
            "id": self.connector_id,
            "cp_state": str(self.mcu.cp_state),
            "ev_current_a": self.ev_current_a,
            "drawn_current_a": round(self.drawn_current_a(), 2),
            "contacts_closed": self.contactor.contacts_closed,
            "meter_device_id": self.meter.device_id,
            "meter_energy_wh": round(self.meter.energy_wh, 1),
            "pwm_duty": self.mcu.control.duty,
            "offered_current_a": round(self.offered_current_a(), 2),
            "relay_closed": self.mcu.relay_closed,
            "faults": sorted(self.active_faults),
        }


def _parse_amps(text: str) -> float:
    try:
        amps = float(text)
    except ValueError:
        raise SimCommandError(f"ev-current needs a number of amps, got {text!r}") from None
    if not 0.0 <= amps <= MAX_EV_CURRENT_A:
        raise SimCommandError(f"ev-current must be between 0 and 80 A, got {amps:g}")
    return amps
