"""Contactor wiring on gpiozero MockFactory pins: the mirror contact follows the coil.

A simulated weld keeps the mirror reporting "closed" after the coil is released, the way a
welded main contact holds the mechanically linked mirror contact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CoilObserver = Callable[[bool, int], None]


def wire_sim_contactor(factory: Any, coil_pin: int, feedback_pin: int) -> SimContactorWiring:
    """Prepare ``factory`` so the coil pin drives the feedback pin; build GpioContactor after."""
    return SimContactorWiring(factory, coil_pin, feedback_pin)


class SimContactorWiring:
    """The physical side of a simulated contactor: coil in, mirror contact out.

    ``on_coil_change`` observers are called on every edge of the coil pin (not when it is set
    to the level it already has) with the new level and the ``time.perf_counter_ns()`` taken
    as the pin changed, before the mirror contact follows. They run synchronously in the
    thread that switched the coil (the daemon's event loop): bench scripts use them to time
    the safety path, so they must be quick. An observer that raises is logged and skipped.
    """

    def __init__(self, factory: Any, coil_pin: int, feedback_pin: int) -> None:
        from gpiozero.pins.mock import MockPin

        wiring = self

        class CoilPin(MockPin):  # type: ignore[misc]
            def _change_state(self, value: bool) -> Any:
                result = super()._change_state(value)
                stamp = time.perf_counter_ns() if result else 0
                wiring._coil_changed(bool(value))
                if result:
                    wiring._notify(bool(value), stamp)
                return result

        self.on_coil_change: list[CoilObserver] = []
        self._mirror = factory.pin(feedback_pin)
        self._coil = factory.pin(coil_pin, pin_class=CoilPin)
        self.welded = False
        self.coil_energised = False

    def _coil_changed(self, energised: bool) -> None:
        self.coil_energised = energised
        self._drive_mirror()

    def _notify(self, energised: bool, stamp_ns: int) -> None:
        for observer in list(self.on_coil_change):
            try:
                observer(energised, stamp_ns)
            except Exception:
                log.exception("contactor coil observer %r failed", observer)

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
