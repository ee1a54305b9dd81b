"""The charger: its connectors, and everything that is charger-wide.

- Availability (OCPP 1.6 §5.2): connector 0 is the charge point as a whole; each connector's
  and the charge point's are kept in the state database and restored at start-up. A connector
  with a transaction becomes inoperative once it ends (Scheduled).
- Restart requests (a Reset, the reboot after a firmware install) and the stop the service
  manager asks for, which wins over both.
- Start-up recovery: transactions left open by a crash or power cut end with reason PowerLoss,
  each with its own connector's meter reading.
- Shutdown: every contactor opens first, then every open transaction ends.
- The hardware health check, and holding the connectors for a firmware install.
- The state database's health: while it takes no writes every connector shows the fault.
- The supply's current budget (``charging.supply_max_current_a``), shared by the connectors
  that want current (:mod:`evsed.charging.budget`) and given back when a session ends: after
  every change of a connector, the shares are applied lowest first, so the sum of what the
  PWMs offer never exceeds the supply, not even for a moment.
- Reservations (:mod:`evsed.reservations`): the connectors see the CSMS client through the
  reservation gate; the price board (:mod:`evsed.pricing`) and the fault history
  (:mod:`evsed.fault_log`) follow the connectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from evsed.charging.events import StopReason
from evsed.charging.faults import Fault
from evsed.charging.reservations import Reservation, ReservationOutcome
from evsed.charging.schedules import CompositePeriod, Profile, Purpose, Unit
from evsed.charging.state import Settings
from evsed.clock import utcnow
from evsed.config import Config, ConnectorConfig
from evsed.connector import ConnectorRunner
from evsed.fault_log import FaultRecorder
from evsed.hardware import Hardware
from evsed.limits import ChargerLimits
from evsed.port import AvailabilityResult, RestartKind, SessionHost
from evsed.pricing import PriceBoard
from evsed.reservations import ReservationBook, ReservedSessions
from evsed.site import SiteLoad, charger_draw
from evsed.store import kv
from evsed.store.db import Database
from evsed.store.faults import FaultStore
from evsed.store.health import StorageHealth
from evsed.store.profiles import ProfileStore
from evsed.store.reservations import ReservationStore
from evsed.store.transactions import TransactionStore
from hal.iec61851 import duty_to_current

log = logging.getLogger(__name__)

RECOVERY_METER_WAIT_S = 5.0
RESET_STOP_WAIT_S = 10.0  # EV_STOP_GRACE_S plus margin: transactions end before the restart
SHUTDOWN_COMMIT_S = 5.0  # how long a stop may wait for its commit while the daemon stops
CHARGE_POINT = 0
SCHEDULE_CHECK_S = 60.0  # at the latest, limits are worked out again this often
DUTY_TAKEN_WAIT_S = 0.6  # the MCU reports every 100 ms; its failsafe acts after 500 ms


class Charger:
    """The charge point with its connectors (implements :class:`evsed.port.Charger`)."""

    def __init__(
        self,
        config: Config,
        hardware: Hardware,
        db: Database,
        storage: StorageHealth,
        sessions: SessionHost,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._sessions = sessions
        self.reservation_book = ReservationBook(ReservationStore(db), wall_clock=wall_clock)
        self._reservations_enabled = config.reservations.enabled
        # The connectors see the CSMS client through the reservations (§5.13).
        gate = ReservedSessions(sessions, self.reservation_book)
        self._runners = {
            c.id: ConnectorRunner(
                c.id,
                connector_settings(config, c),
                pilot=hardware.connectors[c.id].pilot,
                contactor=hardware.connectors[c.id].contactor,
                meter=hardware.connectors[c.id].meter,
                sessions=gate,
                clock=clock,
                meter_poll_s=c.meter.poll_interval_s,
                feedback_check_s=c.contactor.feedback_check_s,
            )
            for c in config.connectors
        }
        self.hardware = hardware
        self.fault_history = FaultRecorder(
            FaultStore(db, config.charging.fault_history_rows), self._runners, now=utcnow
        )
        self.prices = PriceBoard(self._runners)
        self.restart: RestartKind | None = None
        self.stop_requested = asyncio.Event()
        self._terminating = False
        self._operative = _stored_operative(db, CHARGE_POINT)
        self._charger_listeners: list[Callable[[], None]] = []
        self._holding_for_update = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.limits = ChargerLimits(config, ProfileStore(db))
        self._wall = wall_clock
        self._in_session: set[int] = set()
        self._rebalancing = False
        self._raise_later: asyncio.Task[None] | None = None
        self._limits_changed = asyncio.Event()
        if hardware.site_meter is not None:
            self.limits.site = SiteLoad(
                hardware.site_meter,
                config,
                own_draw=lambda: charger_draw(self._runners.values()),
                changed=self._site_changed,
            )
        storage.subscribe(self._storage_changed)
        for runner in self._runners.values():
            runner.on_change(self._rebalance)
            runner.on_change(self._follow_reservations)
        self.reservation_book.on_change(self._follow_reservations)

    # -- the port (evsed.port.Charger) --------------------------------------------------------

    @property
    def connectors(self) -> Mapping[int, ConnectorRunner]:
        return self._runners

    @property
    def operative(self) -> bool:
        return self._operative

    @property
    def unavailable(self) -> bool:
        """Connector 0 is Unavailable once it was made Inoperative and no transaction is left
        (§4.9, §5.2)."""
        return not self._operative and not any(r.state.tx_active for r in self._runners.values())

    def on_charger_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` when ChangeAvailability changed connector 0 (its status also follows
        from the connectors' transactions: see ``unavailable``)."""
        self._charger_listeners.append(listener)

    async def change_availability(self, connector_id: int, operative: bool) -> AvailabilityResult:
        """§5.2. Connector 0 is the charge point and every connector; a connector with a
        transaction becomes inoperative once it has ended (Scheduled)."""
        if connector_id == CHARGE_POINT:
            runners = list(self._runners.values())
        elif connector_id in self._runners:
            runners = [self._runners[connector_id]]
        else:
            return AvailabilityResult.REJECTED
        changed: list[int] = []
        if connector_id == CHARGE_POINT and self._operative != operative:
            self._operative = operative
            changed.append(CHARGE_POINT)
            self._charger_changed()
        scheduled = False
        for runner in runners:
            if runner.state.available == operative and not runner.state.unavailable_after_tx:
                continue
            runner.set_operative(operative)
            changed.append(runner.connector_id)
            scheduled = scheduled or runner.state.unavailable_after_tx
        # Written before the answer (it must survive a restart), off the event loop.
        for changed_id in changed:
            await asyncio.to_thread(_store_operative, self._db, changed_id, operative)
        return AvailabilityResult.SCHEDULED if scheduled else AvailabilityResult.ACCEPTED

    def reset(self, kind: RestartKind) -> None:
        self._spawn(self._reset(kind))

    def limit_of(self, connector_id: int) -> tuple[float | None, str]:
        state = self._runners[connector_id].state
        return self.limits.sources.get(connector_id, (state.settings.max_current_a, "installation"))

    @property
    def profiles(self) -> list[Profile]:
        return list(self.limits.profiles)

    async def install_profile(self, profile: Profile) -> None:
        replaced = await self.limits.install(profile)
        log.info(
            "charging profile %d installed (%s, connector %d, stack level %d)%s",
            profile.id,
            profile.purpose,
            profile.connector_id,
            profile.stack_level,
            f", replacing {replaced}" if replaced else "",
        )
        self.limits_changed()

    async def clear_profiles(self, chosen: Callable[[Profile], bool]) -> list[int]:
        removed = await self.limits.remove(chosen)
        if removed:
            log.info("charging profiles %s cleared", removed)
            self.limits_changed()
        return removed

    def composite_schedule(
        self, connector_id: int, duration_s: int, unit: Unit
    ) -> list[CompositePeriod] | None:
        states = {cid: runner.state for cid, runner in self._runners.items()}
        situations = self.limits.situations(states)
        if connector_id == CHARGE_POINT:
            chosen = list(situations.values())
        elif connector_id in situations:
            chosen = [situations[connector_id]]
        else:
            return None
        return self.limits.composite(chosen, self._wall(), duration_s, unit)

    # -- reservations (OCPP 1.6 §3.12, §5.13) ------------------------------------------------

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        return self.reservation_book.reservations

    async def reserve(self, reservation: Reservation) -> ReservationOutcome:
        if not self._reservations_enabled:
            return ReservationOutcome.REJECTED
        states = {cid: runner.state for cid, runner in self._runners.items()}
        return await self.reservation_book.request(
            reservation, states, charger_available=self._operative
        )

    async def cancel_reservation(self, reservation_id: int) -> bool:
        return await self.reservation_book.cancel(reservation_id)

    def fault_reported(self, connector_id: int, vendor_error_code: str, error_code: str) -> None:
        self.fault_history.reported(connector_id, vendor_error_code, error_code)

    def may_start(self, connector_id: int, id_tag: str) -> bool:
        return self.reservation_book.admits(connector_id, id_tag, None)

    def _follow_reservations(self, _changed: ConnectorRunner | None = None) -> None:
        self.reservation_book.follow(self._runners)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every connector and restore the availability each had (§5.2) and the
        charging profiles; then follow the schedules."""
        await self.limits.load()
        self._rebalance()
        for runner in self._runners.values():
            await runner.start()
            if not _stored_operative(self._db, runner.connector_id):
                runner.set_operative(False)
        self._spawn(self._follow_schedules())
        self._spawn(self.fault_history.run())
        await self.reservation_book.load()
        self._follow_reservations()
        self._spawn(self.reservation_book.run())
        if self.limits.site is not None:
            self._spawn(self.limits.site.run())

    async def recover(self, store: TransactionStore) -> None:
        """Transactions left open by a crash or power cut end with reason PowerLoss (§5.11),
        each with a fresh reading of its own connector's meter."""
        records = await asyncio.to_thread(store.open_transactions)
        readings = {}
        for record in records:
            runner = self._runners.get(record.connector_id)
            if record.connector_id not in readings:
                readings[record.connector_id] = (
                    await runner.first_reading(RECOVERY_METER_WAIT_S) if runner else None
                )
            log.warning(
                "transaction %d on connector %d was open at start-up: stopping it (PowerLoss)",
                record.id,
                record.connector_id,
                extra={"connector": record.connector_id, "transaction": record.id},
            )
            reading = readings[record.connector_id]
            await self._sessions.stop_left_open(record, StopReason.POWER_LOSS, reading)

    def request_restart(self, kind: RestartKind) -> None:
        """Stop the daemon and start it again (Reset), or reboot (Hard, firmware)."""
        if self._terminating:
            log.info("%s restart ignored: the daemon is being stopped", kind)
            return
        self.restart = kind
        self.stop_requested.set()

    def terminate(self) -> None:
        """The service manager asked us to stop (SIGTERM/SIGINT): no restart afterwards, even
        when a Reset or a firmware install had asked for one."""
        self._terminating = True
        if self.restart is not None:
            log.warning("stop requested: the %s restart is not carried out", self.restart)
        self.restart = None
        self.stop_requested.set()

    async def shutdown(self) -> None:
        """Every contactor opens first; then every connector stops, and every transaction
        still open ends (a stop already under way keeps its own reason)."""
        for runner in self._runners.values():
            runner.halt()
        for task in list(self._tasks):
            task.cancel()
        for runner in self._runners.values():
            await runner.shutdown()
        for runner in self._runners.values():
            if self._sessions.transaction_open(runner.connector_id):
                await self._end_at_shutdown(runner)

    async def _end_at_shutdown(self, runner: ConnectorRunner) -> None:
        reason = runner.state.stop_reason or {
            "Soft": StopReason.SOFT_RESET,
            "Hard": StopReason.HARD_RESET,
        }.get(self.restart or "", StopReason.REBOOT)
        try:
            async with asyncio.timeout(SHUTDOWN_COMMIT_S):
                await self._sessions.stop(runner.connector_id, reason, runner.meter_reading)
        except TimeoutError:
            # Not recorded (the disk is still full): the next start ends it as PowerLoss.
            log.error(
                "connector %d: the open transaction could not be recorded as stopped",
                runner.connector_id,
            )

    # -- firmware updates ---------------------------------------------------------------------

    def busy_connectors(self) -> list[int]:
        """Connectors with a transaction: a firmware install waits for them."""
        return [r.connector_id for r in self._runners.values() if r.state.tx_active]

    def hold_for_update(self) -> None:
        """Every connector becomes Unavailable once its transaction ends (as a Scheduled
        ChangeAvailability), so none starts while an update waits to install."""
        self._holding_for_update = True
        for runner in self._runners.values():
            if runner.state.available and not runner.state.unavailable_after_tx:
                runner.set_operative(False)

    def release_after_update(self) -> None:
        """Back to the availability the operator set."""
        if not self._holding_for_update:
            return
        self._holding_for_update = False
        for runner in self._runners.values():
            if _stored_operative(self._db, runner.connector_id):
                runner.set_operative(True)

    def health(self) -> str | None:
        """The hardware health check: None when every connector is healthy, else what is
        wrong (MCU link, meter, contactor feedback, faults)."""
        for connector_id, runner in self._runners.items():
            if not runner.pilot_link_ok:
                return f"connector {connector_id}: no MCU link"
            if runner.meter_reading is None or Fault.METER_FAILURE in runner.state.faults:
                return f"connector {connector_id}: meter not readable"
            contactor = self.hardware.connectors[connector_id].contactor
            if contactor.commanded_closed != contactor.feedback_closed:
                return f"connector {connector_id}: contactor feedback inconsistent"
            if runner.state.blocking_faults:
                faults = ", ".join(sorted(runner.state.blocking_faults))
                return f"connector {connector_id}: faults {faults}"
        return None

    # -- inside -------------------------------------------------------------------------------

    async def _reset(self, kind: RestartKind) -> None:
        """Stop every transaction with reason Soft/HardReset, wait for them to end, restart."""
        reason = StopReason.SOFT_RESET if kind == "Soft" else StopReason.HARD_RESET
        for runner in self._runners.values():
            if runner.state.tx_active:
                runner.request_stop(reason)
        try:
            async with asyncio.timeout(RESET_STOP_WAIT_S):
                while self.busy_connectors():
                    await asyncio.sleep(0.1)
                await asyncio.gather(*(r.settled() for r in self._runners.values()))
        except TimeoutError:
            log.warning("reset: transactions did not end in time; restarting anyway")
        log.warning("%s reset requested by the CSMS", kind)
        self.request_restart(kind)

    def _charger_changed(self) -> None:
        for listener in list(self._charger_listeners):
            listener()

    def _rebalance(self, _changed: ConnectorRunner | None = None) -> None:
        """Work out every connector's limit again and apply it; lower limits first, then
        raised ones (a connector raises its offer at most every 5 s on its own). Re-entrant
        calls (a new limit changes the connector that got it) are folded into the one
        running."""
        if self._rebalancing:
            return
        self._rebalancing = True
        try:
            self._sessions_changed()
            while True:
                states = {cid: runner.state for cid, runner in self._runners.items()}
                targets = self.limits.targets(states, self._wall())
                changes = [
                    (amps, runner)
                    for cid, amps in targets.items()
                    if (runner := self._runners[cid]).state.limit_a != amps
                ]
                if not changes:
                    return
                # Every limit that goes down before any that goes up; and a limit goes up
                # only once every MCU has taken the lowered duties (its status frame says
                # so), so that even for a moment the offers never add up to more.
                lowered = [(a, r) for a, r in changes if _below(a, r.state.limit_a)]
                raised = [(a, r) for a, r in changes if not _below(a, r.state.limit_a)]
                for amps, runner in lowered:
                    runner.set_limit(amps)
                if raised and not all(_duty_taken(r) for r in self._runners.values()):
                    if self._raise_later is None or self._raise_later.done():
                        self._raise_later = asyncio.create_task(self._raise_when_taken())
                        self._tasks.add(self._raise_later)
                        self._raise_later.add_done_callback(self._tasks.discard)
                    return
                for amps, runner in raised:
                    runner.set_limit(amps)
        finally:
            self._rebalancing = False

    async def _raise_when_taken(self) -> None:
        """Apply the raised limits once the MCUs report the lowered duties (or after
        DUTY_TAKEN_WAIT_S: an MCU that does not report drops its PWM on its own)."""
        deadline = asyncio.get_running_loop().time() + DUTY_TAKEN_WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            if all(_duty_taken(r) for r in self._runners.values()):
                break
            await asyncio.sleep(0.01)
        else:
            log.warning("an MCU did not report its lowered duty; raising the others anyway")
        self._raise_later = None
        self._rebalance()

    def _sessions_changed(self) -> None:
        """Note when transactions begin (relative schedules count from there) and when
        sessions end (the transaction's own profiles go with it, OCPP 1.6 §3.13.1)."""
        now = self._wall()
        for cid, runner in self._runners.items():
            state = runner.state
            self.limits.transaction_seen(cid, state.tx_active, now)
            in_session = state.tx_active or state.auth_tag is not None
            if in_session:
                self._in_session.add(cid)
            elif cid in self._in_session:
                self._in_session.discard(cid)
                self._spawn(self._forget_transaction_profiles(cid))

    async def _forget_transaction_profiles(self, connector_id: int) -> None:
        removed = await self.limits.remove(
            lambda p: p.purpose is Purpose.TX and p.connector_id == connector_id
        )
        if removed:
            log.info("connector %d: transaction profiles %s removed", connector_id, removed)
            self.limits_changed()

    def limits_changed(self) -> None:
        """Profiles or the site allowance changed: apply the limits now."""
        self._rebalance()
        self._limits_changed.set()

    async def _follow_schedules(self) -> None:
        """Apply the limits again whenever a schedule period begins or ends."""
        while True:
            now = self._wall()
            states = {cid: runner.state for cid, runner in self._runners.items()}
            upcoming = self.limits.next_change(states, now)
            wait = SCHEDULE_CHECK_S if upcoming is None else min(upcoming - now, SCHEDULE_CHECK_S)
            self._limits_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._limits_changed.wait()
            self._rebalance()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def site_snapshot(self) -> dict[str, Any] | None:
        """Local load management for evsectl status; None when it is off."""
        return None if self.limits.site is None else self.limits.site.snapshot()

    @property
    def site_meter_lost(self) -> bool:
        return self.limits.site is not None and self.limits.site.lost

    def _site_changed(self) -> None:
        self.limits_changed()
        self._charger_changed()

    def _storage_changed(self, ok: bool) -> None:
        for runner in self._runners.values():
            runner.set_fault(Fault.STORAGE_FAILURE, not ok)


def _duty_taken(runner: ConnectorRunner) -> bool:
    """Whether the connector's MCU offers no more than the host asks (its last status frame's
    duty); a connector without a link to its MCU offers nothing (the MCU's failsafe)."""
    status = runner.pilot_status
    if status is None or not runner.pilot_link_ok:
        return True
    return duty_to_current(status.duty) <= runner.offered_current_a + 0.05


def _below(amps: float | None, current: float | None) -> bool:
    """Whether ``amps`` lowers a limit that is ``current`` (None: no limit)."""
    if amps is None:
        return False
    return current is None or amps < current


def connector_settings(config: Config, connector: ConnectorConfig) -> Settings:
    """The charging core's policy for one connector."""
    c = config.charging
    return Settings(
        max_current_a=connector.max_current_a,
        free_mode=c.free_mode,
        free_mode_id_tag=c.free_mode_id_tag,
        connection_timeout_s=c.connection_timeout_s,
        stop_on_ev_disconnect=c.stop_on_ev_disconnect,
        ventilation_available=c.ventilation_available,
        c_debounce_s=c.c_debounce_s,
        require_meter=c.require_meter,
        has_lock=connector.connector_lock,
    )


def _stored_operative(db: Database, connector_id: int) -> bool:
    return kv.get(db, f"connector.{connector_id}.operative") != "false"


def _store_operative(db: Database, connector_id: int, operative: bool) -> None:
    kv.put(db, f"connector.{connector_id}.operative", str(operative).lower())
