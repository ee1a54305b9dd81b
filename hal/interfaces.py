"""The seams between the daemon and the hardware. Drivers and simulators implement these."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hal.types import MeterReading, PilotControl, PilotStatus

if TYPE_CHECKING:
    from hal.mcu_protocol import LinkStats

StatusListener = Callable[[PilotStatus], None]
LinkListener = Callable[[bool], None]
FeedbackListener = Callable[[bool], None]


class Pilot(Protocol):
    """The control pilot, driven through a small MCU (see docs/mcu-protocol.md).

    Listeners are called on the event loop thread: ``on_status`` for every valid status frame,
    ``on_link`` with False when no valid status frame arrived for the link timeout and with
    True when frames flow again.
    """

    async def start(self, on_status: StatusListener, on_link: LinkListener) -> None: ...

    async def stop(self) -> None: ...

    def set_control(self, control: PilotControl) -> None:
        """Replace the full state the host sends; the next control frame carries it."""

    @property
    def link_ok(self) -> bool: ...

    @property
    def stats(self) -> LinkStats:
        """Counters of frames received and dropped, by reason (docs/mcu-protocol.md §5.3)."""


class Meter(Protocol):
    """An energy meter. ``read`` raises :class:`hal.errors.MeterError` when it cannot answer."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def read(self) -> MeterReading: ...


class Contactor(Protocol):
    """The main contactor with its mirror-contact feedback.

    ``on_feedback`` is called on the event loop thread whenever the feedback input changes;
    the argument is True when the feedback says the main contacts are closed.
    """

    def start(self, on_feedback: FeedbackListener) -> None: ...

    def close(self) -> None: ...

    def open(self) -> None: ...

    @property
    def commanded_closed(self) -> bool: ...

    @property
    def feedback_closed(self) -> bool: ...

    def stop(self) -> None: ...
