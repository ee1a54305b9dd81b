"""The enclosure's tamper switch: a GPIO input that says whether the charger's cover is open.

A switch closed by the cover is the usual wiring; ``open_high`` says which level means "open".
Opening the cover is a security event (Security Whitepaper: TamperDetectionActivated).
gpiozero calls back from its own thread; the listener runs on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

TamperListener = Callable[[bool], None]  # True: the enclosure was opened; False: closed


class GpioTamperSwitch:
    def __init__(self, pin: int, *, open_high: bool = True, pin_factory: Any = None) -> None:
        from gpiozero import DigitalInputDevice

        self.pin = pin
        self._input = DigitalInputDevice(
            pin, pull_up=None, active_state=open_high, pin_factory=pin_factory
        )

    @property
    def opened(self) -> bool:
        return bool(self._input.is_active)

    def start(self, on_change: TamperListener) -> None:
        """Call ``on_change`` on the running loop at every change of the switch."""
        loop = asyncio.get_running_loop()

        def changed(opened: bool) -> None:
            loop.call_soon_threadsafe(on_change, opened)

        self._input.when_activated = lambda: changed(True)
        self._input.when_deactivated = lambda: changed(False)

    def close(self) -> None:
        self._input.close()
