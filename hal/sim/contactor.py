"""Contactor wiring on gpiozero MockFactory pins: the mirror contact follows the coil.

A simulated weld keeps the mirror reporting "closed" after the coil is released, the way a
welded main contact holds the mechanically linked mirror contact.
"""

from __future__ import annotations

from typing import Any


def wire_sim_contactor(factory: Any, coil_pin: int, feedback_pin: int) -> SimContactorWiring:
    """Prepare ``factory`` so the coil pin drives the feedback pin; build GpioContactor after."""
    return SimContactorWiring(factory, coil_pin, feedback_pin)


class SimContactorWiring:
    """The physical side of a simulated contactor: coil in, mirror contact out."""

    def __init__(self, factory: Any, coil_pin: int, feedback_pin: int) -> None:
        from gpiozero.pins.mock import MockPin

        wiring = self

        class CoilPin(MockPin):  # type: ignore[misc]
            def _change_state(self, value: bool) -> Any:
                result = super()._change_state(value)
                wiring._coil_changed(bool(value))
                return result

        self._mirror = factory.pin(feedback_pin)
        self._coil = factory.pin(coil_pin, pin_class=CoilPin)
        self.welded = False
        self.coil_energised = False

    def _coil_changed(self, energised: bool) -> None:
        self.coil_energised = energised
        self._drive_mirror()

    def set_welded(self, welded: bool) -> None:
        self.welded = welded
        self._drive_mirror()

    def _drive_mirror(self) -> None:
        closed = self.coil_energised or self.welded
        if closed:
            self._mirror.drive_high()
        else:
            self._mirror.drive_low()

    @property
    def contacts_closed(self) -> bool:
        """Whether power flows to the car: coil energised, or the contacts welded shut."""
        return self.coil_energised or self.welded
