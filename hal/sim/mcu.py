"""SimMcu: the CP MCU simulated on the master side of a pseudo-terminal (docs/mcu-protocol.md).

The host's real :class:`hal.serial_pilot.SerialPilot` opens the slave side, so the whole link
(termios, COBS, CRC, timing) is exercised. Runs on the event loop with ``add_reader``: no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from collections.abc import Callable

from hal.mcu_protocol import (
    ControlMessage,
    DropReporter,
    FrameDecoder,
    LinkStats,
    MsgType,
    encode_status,
)
from hal.types import DUTY_OFF, DUTY_STATE_F, CpState, McuFault, PilotControl, PilotStatus

_log = logging.getLogger(__name__)

FAULT_NAMES = ("rcd", "overtemp", "mcu-silent", "diode", "lock")
RESET_POWER_ON = 1  # spec §3.2 reset_reason codes
_PEER_POLL = 0.05  # while no process has the slave open, look for one this often
# CP high level per state (IEC 61851-1 Table A.3 nominal values).
_CP_HIGH_MV = {
    CpState.A: 12000,
    CpState.B: 9000,
    CpState.C: 6000,
    CpState.D: 3000,
    CpState.E: 0,
    CpState.F: -12000,
}
# Latched faults that keep the relay path open (spec §6.2).
_RELAY_BLOCKING = McuFault.HOST_TIMEOUT | McuFault.RCD | McuFault.OVERTEMP


def open_pty() -> tuple[int, str]:
    """Create a pseudo-terminal pair; return (non-blocking master fd, slave path).

    The slave is put in raw mode (no echo, no line discipline) so binary frames pass unchanged.
    """
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        slave_path = os.ttyname(slave_fd)
    finally:
        os.close(slave_fd)
    os.set_blocking(master_fd, False)
    return master_fd, slave_path


class SimMcu:
    """A simulated CP MCU plus the car behind the connector.

    Implements spec §6: STATUS every ``status_period`` and at once on any change; the host
    timeout failsafe (``host_timeout``), cleared only by ``ack_faults``, followed by state F for
    ``fault_hold`` (IEC 61851-1: at least 300 ms of F after a fault); the connector lock
    (spec §6.5): it reaches the requested position after ``lock_travel``, unless the ``lock``
    fault jams it where it is, in which case the attempt fails after ``lock_timeout`` and
    ``LOCK`` is latched. Given a file descriptor,
    the caller keeps ownership of it; given a path, the simulator opens and closes it.
    """

    def __init__(
        self,
        path_or_fd: int | str,
        *,
        firmware_version: str = "evsed-sim 1.0",
        status_period: float = 0.1,
        host_timeout: float = 0.5,
        fault_hold: float = 0.3,
        lock_travel: float = 0.05,
        lock_timeout: float = 0.5,
    ) -> None:
        self._path_or_fd = path_or_fd
        self._fd = -1
        self._firmware_version = firmware_version
        self._status_period = status_period
        self._host_timeout = host_timeout
        self._fault_hold = fault_hold
        self._lock_travel = lock_travel
        self._lock_timeout = lock_timeout
        self._locked = False  # where the lock is
        self._lock_attempt: asyncio.TimerHandle | None = None
        self._decoder = FrameDecoder(MsgType.CONTROL, DropReporter(_log, "host"))
        self._control = PilotControl()
        self._plugged = False
        self._cable_rating_a = 0
        self._ev_state = CpState.B
        self._causes: set[str] = set()
        self._faults = McuFault.NONE
        self._holding_f = False
        self._tx_seq = 0
        self._last_sent_seq: int | None = None
        self._last_sent: PilotStatus | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._ticker: asyncio.Task[None] | None = None
        self._reading = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Power on: start reading, sending STATUS, and the host-timeout watchdog (spec §6.2)."""
        if self._ticker is not None:
            raise RuntimeError("SimMcu already started")
        if isinstance(self._path_or_fd, str):
            self._fd = os.open(self._path_or_fd, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            if os.isatty(self._fd):
                tty.setraw(self._fd)
        else:
            self._fd = self._path_or_fd
        os.set_blocking(self._fd, False)
        self._holding_f = False  # a hold timer cancelled by stop() must not outlive it
        self._resume_reading()
        self._arm_watchdog()
        self._ticker = asyncio.create_task(self._tick(), name="sim-mcu-status")
        self._send_status()

    async def stop(self) -> None:
        """Power off: stop reading and sending. Closes the fd only if it opened it."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._pause_reading()
        for timer in [self._watchdog, self._lock_attempt, *self._timers]:
            if timer is not None:
                timer.cancel()
        self._watchdog, self._lock_attempt, self._timers = None, None, []
        if isinstance(self._path_or_fd, str) and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    # -- the car and the hardware around the MCU ---------------------------------------------

    def plug(self, cable_rating_a: int = 32) -> None:
        """Plug the car in: PP reads ``cable_rating_a``, the car presents state B."""
        if not 0 <= cable_rating_a <= 255:
            raise ValueError(f"cable rating {cable_rating_a} A outside 0..255")
        self._plugged = True
        self._cable_rating_a = cable_rating_a
        self._ev_state = CpState.B
        self._changed()

    def unplug(self) -> None:
        """Unplug the car: CP reads state A, PP reads no cable."""
        self._plugged = False
        self._cable_rating_a = 0
        self._ev_state = CpState.B
        self._changed()

    def set_ev_state(self, state: CpState) -> None:
        """The state the plugged-in car presents (B pause, C/D charge, E/F for fault tests)."""
        if state is CpState.A:
            raise ValueError("the car presents state A only when unplugged: use unplug()")
        if not self._plugged:
            raise ValueError("no car plugged in: use plug() first")
        self._ev_state = state
        self._changed()

    def set_fault(self, name: str, active: bool) -> None:
        """Raise or clear a simulated fault cause; one of :data:`FAULT_NAMES`."""
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown MCU fault {name!r}; valid: {', '.join(FAULT_NAMES)}")
        if active:
            self._causes.add(name)
        else:
            self._causes.discard(name)
        _log.info("simulated MCU fault %s %s", name, "raised" if active else "cleared")
        self._changed()

    def write_raw(self, data: bytes) -> None:
        """Put ``data`` on the wire as is (tests: garbage, bad CRC, replayed frames)."""
        self._write(data)

    # -- what the MCU knows and reports ------------------------------------------------------

    @property
    def control(self) -> PilotControl:
        """The last valid control state received from the host."""
        return self._control

    @property
    def faults(self) -> McuFault:
        """Latched fault flags."""
        return self._faults

    @property
    def relay_closed(self) -> bool:
        """Spec §6.2: allow_power AND no failsafe (incl. the F hold) AND no RCD/overtemp."""
        return (
            self._control.allow_power
            and not self._faults & _RELAY_BLOCKING
            and not self._holding_f
            and not {"rcd", "overtemp"} & self._causes
        )

    @property
    def cp_state(self) -> CpState:
        """The CP state the MCU measures and reports."""
        if self._forcing_f:
            return CpState.F
        return self._ev_state if self._plugged else CpState.A

    @property
    def stats(self) -> LinkStats:
        """Receive counters for frames from the host."""
        return self._decoder.stats

    @property
    def last_sent_seq(self) -> int | None:
        """Sequence number of the last STATUS frame sent (tests replay it)."""
        return self._last_sent_seq

    @property
    def status(self) -> PilotStatus:
        """The STATUS the MCU would send now."""
        cp = self.cp_state
        duty = DUTY_STATE_F if self._forcing_f else self._control.duty
        high = _CP_HIGH_MV[cp]
        low = high
        diode_missing = self._pwm_running and "diode" in self._causes
        if self._pwm_running and cp is not CpState.E:  # E: CP shorted, no level at all
            low = -high if diode_missing else -12000
        return PilotStatus(
            cp_state=cp,
            duty=duty,
            cp_high_mv=high,
            cp_low_mv=low,
            pp_max_current_a=self._cable_rating_a,
            rcd_tripped="rcd" in self._causes,
            relay_closed=self.relay_closed,
            faults=self._faults,
            firmware_version=self._firmware_version,
            reset_reason=RESET_POWER_ON,
            diode_ok=not diode_missing,  # spec §3.2: 1 while no PWM runs
            mcu_driving_f=self._forcing_f,
            locked=self._locked,
        )

    @property
    def _forcing_f(self) -> bool:
        """Spec §6.4: the MCU drives -12 V itself (STATUS flag ``driving_f``)."""
        return (
            McuFault.HOST_TIMEOUT in self._faults
            or self._holding_f
            or self._control.duty == DUTY_STATE_F
        )

    @property
    def _pwm_running(self) -> bool:
        return not self._forcing_f and DUTY_STATE_F < self._control.duty < DUTY_OFF

    @property
    def _silent(self) -> bool:
        return "mcu-silent" in self._causes

    # -- behaviour -------------------------------------------------------------------------

    def _changed(self) -> None:
        """Latch faults whose cause is present; send STATUS at once if anything changed."""
        if "rcd" in self._causes:
            self._faults |= McuFault.RCD
        if "overtemp" in self._causes:
            self._faults |= McuFault.OVERTEMP
        if "diode" in self._causes and self._pwm_running:
            self._faults |= McuFault.DIODE
        if self.status != self._last_sent:
            self._send_status()

    def _control_received(self, control: PilotControl) -> None:
        self._arm_watchdog()
        previous, self._control = self._control, control
        if control.ack_faults:
            self._acknowledge()
        retry = control.lock_retry and not previous.lock_retry
        if control.lock != previous.lock or retry:
            self._move_lock()
        self._changed()

    def _move_lock(self) -> None:
        """Spec §6.5: drive the lock towards the requested position, for at most
        ``lock_timeout``; a newer request replaces the attempt under way."""
        if self._lock_attempt is not None:
            self._lock_attempt.cancel()
            self._lock_attempt = None
        if self._locked == self._control.lock:
            return
        loop = asyncio.get_running_loop()
        if "lock" in self._causes:
            self._lock_attempt = loop.call_later(self._lock_timeout, self._lock_failed)
        else:
            self._lock_attempt = loop.call_later(self._lock_travel, self._lock_arrived)

    def _lock_arrived(self) -> None:
        self._lock_attempt = None
        self._locked = self._control.lock
        self._changed()

    def _lock_failed(self) -> None:
        self._lock_attempt = None
        _log.warning("simulated MCU: the connector lock did not reach its position")
        self._faults |= McuFault.LOCK
        self._changed()

    def _acknowledge(self) -> None:
        """Spec §6.3: clear latched faults whose cause is gone."""
        cleared = McuFault.NONE
        for fault, cause in (
            (McuFault.RCD, "rcd"),
            (McuFault.OVERTEMP, "overtemp"),
            (McuFault.DIODE, "diode"),
        ):
            if fault in self._faults and cause not in self._causes:
                cleared |= fault
        lock_in_place = self._locked == self._control.lock and self._lock_attempt is None
        if McuFault.LOCK in self._faults and lock_in_place:
            cleared |= McuFault.LOCK
        if McuFault.HOST_TIMEOUT in self._faults:
            # A valid frame just arrived, so the cause is gone; F continues for fault_hold.
            cleared |= McuFault.HOST_TIMEOUT
            self._holding_f = True
            self._later(self._fault_hold, self._end_hold)
        if cleared:
            self._faults &= ~cleared
            _log.info("simulated MCU: faults %r acknowledged", cleared)

    def _end_hold(self) -> None:
        self._holding_f = False
        self._changed()

    def _host_timed_out(self) -> None:
        """Spec §6.2: no valid host frame for host_timeout -> relay open, state F, latch."""
        self._watchdog = None
        self._decoder.resync()
        if McuFault.HOST_TIMEOUT not in self._faults:
            _log.warning(
                "simulated MCU: no valid host frame for %.0f ms: failsafe",
                self._host_timeout * 1000,
            )
            self._faults |= McuFault.HOST_TIMEOUT
        self._changed()

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self._host_timeout, self._host_timed_out)

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > loop.time()]
        self._timers.append(loop.call_later(delay, callback))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._status_period)
            self._send_status()

    # -- wire ------------------------------------------------------------------------------

    def _send_status(self) -> None:
        if self._silent or self._fd < 0:
            return
        status = self.status
        self._write(encode_status(status, self._tx_seq))
        self._last_sent, self._last_sent_seq = status, self._tx_seq
        self._tx_seq = (self._tx_seq + 1) & 0xFF

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._fd, data)
        except BlockingIOError:
            _log.debug("simulated MCU: pty full, frame dropped")
        except OSError as exc:
            _log.debug("simulated MCU: write failed: %s", exc)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                _log.warning("simulated MCU: read failed: %s", exc)
            data = b""
        if not data:
            # EIO/EOF: nobody has the slave open. Poll until a host opens it again.
            self._pause_reading()
            self._decoder.reset()
            self._later(_PEER_POLL, self._resume_reading)
            return
        if self._silent:
            return  # hung: what the host sends is lost
        for message in self._decoder.feed(data):
            if isinstance(message, ControlMessage):
                self._control_received(message.control)

    def _resume_reading(self) -> None:
        if not self._reading and self._fd >= 0:
            asyncio.get_running_loop().add_reader(self._fd, self._readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._reading = False
