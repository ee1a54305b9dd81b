"""Contactor driven by a GPIO output, with a mirror-contact feedback input (gpiozero).

The feedback input tells whether the main contacts are really closed; the daemon uses it to
detect a welded contactor (still closed after opening) and one that failed to close.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hal.interfaces import FeedbackListener

log = logging.getLogger(__name__)

PIN_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),  # Pi 5, and Pi 4/CM4 on current kernels
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "mock": ("gpiozero.pins.mock", "MockFactory"),  # no GPIO: a dev machine with other parts real
}


def make_pin_factory(name: str) -> Any:
    """Build a gpiozero pin factory by name; "" lets gpiozero choose (lgpio first)."""
    if not name:
        return None
    if name not in PIN_FACTORIES:
        raise ValueError(f"unknown pin factory {name!r}; choose from {sorted(PIN_FACTORIES)}")
    module_name, class_name = PIN_FACTORIES[name]
    module = __import__(module_name, fromlist=[class_name])
    return getattr(module, class_name)()


class GpioContactor:
    """Implements :class:`hal.interfaces.Contactor` on two GPIO lines.

    ``pin`` drives the coil (active high: high = closed). ``feedback_pin`` reads the mirror
    contact; ``feedback_active_high`` says which level means "main contacts closed".
    """

    def __init__(
        self,
        pin: int,
        feedback_pin: int,
        *,
        feedback_active_high: bool = True,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import DigitalInputDevice, DigitalOutputDevice

        self._coil = DigitalOutputDevice(pin, initial_value=False, pin_factory=pin_factory)
        self._feedback = DigitalInputDevice(
            feedback_pin, pull_up=None, active_state=feedback_active_high, pin_factory=pin_factory
        )
        self._listener: FeedbackListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, on_feedback: FeedbackListener) -> None:
        self._listener = on_feedback
        self._loop = asyncio.get_running_loop()
        # gpiozero calls these from its own thread (or, with mock pins, the caller's thread).
        self._feedback.when_activated = lambda: self._feedback_changed(True)
        self._feedback.when_deactivated = lambda: self._feedback_changed(False)

    def _feedback_changed(self, closed: bool) -> None:
        loop, listener = self._loop, self._listener
        if loop is None or listener is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(listener, closed)

    def close(self) -> None:
        self._coil.on()

    def open(self) -> None:
        self._coil.off()

    @property
    def commanded_closed(self) -> bool:
        return bool(self._coil.value)

    @property
    def feedback_closed(self) -> bool:
        return bool(self._feedback.value)

    def stop(self) -> None:
        """Open the contactor and release the GPIO lines."""
        self._coil.off()
        self._feedback.when_activated = None
        self._feedback.when_deactivated = None
        self._coil.close()
        self._feedback.close()
