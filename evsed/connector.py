"""Runs one connector: feeds HAL observations into the pure state machine and carries out
its commands against the HAL. The only place where charging decisions touch hardware.

HAL commands run synchronously inside ``feed`` (the safety path: a C->B status frame opens the
contactor before ``feed`` returns). Transaction and authorization work goes to an ordered
worker, which asks the :class:`~evsed.port.SessionHost` (the CSMS client), so a start is always
recorded before the matching stop. The runner is the :class:`evsed.port.Connector` that the
charger's clients see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable

from evsed.charging.commands import (
    AskAuthorization,
    BeginTransaction,
    CheckStopTag,
    CloseContactor,
    Command,
    EndTransaction,
    EngageLock,
    OpenContactor,
    ReleaseLock,
    SetPwm,
    ShowStateF,
    StopPwm,
)
from evsed.charging.events import (
    AuthAccepted,
    AuthorizationRevoked,
    AuthRejected,
    AvailabilityChanged,
    CableRatingRead,
    CpStateChanged,
    CurrentMeasured,
    Event,
    FaultCleared,
    FaultRaised,
    LimitChanged,
    LockPositionRead,
    RemoteStartRequested,
    ReservationChanged,
    SettingsChanged,
    StopReason,
    StopRequested,
    TagPresented,
    TimePassed,
    UnlockRequested,
)
from evsed.charging.faults import Fault
from evsed.charging.session import step
from evsed.charging.state import ConnectorState, PilotSignal, Settings
from evsed.logs import with_fields
from evsed.port import SessionHost
from evsed.tasks import cancel_and_wait
from hal.errors import MeterError
from hal.iec61851 import current_to_duty
from hal.interfaces import Contactor, Meter, Pilot
from hal.types import (
    DUTY_OFF,
    DUTY_STATE_F,
    CpState,
    McuFault,
    MeterReading,
    PilotControl,
    PilotStatus,
)

log = logging.getLogger(__name__)

TICK_S = 0.1
METER_FAILURES_FOR_FAULT = 3
METER_BACKOFF_MAX_S = 5.0
# How long an unlock may take to show in the MCU's lock feedback: the MCU gives up after 500 ms
# (docs/mcu-protocol.md §6.5), plus a few status frames.
UNLOCK_ANSWER_S = 1.0
SHUTDOWN_SETTLE_S = 5.0


class ConnectorRunner:
    """One connector's HAL, state machine and timers."""

    def __init__(
        self,
        connector_id: int,
        settings: Settings,
        *,
        pilot: Pilot,
        contactor: Contactor,
        meter: Meter,
        sessions: SessionHost,
        clock: Callable[[], float],
        meter_poll_s: float = 1.0,
        feedback_check_s: float = 0.1,
    ) -> None:
        self.connector_id = connector_id
        self._log = with_fields(log, connector=connector_id)  # EVSED_CONNECTOR in the journal
        self.state = ConnectorState(settings=settings)
        self.pilot_status: PilotStatus | None = None
        self.meter_reading: MeterReading | None = None
        self._pilot, self._contactor, self._meter = pilot, contactor, meter
        self._clock = clock
        self._sessions = sessions
        self._meter_poll_s = meter_poll_s
        self._feedback_check_s = feedback_check_s
        self._control = PilotControl()
        self._work: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._feedback_check: asyncio.TimerHandle | None = None
        self._listeners: list[Callable[[ConnectorRunner], None]] = []
        self._meter_failures = 0
        self._first_reading = asyncio.Event()
        self._unlocked: list[asyncio.Future[None]] = []
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._contactor.start(self._on_feedback)
        await self._meter.start()
        await self._pilot.start(self._on_pilot_status, self._on_link)
        self._pilot.set_control(self._control)
        for coro in (self._worker(), self._ticker(), self._meter_loop()):
            self._tasks.append(asyncio.create_task(coro))

    async def first_reading(self, timeout: float) -> MeterReading | None:
        try:
            await asyncio.wait_for(self._first_reading.wait(), timeout)
        except TimeoutError:
            return None
        return self.meter_reading

    def halt(self) -> None:
        """Open the contactor and stop PWM, at once and for good: from here on no event
        reaches the state machine, so nothing can close the contactor again."""
        self._stopping = True
        self._contactor.open()
        self._control = PilotControl(duty=DUTY_OFF, allow_power=False)
        self._pilot.set_control(self._control)
        if self._feedback_check is not None:
            self._feedback_check.cancel()

    async def shutdown(self, settle_s: float = SHUTDOWN_SETTLE_S) -> None:
        """:meth:`halt`, then stop the timers and drivers. Transaction work already queued (a
        start or stop still being committed) gets up to ``settle_s`` to finish."""
        self.halt()
        try:
            async with asyncio.timeout(settle_s):
                await self._work.join()
        except TimeoutError:
            self._log.error(
                "connector %d: transaction work did not finish before shutdown",
                self.connector_id,
            )
        await cancel_and_wait(self._tasks)
        await self._pilot.stop()
        await self._meter.stop()
        self._contactor.stop()

    @property
    def offered_current_a(self) -> float:
        """What the PWM offers now (OCPP Current.Offered); 0 without PWM."""
        return self.state.pwm_a if self.state.pilot is PilotSignal.PWM else 0.0

    @property
    def pilot_link_ok(self) -> bool:
        return self._pilot.link_ok

    @property
    def pilot_stats(self) -> dict[str, int]:
        return self._pilot.stats.as_dict()

    def on_change(self, listener: Callable[[ConnectorRunner], None]) -> None:
        self._listeners.append(listener)

    # -- requests from the charger's clients (evsed.port.Connector) ---------------------------

    def remote_start(self, id_tag: str) -> None:
        self.feed(RemoteStartRequested(id_tag))

    def request_stop(self, reason: StopReason) -> None:
        self.feed(StopRequested(reason))

    def revoke_authorization(self) -> None:
        self.feed(AuthorizationRevoked())

    def change_settings(self, settings: Settings) -> None:
        self.feed(SettingsChanged(settings))

    def set_operative(self, operative: bool) -> None:
        self.feed(AvailabilityChanged(operative))

    def set_limit(self, amps: float | None) -> None:
        """The most the connector may offer from outside (its share of the supply)."""
        self.feed(LimitChanged(amps))

    def set_reserved(self, reserved: bool) -> None:
        """A reservation holds the connector, or no longer does."""
        self.feed(ReservationChanged(reserved))

    def present_tag(self, id_tag: str) -> None:
        """An id tag was read at this connector (RFID, QR)."""
        self.feed(TagPresented(id_tag))

    # -- events in ----------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        if self._stopping:
            return  # shut down: the contactor stays open, whatever happens
        before = self.state
        self.state, commands = step(self.state, event, self._clock())
        for command in commands:
            self._execute(command)
        if before.faults != self.state.faults:
            for fault in sorted(self.state.faults - before.faults):
                self._log.warning(
                    "connector %d: fault %s", self.connector_id, fault, extra={"fault": fault}
                )
            for fault in sorted(before.faults - self.state.faults):
                self._log.info(
                    "connector %d: fault %s cleared",
                    self.connector_id,
                    fault,
                    extra={"fault": fault},
                )
        if commands or _visible(before) != _visible(self.state):
            if commands:
                self._log.info(
                    "connector %d: %s -> %s",
                    self.connector_id,
                    type(event).__name__,
                    ", ".join(type(c).__name__ for c in commands),
                )
            for listener in self._listeners:
                listener(self)

    def _on_pilot_status(self, status: PilotStatus) -> None:
        previous, self.pilot_status = self.pilot_status, status
        if previous is None or previous.pp_max_current_a != status.pp_max_current_a:
            self.feed(CableRatingRead(float(status.pp_max_current_a)))
        if (
            previous is None
            or previous.cp_state != status.cp_state
            or previous.mcu_driving_f != status.mcu_driving_f
        ):
            self.feed(CpStateChanged(status.cp_state, status.mcu_driving_f))
        if previous is None or previous.locked != status.locked:
            self.feed(LockPositionRead(status.locked))
        if not status.locked:
            for waiter in self._unlocked:
                if not waiter.done():
                    waiter.set_result(None)
        was = _mcu_faults(previous.faults if previous else McuFault.NONE)
        now = _mcu_faults(status.faults)
        for fault in sorted(now - was):
            self.feed(FaultRaised(fault))
        for fault in sorted(was - now):
            self.feed(FaultCleared(fault))
        # Acknowledge latched MCU faults once seen; the MCU clears only those whose cause is
        # gone and holds state F for its minimum time. An RCD trip is acknowledged only after
        # the car is unplugged (DESIGN.md: GroundFailure clears on unplug); so is a lock
        # failure, so that a lock that keeps failing is not tried again and again.
        ackable = status.faults & ~(McuFault.RCD | McuFault.LOCK)
        if status.cp_state is CpState.A:
            ackable = status.faults
        want_ack = bool(ackable) and self._pilot.link_ok
        if want_ack != self._control.ack_faults:
            self._send_control(ack_faults=want_ack)

    async def unlock(self) -> bool:
        """Unlock request (OCPP UnlockConnector): release the lock and wait until its feedback
        says unlocked (True), or until the MCU has had time to give up (False). After an
        earlier failed attempt the MCU is asked for a new one (``lock_retry``).

        With a transaction, the transaction ends first and the lock opens once the EV has left
        C (up to 6 s later), so the answer is True at once (OCPP 1.6 §5.18)."""
        self.feed(UnlockRequested())
        if self.state.tx_active:
            return True
        status = self.pilot_status
        if status is not None and self._pilot.link_ok and not status.locked:
            return True
        # Locked, or no word from the MCU yet (just started, link down): wait for it.
        retry = status is not None and McuFault.LOCK in status.faults
        if retry:
            self._send_control(lock_retry=True)
        waiter = asyncio.get_running_loop().create_future()
        self._unlocked.append(waiter)
        try:
            await asyncio.wait_for(waiter, UNLOCK_ANSWER_S)
        except TimeoutError:
            self._log.error("connector %d: the connector lock did not open", self.connector_id)
            return False
        finally:
            self._unlocked.remove(waiter)
            if retry:
                self._send_control(lock_retry=False)
        return True

    def _on_link(self, ok: bool) -> None:
        self._log.warning("connector %d: MCU link %s", self.connector_id, "up" if ok else "LOST")
        self.set_fault(Fault.MCU_LINK_LOST, not ok)

    def _on_feedback(self, closed: bool) -> None:
        self._log.debug("connector %d: contactor feedback %s", self.connector_id, closed)

    def set_fault(self, fault: Fault, active: bool) -> None:
        """Raise or clear a fault (also one found outside the connector: the database)."""
        if active and fault not in self.state.faults:
            self.feed(FaultRaised(fault))
        elif not active and fault in self.state.faults:
            self.feed(FaultCleared(fault))

    def clear_latched_faults(self) -> list[str]:
        """Local clear of latched faults (contactor supervision), as after a Reset."""
        cleared = []
        for fault in (Fault.CONTACTOR_WELDED, Fault.CONTACTOR_STUCK_OPEN):
            if fault in self.state.faults:
                self.feed(FaultCleared(fault))
                cleared.append(str(fault))
        return cleared

    # -- commands out -------------------------------------------------------------------------

    def _execute(self, command: Command) -> None:
        match command:
            case OpenContactor():
                self._contactor.open()
                self._send_control(allow_power=False)
                self._check_feedback_later(expect_closed=False)
            case CloseContactor():
                self._send_control(allow_power=True)
                self._contactor.close()
                self._check_feedback_later(expect_closed=True)
            case SetPwm(current_a=amps):
                self._send_control(duty=current_to_duty(amps))
            case StopPwm():
                self._send_control(duty=DUTY_OFF)
            case ShowStateF():
                self._send_control(duty=DUTY_STATE_F)
            case EngageLock():
                self._send_control(lock=True)
            case ReleaseLock():
                self._send_control(lock=False)
            case CheckStopTag(id_tag=tag):
                self._work.put_nowait(lambda: self._run_stop_check(tag))
            case AskAuthorization(id_tag=tag):
                self._work.put_nowait(lambda: self._run_authorize(tag))
            case BeginTransaction(id_tag=tag):
                reading = self.meter_reading
                self._work.put_nowait(lambda: self._sessions.start(self.connector_id, tag, reading))
            case EndTransaction(reason=reason):
                reading = self.meter_reading
                self._work.put_nowait(
                    lambda: self._sessions.stop(self.connector_id, reason, reading)
                )

    def _send_control(self, **changes: object) -> None:
        self._control = dataclasses.replace(self._control, **changes)  # type: ignore[arg-type]
        self._pilot.set_control(self._control)

    def _check_feedback_later(self, *, expect_closed: bool) -> None:
        def check() -> None:
            if self._contactor.feedback_closed != expect_closed:
                fault = Fault.CONTACTOR_STUCK_OPEN if expect_closed else Fault.CONTACTOR_WELDED
                self._log.error(
                    "connector %d: contactor feedback disagrees: %s",
                    self.connector_id,
                    fault,
                    extra={"fault": fault},
                )
                self.set_fault(fault, True)

        # A newer switch replaces the pending check: only the last command's outcome matters.
        if self._feedback_check is not None:
            self._feedback_check.cancel()
        self._feedback_check = asyncio.get_running_loop().call_later(self._feedback_check_s, check)

    async def _run_authorize(self, tag: str) -> None:
        try:
            accepted = await self._sessions.authorize(self.connector_id, tag)
        except Exception:
            self._log.exception("connector %d: authorization of a tag failed", self.connector_id)
            accepted = False
        self.feed(AuthAccepted(tag) if accepted else AuthRejected(tag))

    async def _run_stop_check(self, tag: str) -> None:
        allowed = False
        started = self.state.auth_tag
        if started is not None:
            try:
                allowed = await self._sessions.may_stop(self.connector_id, started, tag)
            except Exception:
                self._log.exception("connector %d: checking a stop tag failed", self.connector_id)
        if allowed:
            self.feed(StopRequested(StopReason.LOCAL))
        else:
            self._log.info(
                "connector %d: presented tag may not stop this transaction", self.connector_id
            )

    # -- loops --------------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            job = await self._work.get()
            try:
                await job()
            except Exception:
                self._log.exception("connector %d: transaction work failed", self.connector_id)
            finally:
                self._work.task_done()

    async def settled(self) -> None:
        """Wait until every queued transaction/authorization job has run."""
        await self._work.join()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.feed(TimePassed())

    async def _meter_loop(self) -> None:
        """Poll the meter; on errors retry with backoff, and after three in a row report
        PowerMeterFailure (whether that stops charging is ``charging.require_meter``)."""
        while True:
            try:
                reading = await self._meter.read()
            except MeterError as exc:
                self._meter_failures += 1
                self._log.warning(
                    "connector %d: meter read failed (%d in a row): %s",
                    self.connector_id,
                    self._meter_failures,
                    exc,
                )
                if self._meter_failures == METER_FAILURES_FOR_FAULT:
                    self.set_fault(Fault.METER_FAILURE, True)
            else:
                self.meter_reading = reading
                self._first_reading.set()
                if self._meter_failures:
                    self._log.info("connector %d: meter readable again", self.connector_id)
                    self._meter_failures = 0
                    self.set_fault(Fault.METER_FAILURE, False)
                self.feed(CurrentMeasured(max(reading.current_a)))
            await asyncio.sleep(self._meter_delay())

    def _meter_delay(self) -> float:
        if not self._meter_failures:
            return self._meter_poll_s
        backoff = self._meter_poll_s * float(2 ** min(self._meter_failures - 1, 5))
        return min(backoff, max(METER_BACKOFF_MAX_S, self._meter_poll_s))


_MCU_FAULTS: dict[McuFault, Fault] = {
    McuFault.HOST_TIMEOUT: Fault.MCU_FAILSAFE,
    McuFault.INTERNAL: Fault.MCU_FAILSAFE,
    McuFault.RCD: Fault.RCD_TRIPPED,
    McuFault.OVERTEMP: Fault.OVER_TEMPERATURE,
    McuFault.DIODE: Fault.CP_DIODE,
    McuFault.LOCK: Fault.CONNECTOR_LOCK,
}


def _mcu_faults(flags: McuFault) -> set[Fault]:
    return {fault for flag, fault in _MCU_FAULTS.items() if flags & flag}


def _visible(state: ConnectorState) -> tuple[object, ...]:
    """The parts of the state that change what the outside sees (status, display).

    ``available`` belongs here: ChangeAvailability on an idle connector changes nothing else,
    and its StatusNotification (Unavailable / Available, OCPP 1.6 §5.2) must still be sent.
    """
    return (
        state.phase,
        state.cp,
        state.faults,
        state.contactor_closed,
        state.pending_tag,
        state.available,
        state.reserved,
    )
