"""Reservation profile of OCPP 1.6 (§3.12): ReserveNow (§5.13) and CancelReservation (§5.1).

The rules (which connector a reservation holds, who may use it, when it ends) are the
charger's (:mod:`evsed.charging.reservations`, :mod:`evsed.reservations`); here they are read
from and answered in 1.6 terms:

- ReserveNow for connector 0 needs ReserveConnectorZeroSupported (§9.3): Rejected otherwise.
- An expiryDate already past: Rejected. A reservationId already in force: the reservation is
  replaced (§5.13). The reservation is committed before the answer.
- Faulted / Occupied / Unavailable as the connector (or, for 0, every connector) is.
- CancelReservation: Accepted for a reservation in force, Rejected for an unknown id (§5.1).
- The transaction that uses a reservation carries its reservationId in StartTransaction.req.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from evsed.charging.reservations import CHARGE_POINT, Reservation, ReservationOutcome
from evsed.clock import parse_iso
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.port import Charger

log = logging.getLogger(__name__)

RESERVE_CONNECTOR_ZERO = "ReserveConnectorZeroSupported"

# ReservationStatus (§7.38) of each outcome.
STATUS: dict[ReservationOutcome, str] = {
    ReservationOutcome.ACCEPTED: "Accepted",
    ReservationOutcome.FAULTED: "Faulted",
    ReservationOutcome.OCCUPIED: "Occupied",
    ReservationOutcome.REJECTED: "Rejected",
    ReservationOutcome.UNAVAILABLE: "Unavailable",
}


class V16Reservations:
    """The charge point's side of ReserveNow and CancelReservation."""

    def __init__(self, charger: Charger, keys: ConfigurationKeys) -> None:
        self._charger = charger
        self._keys = keys

    async def reserve_now(
        self,
        reservation_id: int,
        connector_id: int,
        id_tag: str,
        expiry_date: str,
        parent_id_tag: str | None,
    ) -> str:
        if connector_id == CHARGE_POINT and not self._keys.get_bool(RESERVE_CONNECTOR_ZERO):
            log.info("ReserveNow %d for connector 0: not supported", reservation_id)
            return "Rejected"
        try:
            expires_at = parse_iso(expiry_date).timestamp()
        except ValueError:
            log.info("ReserveNow %d: unreadable expiryDate %r", reservation_id, expiry_date)
            return "Rejected"
        reservation = Reservation(reservation_id, connector_id, id_tag, parent_id_tag, expires_at)
        outcome = await self._charger.reserve(reservation)
        log.info(
            "ReserveNow %d for connector %d: %s",
            reservation_id,
            connector_id,
            outcome,
            extra={"connector": connector_id},
        )
        return STATUS[outcome]

    async def cancel(self, reservation_id: int) -> str:
        cancelled = await self._charger.cancel_reservation(reservation_id)
        return "Accepted" if cancelled else "Rejected"


class ReservationHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _reservations: V16Reservations

    @on(Action.reserve_now)
    async def on_reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
        **_: Any,
    ) -> call_result.ReserveNow:
        status = await self._reservations.reserve_now(
            reservation_id, connector_id, id_tag, expiry_date, parent_id_tag
        )
        return call_result.ReserveNow(status=status)

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(
        self, reservation_id: int, **_: Any
    ) -> call_result.CancelReservation:
        return call_result.CancelReservation(status=await self._reservations.cancel(reservation_id))
