"""SerialPilot: the control pilot through the CP MCU on a serial port (docs/mcu-protocol.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import serial
import serial_asyncio_fast

from hal.interfaces import LinkListener, StatusListener
from hal.mcu_protocol import (
    DropReporter,
    FrameDecoder,
    LinkStats,
    MsgType,
    StatusMessage,
    control_payload,
    encode_control,
)
from hal.types import DUTY_OFF, PilotControl, PilotStatus

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

_CLOSE_TIMEOUT = 1.0  # how long stop() waits for the port to flush and close


class _LinkProtocol(asyncio.Protocol):
    """Forwards transport events to the pilot; received bytes go straight to the decoder."""

    def __init__(self, pilot: SerialPilot) -> None:
        self._pilot = pilot

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._pilot._connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._pilot._data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pilot._connection_lost(exc)


class SerialPilot:
    """Host side of the MCU link; implements :class:`hal.interfaces.Pilot`.

    Sends the full control state every ``control_period`` and at once when it changes
    (spec §5.1); declares the link lost after ``link_timeout`` without a valid STATUS frame
    (spec §5.2); reopens a vanished port every ``reopen_interval`` until :meth:`stop`.
    Status frames are decoded and dispatched inside the transport's read callback, with no
    queue in between: this is the safety path (IEC 61851-1 Table A.6, C->B within 100 ms).
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 115200,
        *,
        link_timeout: float = 0.3,
        control_period: float = 0.1,
        reopen_interval: float = 1.0,
    ) -> None:
        self._port = port
        self._baudrate = baudrate
        self._link_timeout = link_timeout
        self._control_period = control_period
        self._reopen_interval = reopen_interval
        self._control = PilotControl()
        self._decoder = FrameDecoder(MsgType.STATUS, DropReporter(_log, f"MCU on {port}"))
        self._tx_seq = 0
        self._transport: asyncio.WriteTransport | None = None
        self._lost: asyncio.Future[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._link: bool | None = None  # None until the first verdict
        self._last_status: PilotStatus | None = None
        self._on_status: StatusListener | None = None
        self._on_link: LinkListener | None = None
        self._stopping = False

    @property
    def link_ok(self) -> bool:
        """True while valid STATUS frames arrive within the link timeout."""
        return self._link is True

    @property
    def stats(self) -> LinkStats:
        """Receive counters since construction, kept across reopens (spec §4).

        A frozen snapshot: later frames do not change it. ``stats.as_dict()`` gives
        ``frames_ok`` and each drop counter by name, ``stats.dropped`` their sum.
        """
        return self._decoder.stats

    @property
    def last_status(self) -> PilotStatus | None:
        """The most recent valid status, or None before the first one."""
        return self._last_status

    @property
    def control(self) -> PilotControl:
        """The control state being sent."""
        return self._control

    async def start(self, on_status: StatusListener, on_link: LinkListener) -> None:
        """Open the port (retrying in the background if it is missing) and start sending."""
        if self._tasks:
            raise RuntimeError("SerialPilot already started")
        self._on_status = on_status
        self._on_link = on_link
        self._stopping = False
        self._link = None
        self._arm_watchdog()
        self._tasks = [
            asyncio.create_task(self._keep_open(), name=f"serial-pilot-open {self._port}"),
            asyncio.create_task(self._send_periodically(), name=f"serial-pilot-tx {self._port}"),
        ]

    async def stop(self) -> None:
        """Send a last frame with power off and no PWM (spec §5.1), then close the port."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self._disarm_watchdog()
        transport, lost = self._transport, self._lost
        if transport is None or lost is None or transport.is_closing():
            return
        self._control = replace(self._control, allow_power=False, duty=DUTY_OFF, ack_faults=False)
        self._send()
        transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(lost), _CLOSE_TIMEOUT)
        except TimeoutError:
            _log.warning("serial port %s did not close within %.1f s", self._port, _CLOSE_TIMEOUT)
            transport.abort()

    def set_control(self, control: PilotControl) -> None:
        """Replace the control state; a change is sent at once (spec §5.1).

        Raises ValueError, keeping the previous state, if ``control`` cannot be encoded.
        """
        if control == self._control:
            return
        control_payload(control)  # validate before it replaces a state that can be sent
        self._control = control
        self._send()

    async def _keep_open(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            lost: asyncio.Future[None] = loop.create_future()
            self._lost = lost
            try:
                await serial_asyncio_fast.create_serial_connection(
                    loop, lambda: _LinkProtocol(self), self._port, baudrate=self._baudrate
                )
            except (serial.SerialException, OSError) as exc:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                _log.log(level, "cannot open %s (attempt %d): %s", self._port, failures, exc)
                await asyncio.sleep(self._reopen_interval)
                continue
            failures = 0
            await asyncio.shield(lost)
            await asyncio.sleep(self._reopen_interval)

    async def _send_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._control_period)
            self._send()

    def _send(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(encode_control(self._control, self._tx_seq))
        self._tx_seq = (self._tx_seq + 1) & 0xFF

    def _connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        if self._stopping:  # stop() ran while the port was being opened
            transport.close()
            return
        _log.info("opened %s at %d Bd", self._port, self._baudrate)
        self._transport = transport
        self._decoder.reset()
        self._send()

    def _connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self._stopping:
            return
        _log.warning("lost %s: %s; reopening every %.1f s", self._port, exc, self._reopen_interval)
        self._set_link(False)

    def _data_received(self, data: bytes) -> None:
        for message in self._decoder.feed(data):
            if isinstance(message, StatusMessage):
                self._status_received(message.status)

    def _status_received(self, status: PilotStatus) -> None:
        self._last_status = status
        self._arm_watchdog()
        self._set_link(True)
        if self._on_status is not None and not self._stopping:
            self._notify(self._on_status, status)

    def _arm_watchdog(self) -> None:
        self._disarm_watchdog()
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self._link_timeout, self._link_timed_out)

    def _disarm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _link_timed_out(self) -> None:
        self._watchdog = None
        self._decoder.resync()
        if self._link is not False:
            _log.warning(
                "no valid status from %s for %.0f ms: link lost",
                self._port,
                self._link_timeout * 1000,
            )
        self._set_link(False)

    def _set_link(self, ok: bool) -> None:
        if self._link is ok:
            return
        self._link = ok
        if ok:
            _log.info("link to the MCU on %s is up", self._port)
        if self._on_link is not None and not self._stopping:
            self._notify(self._on_link, ok)

    @staticmethod
    def _notify(listener: Callable[[_T], None], value: _T) -> None:
        # A failing listener must not stop the frames behind it from being decoded.
        try:
            listener(value)
        except Exception:
            _log.exception("pilot listener %r failed", listener)
