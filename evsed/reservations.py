"""The charger's reservations (OCPP 1.6 §3.12, §5.13), version-neutral: the book that keeps
them (committed to the state database before a request is answered, so they survive a
restart), expires them, and the gate between the connectors and the CSMS client that lets a
held connector start only for a tag its reservation admits.

The rules themselves are pure functions in :mod:`evsed.charging.reservations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Protocol

from evsed.charging.events import StopReason
from evsed.charging.reservations import (
    Reservation,
    ReservationOutcome,
    Spot,
    admitted,
    decide,
    held_by,
    holds,
    used_by,
)
from evsed.charging.state import ConnectorState, Phase
from evsed.port import SessionHost
from evsed.store.reservations import ReservationStore
from evsed.store.transactions import TransactionRecord
from hal.types import MeterReading

log = logging.getLogger(__name__)

EXPIRY_CHECK_S = 60.0  # at the latest, expiry is looked at this often


class Holdable(Protocol):
    """A connector as the book sees it (the charger's runners)."""

    @property
    def state(self) -> ConnectorState: ...

    def set_reserved(self, reserved: bool) -> None: ...


def spot(state: ConnectorState) -> Spot:
    """What the reservation rules need of a connector."""
    return Spot(
        free=state.phase is Phase.IDLE and not state.blocking_faults and state.pending_tag is None,
        faulted=bool(state.blocking_faults),
        unavailable=not state.available,
    )


class ReservationBook:
    """The reservations in force, and which connectors they hold.

    ``free`` is what the charger last said of its connectors (idle, available, no fault); it
    tells the book which connectors the charger-wide reservations hold."""

    def __init__(self, store: ReservationStore, *, wall_clock: Callable[[], float]) -> None:
        self._store = store
        self._wall = wall_clock
        self._reservations: tuple[Reservation, ...] = ()
        self._free: dict[int, bool] = {}
        self._listeners: list[Callable[[], None]] = []
        self._changed = asyncio.Event()
        self._following = False

    @property
    def reservations(self) -> tuple[Reservation, ...]:
        return self._reservations

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` after a reservation was made, used, cancelled or expired."""
        self._listeners.append(listener)

    async def load(self) -> None:
        """The reservations kept in the state database; expired ones are dropped."""
        stored = await asyncio.to_thread(self._store.all)
        self._reservations = tuple(stored)
        await self.expire()
        if self._reservations:
            log.info("%d reservation(s) restored", len(self._reservations))

    def spots_changed(self, free: dict[int, bool]) -> dict[int, bool]:
        """The charger's connectors changed; returns whether each is held now."""
        self._free = dict(free)
        return self.held()

    def held(self) -> dict[int, bool]:
        return {cid: bool(rs) for cid, rs in holds(self._reservations, self._free).items()}

    def held_by(self, connector_id: int) -> tuple[Reservation, ...]:
        return held_by(self._reservations, self._free, connector_id)

    def admits(self, connector_id: int, id_tag: str, group: str | None) -> bool:
        return admitted(self._reservations, self._free, connector_id, id_tag, group)

    def for_connector(self, connector_id: int) -> list[Reservation]:
        """What evsectl status shows: the connector's own and the charger-wide reservations
        that hold it."""
        return list(self.held_by(connector_id)) if self.held().get(connector_id) else []

    async def request(
        self,
        reservation: Reservation,
        states: Mapping[int, ConnectorState],
        *,
        charger_available: bool,
    ) -> ReservationOutcome:
        """Make ``reservation`` if the rules allow it now; the outcome either way."""
        outcome = decide(
            reservation,
            self._reservations,
            {cid: spot(state) for cid, state in states.items()},
            charger_available=charger_available,
            now=self._wall(),
        )
        if outcome is ReservationOutcome.ACCEPTED:
            await self.add(reservation)
        return outcome

    def follow(self, connectors: Mapping[int, Holdable]) -> None:
        """Tell each connector whether a reservation holds it, after any change of the
        connectors or the reservations (re-entrant calls are folded into the one running)."""
        if self._following:
            return
        self._following = True
        try:
            while True:
                free = {cid: spot(c.state).free for cid, c in connectors.items()}
                held = self.spots_changed(free)
                changes = [
                    (cid, c) for cid, c in connectors.items() if c.state.reserved != held[cid]
                ]
                if not changes:
                    return
                for cid, connector in changes:
                    connector.set_reserved(held[cid])
        finally:
            self._following = False

    async def add(self, reservation: Reservation) -> None:
        """Make (or replace, same id) a reservation; committed before it counts."""
        await asyncio.to_thread(self._store.put, reservation)
        kept = tuple(r for r in self._reservations if r.id != reservation.id)
        self._reservations = (*kept, reservation)
        log.info(
            "reservation %d for connector %d until %.0f",
            reservation.id,
            reservation.connector_id,
            reservation.expires_at,
            extra={"connector": reservation.connector_id},
        )
        self._notify()

    async def cancel(self, reservation_id: int) -> bool:
        if not any(r.id == reservation_id for r in self._reservations):
            return False
        await self._remove([reservation_id], "cancelled")
        return True

    async def use(self, connector_id: int, id_tag: str, group: str | None) -> Reservation | None:
        """A transaction starts on ``connector_id`` for ``id_tag``: the reservation it uses
        ends (§5.13)."""
        reservation = used_by(self._reservations, connector_id, id_tag, group)
        if reservation is not None:
            await self._remove([reservation.id], f"used on connector {connector_id}")
        return reservation

    async def expire(self) -> None:
        now = self._wall()
        expired = [r.id for r in self._reservations if r.expires_at <= now]
        if expired:
            await self._remove(expired, "expired")

    async def run(self) -> None:
        """End each reservation at its expiry date."""
        while True:
            await self.expire()
            upcoming = min((r.expires_at for r in self._reservations), default=None)
            wait = EXPIRY_CHECK_S if upcoming is None else upcoming - self._wall()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(wait, 0.0), EXPIRY_CHECK_S)):
                    await self._changed.wait()

    async def _remove(self, ids: list[int], why: str) -> None:
        await asyncio.to_thread(self._store.delete, ids)
        self._reservations = tuple(r for r in self._reservations if r.id not in ids)
        for reservation_id in ids:
            log.info("reservation %d %s", reservation_id, why)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        for listener in list(self._listeners):
            listener()


class ReservedSessions:
    """The :class:`~evsed.port.SessionHost` the connectors see: the CSMS client's, with the
    reservations applied (§3.12, §5.13).

    On a held connector, a tag other than the reserved one is refused at once (no round trip
    to the CSMS) unless a reservation holding it has a group; then the tag is authorized as
    usual and admitted when its group is the reservation's. A transaction that starts uses its
    reservation, whose id the CSMS client reports with the start."""

    def __init__(self, sessions: SessionHost, book: ReservationBook) -> None:
        self._sessions = sessions
        self._book = book

    async def authorize(self, connector_id: int, id_tag: str) -> bool:
        book = self._book
        if book.admits(connector_id, id_tag, None):
            return await self._sessions.authorize(connector_id, id_tag)
        if not any(r.parent_id_tag for r in book.held_by(connector_id)):
            log.info("connector %d: reserved for another id tag", connector_id)
            return False
        accepted = await self._sessions.authorize(connector_id, id_tag)
        if accepted and book.admits(connector_id, id_tag, self._sessions.group_of(connector_id)):
            return True
        log.info("connector %d: reserved for another group", connector_id)
        return False

    def group_of(self, connector_id: int) -> str | None:
        return self._sessions.group_of(connector_id)

    async def may_stop(self, connector_id: int, started_tag: str, presented_tag: str) -> bool:
        return await self._sessions.may_stop(connector_id, started_tag, presented_tag)

    async def start(
        self,
        connector_id: int,
        id_tag: str,
        reading: MeterReading | None,
        reservation_id: int | None = None,
    ) -> None:
        used = await self._book.use(connector_id, id_tag, self._sessions.group_of(connector_id))
        reservation_id = used.id if used is not None else reservation_id
        await self._sessions.start(connector_id, id_tag, reading, reservation_id)

    async def stop(
        self, connector_id: int, reason: StopReason, reading: MeterReading | None
    ) -> None:
        await self._sessions.stop(connector_id, reason, reading)

    def transaction_open(self, connector_id: int) -> bool:
        return self._sessions.transaction_open(connector_id)

    async def stop_left_open(
        self, record: TransactionRecord, reason: StopReason, reading: MeterReading | None
    ) -> None:
        await self._sessions.stop_left_open(record, reason, reading)
