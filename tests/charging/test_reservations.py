"""The reservation rules (OCPP 1.6 §3.12, §5.13), table-tested: which connectors a reservation
holds, who it admits, which one a starting transaction uses, and what a request gets."""

import pytest

from evsed.charging.reservations import (
    Reservation,
    ReservationOutcome,
    Spot,
    admitted,
    decide,
    holds,
    used_by,
)

NOW = 1_000.0
FREE = Spot(free=True, faulted=False, unavailable=False)
BUSY = Spot(free=False, faulted=False, unavailable=False)
FAULTED = Spot(free=False, faulted=True, unavailable=False)
OFF = Spot(free=False, faulted=False, unavailable=True)


def res(rid: int, connector: int, tag: str = "A", parent: str | None = None) -> Reservation:
    return Reservation(rid, connector, tag, parent, NOW + 600)


@pytest.mark.parametrize(
    ("reservations", "free", "held"),
    [
        ((), {1: True, 2: True}, {1: False, 2: False}),
        ((res(1, 1),), {1: True, 2: True}, {1: True, 2: False}),
        ((res(1, 1),), {1: False, 2: True}, {1: True, 2: False}),  # its own: held, even busy
        ((res(1, 0),), {1: True, 2: True}, {1: False, 2: False}),  # two open for one
        ((res(1, 0),), {1: False, 2: True}, {1: False, 2: True}),  # the last open one
        ((res(1, 0), res(2, 0)), {1: True, 2: True}, {1: True, 2: True}),
        ((res(1, 0), res(2, 2)), {1: True, 2: True}, {1: True, 2: True}),
        ((res(1, 0),), {1: True}, {1: True}),  # a single connector
    ],
)
def test_which_connectors_are_held(
    reservations: tuple[Reservation, ...], free: dict[int, bool], held: dict[int, bool]
) -> None:
    assert {cid: bool(rs) for cid, rs in holds(reservations, free).items()} == held


@pytest.mark.parametrize(
    ("reservation", "tag", "group", "admits"),
    [
        (res(1, 1, "A"), "A", None, True),
        (res(1, 1, "A"), "B", None, False),
        (res(1, 1, "A", "G"), "B", "G", True),
        (res(1, 1, "A", "G"), "B", "H", False),
        (res(1, 1, "A", None), "B", None, False),  # no group: None never matches
    ],
)
def test_who_a_reservation_admits(
    reservation: Reservation, tag: str, group: str | None, admits: bool
) -> None:
    assert admitted((reservation,), {1: True}, 1, tag, group) is admits


def test_a_tag_presented_at_a_held_connector_counts_it_as_free() -> None:
    """Its own authorization makes the connector busy; that must not free it from a
    charger-wide reservation (single connector) nor hold it wrongly (two connectors)."""
    assert not admitted((res(1, 0),), {1: False}, 1, "B", None)
    assert admitted((res(1, 0),), {1: False, 2: True}, 1, "B", None)


def test_a_transaction_uses_its_connectors_reservation_first() -> None:
    own, anywhere = res(1, 2, "A"), res(2, 0, "A")
    assert used_by((anywhere, own), 2, "A", None) == own
    assert used_by((anywhere, own), 1, "A", None) == anywhere
    assert used_by((anywhere, own), 1, "B", None) is None


@pytest.mark.parametrize(
    ("request_", "existing", "spots", "available", "outcome"),
    [
        (res(1, 1), (), {1: FREE}, True, ReservationOutcome.ACCEPTED),
        (res(1, 1), (), {1: BUSY}, True, ReservationOutcome.OCCUPIED),
        (res(1, 1), (), {1: FAULTED}, True, ReservationOutcome.FAULTED),
        (res(1, 1), (), {1: OFF}, True, ReservationOutcome.UNAVAILABLE),
        (res(1, 3), (), {1: FREE}, True, ReservationOutcome.REJECTED),
        (res(2, 1), (res(1, 1),), {1: FREE}, True, ReservationOutcome.OCCUPIED),
        (res(1, 1, "B"), (res(1, 1),), {1: FREE}, True, ReservationOutcome.ACCEPTED),  # replace
        (res(2, 1), (res(1, 0),), {1: FREE}, True, ReservationOutcome.OCCUPIED),
        (res(2, 1), (res(1, 0),), {1: FREE, 2: FREE}, True, ReservationOutcome.ACCEPTED),
        (res(1, 0), (), {1: FREE}, True, ReservationOutcome.ACCEPTED),
        (res(1, 0), (), {1: FREE}, False, ReservationOutcome.UNAVAILABLE),
        (res(1, 0), (), {1: BUSY, 2: FAULTED}, True, ReservationOutcome.OCCUPIED),
        (res(1, 0), (), {1: FAULTED, 2: FAULTED}, True, ReservationOutcome.FAULTED),
        (res(1, 0), (), {1: OFF, 2: OFF}, True, ReservationOutcome.UNAVAILABLE),
        (res(2, 0), (res(1, 0),), {1: FREE}, True, ReservationOutcome.OCCUPIED),
        (res(2, 0), (res(1, 0),), {1: FREE, 2: FREE}, True, ReservationOutcome.ACCEPTED),
    ],
)
def test_what_a_request_gets(
    request_: Reservation,
    existing: tuple[Reservation, ...],
    spots: dict[int, Spot],
    available: bool,
    outcome: ReservationOutcome,
) -> None:
    assert decide(request_, existing, spots, charger_available=available, now=NOW) is outcome


def test_a_request_already_expired_is_rejected() -> None:
    late = Reservation(1, 1, "A", None, NOW - 1)
    assert (
        decide(late, (), {1: FREE}, charger_available=True, now=NOW) is ReservationOutcome.REJECTED
    )
