"""Reservations as data, and the rules about them (OCPP 1.6 §3.12, §5.13), version-neutral.

Pure functions of the reservations and of what each connector is doing:

- A connector is *held* by its own reservations, and by the charger-wide ones (connector 0)
  once the connectors still open (free and not reserved themselves) are no more than the
  charger-wide reservations: one connector stays available for each of them (§5.13).
- A held connector admits only a tag of a reservation that holds it: the reserved idTag, or a
  tag whose group (parentIdTag) is the reservation's parentIdTag (§3.12).
- A transaction that starts with an admitted tag uses the reservation: the connector's own
  first, then a charger-wide one. The reservation ends there (§5.13).
- A new reservation is refused when the connector is faulted, unavailable or not free, or
  would leave a charger-wide reservation without a connector; a charger-wide one needs a free
  connector more than the charger-wide reservations already have.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

CHARGE_POINT = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    connector_id: int  # 0: any connector of the charger
    id_tag: str
    parent_id_tag: str | None
    expires_at: float  # wall clock, seconds since the epoch

    def admits(self, id_tag: str, group: str | None) -> bool:
        """The reserved tag, or one of the reservation's group (same parentIdTag)."""
        same_group = self.parent_id_tag is not None and group == self.parent_id_tag
        return id_tag == self.id_tag or same_group


class ReservationOutcome(enum.StrEnum):
    """What became of a request to reserve."""

    ACCEPTED = "accepted"
    FAULTED = "faulted"  # the connector (every connector, for 0) is faulted
    OCCUPIED = "occupied"  # in use, reserved for someone else, or needed by a charger-wide one
    REJECTED = "rejected"  # reservations are off here, no such connector, or already expired
    UNAVAILABLE = "unavailable"  # made inoperative


@dataclass(frozen=True, slots=True)
class Spot:
    """What the rules need of one connector."""

    free: bool  # available, idle: no car, no session, no fault
    faulted: bool
    unavailable: bool


def holds(
    reservations: tuple[Reservation, ...], free: dict[int, bool]
) -> dict[int, tuple[Reservation, ...]]:
    """The reservations that hold each connector (empty: anyone may use it)."""
    held = {cid: tuple(r for r in reservations if r.connector_id == cid) for cid in free}
    anywhere = tuple(r for r in reservations if r.connector_id == CHARGE_POINT)
    open_ = [cid for cid, is_free in free.items() if is_free and not held[cid]]
    if anywhere and len(open_) <= len(anywhere):
        for cid in open_:
            held[cid] = anywhere
    return held


def held_by(
    reservations: tuple[Reservation, ...], free: dict[int, bool], connector_id: int
) -> tuple[Reservation, ...]:
    """What holds ``connector_id`` for a tag presented there: the connector counts as free (it
    is only busy with that tag's own authorization)."""
    return holds(reservations, {**free, connector_id: True}).get(connector_id, ())


def admitted(
    reservations: tuple[Reservation, ...],
    free: dict[int, bool],
    connector_id: int,
    id_tag: str,
    group: str | None,
) -> bool:
    held = held_by(reservations, free, connector_id)
    return not held or any(r.admits(id_tag, group) for r in held)


def used_by(
    reservations: tuple[Reservation, ...], connector_id: int, id_tag: str, group: str | None
) -> Reservation | None:
    """The reservation a transaction starting on ``connector_id`` with ``id_tag`` uses."""
    for wanted in (connector_id, CHARGE_POINT):
        for r in reservations:
            if r.connector_id == wanted and r.admits(id_tag, group):
                return r
    return None


def decide(
    request: Reservation,
    reservations: tuple[Reservation, ...],
    spots: dict[int, Spot],
    *,
    charger_available: bool,
    now: float,
) -> ReservationOutcome:
    """Whether ``request`` can be made; one with the same id replaces the old one."""
    others = tuple(r for r in reservations if r.id != request.id)
    if request.expires_at <= now:
        return ReservationOutcome.REJECTED
    anywhere = sum(1 for r in others if r.connector_id == CHARGE_POINT)

    def open_except(excluded: int) -> list[int]:
        return [
            cid
            for cid, spot in spots.items()
            if cid != excluded and spot.free and not any(r.connector_id == cid for r in others)
        ]

    if request.connector_id == CHARGE_POINT:
        if not charger_available:
            return ReservationOutcome.UNAVAILABLE
        if len(open_except(CHARGE_POINT)) > anywhere:
            return ReservationOutcome.ACCEPTED
        if spots and all(s.faulted for s in spots.values()):
            return ReservationOutcome.FAULTED
        if spots and all(s.unavailable for s in spots.values()):
            return ReservationOutcome.UNAVAILABLE
        return ReservationOutcome.OCCUPIED
    spot = spots.get(request.connector_id)
    if spot is None:
        return ReservationOutcome.REJECTED
    if spot.faulted:
        return ReservationOutcome.FAULTED
    if spot.unavailable:
        return ReservationOutcome.UNAVAILABLE
    if not spot.free or any(r.connector_id == request.connector_id for r in others):
        return ReservationOutcome.OCCUPIED
    if anywhere > len(open_except(request.connector_id)):
        return ReservationOutcome.OCCUPIED  # a charger-wide reservation needs this connector
    return ReservationOutcome.ACCEPTED
