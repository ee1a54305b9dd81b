"""OCA OCPP 1.6 Reservation test cases (TC_046 - TC_053): ReserveNow, CancelReservation, expiry
and parentIdTag (§3.12, §5.13, §5.1), the daemon as a process against the dev CSMS.

TC_048_1, TC_048_3, TC_049 are written from the Central System variant of the case text (the
Charge Point one was not found); TC_048_4, TC_050_1, TC_050_2, TC_050_4, TC_053_1 and TC_053_2
from the spec, as the numbering suggests (048: a connector, 050: the charge point; _1 Faulted,
_2 Occupied, _3 Unavailable, _4 Rejected; 053: a card of the same parentIdTag, on a connector
and on the charge point).
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from oca_support import OTHER_TAG, TAG, booted, labels, mark, since, wait_status

from evsed_devtools.harness import DevCsms, Evsed, wait_for

GROUP = "GROUP01"
MEMBER = "MEMBER01"  # another card of GROUP


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _reserve(
    csms: DevCsms,
    reservation_id: int = 7,
    connector_id: int = 1,
    id_tag: str = TAG,
    seconds: float = 600,
    parent: str | None = None,
) -> str:
    payload: dict[str, Any] = {
        "connectorId": connector_id,
        "expiryDate": _in(seconds),
        "idTag": id_tag,
        "reservationId": reservation_id,
    }
    if parent is not None:
        payload["parentIdTag"] = parent
    status: str = csms.result("ReserveNow", payload)["status"]
    return status


def _starts(csms: DevCsms, start: int) -> list[dict[str, Any]]:
    return [m["payload"] for m in since(csms, start) if m["action"] == "StartTransaction"]


def _refused_locally(evsed: Evsed, csms: DevCsms, tag: str, connector: int = 1) -> None:
    """``tag`` is presented at a reserved connector: refused there, no Authorize.req."""
    start = mark(csms)
    evsed.sim("swipe", tag, connector=connector)
    wait_for(lambda: f"connector {connector}: reserved for another" in evsed.log(), what="refusal")
    assert "Authorize" not in labels(since(csms, start))
    assert evsed.connector(connector)["id_tag"] is None


def test_tc_046_1_reservation_of_a_connector_local_start(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _reserve(csms) == "Accepted"
    wait_status(csms, "Reserved", start)
    _refused_locally(evsed, csms, OTHER_TAG)
    evsed.sim("swipe", TAG)
    wait_status(csms, "Preparing", start)
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Charging", start)
    [started] = _starts(csms, start)
    assert (started["idTag"], started["reservationId"]) == (TAG, 7)
    assert labels(since(csms, start), connector=1) == [
        "Status:Reserved",
        "Authorize",
        "Status:Preparing",
        "StartTransaction",
        "Status:SuspendedEV",
        "Status:Charging",
    ]
    assert evsed.status()["reservations"] == []


def test_tc_046_2_reservation_of_a_connector_remote_start(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _reserve(csms) == "Accepted"
    wait_status(csms, "Reserved", start)
    other = {"connectorId": 1, "idTag": OTHER_TAG}
    assert csms.result("RemoteStartTransaction", other) == {"status": "Rejected"}
    mine = {"connectorId": 1, "idTag": TAG}
    assert csms.result("RemoteStartTransaction", mine) == {"status": "Accepted"}
    evsed.sim("plug")
    evsed.sim("ev-state", "C")
    wait_status(csms, "Charging", start)
    [started] = _starts(csms, start)
    assert (started["idTag"], started["reservationId"]) == (TAG, 7)


def test_tc_047_reservation_of_a_connector_expires(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _reserve(csms, seconds=2) == "Accepted"
    wait_status(csms, "Reserved", start)
    expired = mark(csms)
    wait_status(csms, "Available", expired)
    assert "reservation 7 expired" in evsed.log()
    # Another card may charge now, without the reservation.
    evsed.charge(OTHER_TAG)
    [started] = _starts(csms, start)
    assert started["idTag"] == OTHER_TAG and "reservationId" not in started


def test_tc_048_1_reservation_of_a_connector_faulted(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    evsed.sim("fault", "overtemp")
    wait_status(csms, "Faulted", start)
    assert _reserve(csms) == "Faulted"
    evsed.sim("clear", "overtemp")
    wait_status(csms, "Available", start)
    assert evsed.status()["reservations"] == []


def test_tc_048_2_reservation_of_a_connector_occupied(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    evsed.sim("plug")
    wait_status(csms, "Preparing", start)
    assert _reserve(csms) == "Occupied"
    # The car's session goes on as normal.
    evsed.sim("swipe", TAG)
    csms.wait_for_calls("StartTransaction")


def test_tc_048_3_reservation_of_a_connector_unavailable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    inoperative = {"connectorId": 1, "type": "Inoperative"}
    assert csms.result("ChangeAvailability", inoperative) == {"status": "Accepted"}
    wait_status(csms, "Unavailable", start)
    assert _reserve(csms) == "Unavailable"


def test_tc_048_4_reservation_of_a_connector_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    """A charge point configured not to accept reservations answers Rejected (§7.38); so does
    one asked for a connector it does not have, or with an expiry date already past."""
    booted(start_evsed, csms, reservations={"enabled": False})
    assert _reserve(csms) == "Rejected"


def test_reservation_of_a_connector_that_does_not_exist_or_already_expired_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    assert _reserve(csms, connector_id=5) == "Rejected"
    assert _reserve(csms, seconds=-60) == "Rejected"
    assert evsed.status()["reservations"] == []


def test_tc_049_reservation_of_the_charge_point(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _reserve(csms, connector_id=0) == "Accepted"
    # The only connector stays available for the reservation: Reserved.
    wait_status(csms, "Reserved", start)
    _refused_locally(evsed, csms, OTHER_TAG)
    evsed.charge(TAG)
    [started] = _starts(csms, start)
    assert (started["connectorId"], started["reservationId"]) == (1, 7)


def test_tc_050_1_reservation_of_the_charge_point_faulted(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    evsed.sim("fault", "overtemp")
    wait_status(csms, "Faulted", start)
    assert _reserve(csms, connector_id=0) == "Faulted"


def test_tc_050_2_reservation_of_the_charge_point_occupied(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    evsed.charge(TAG)
    assert _reserve(csms, connector_id=0) == "Occupied"


def test_tc_050_3_reservation_of_the_charge_point_unavailable(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    start = mark(csms)
    inoperative = {"connectorId": 0, "type": "Inoperative"}
    assert csms.result("ChangeAvailability", inoperative) == {"status": "Accepted"}
    wait_status(csms, "Unavailable", start, connector=0)
    assert _reserve(csms, connector_id=0) == "Unavailable"


def test_tc_050_4_reservation_of_the_charge_point_rejected_without_connector_zero_support(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms, reservations={"connector_zero": False})
    key = csms.result("GetConfiguration", {"key": ["ReserveConnectorZeroSupported"]})
    assert key["configurationKey"][0]["value"] == "false"
    assert _reserve(csms, connector_id=0) == "Rejected"
    assert _reserve(csms, connector_id=1) == "Accepted"


def test_tc_051_cancel_reservation(csms: DevCsms, start_evsed: Callable[..., Evsed]) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _reserve(csms) == "Accepted"
    wait_status(csms, "Reserved", start)
    cancelled = mark(csms)
    assert csms.result("CancelReservation", {"reservationId": 7}) == {"status": "Accepted"}
    wait_status(csms, "Available", cancelled)
    evsed.charge(OTHER_TAG)
    [started] = _starts(csms, start)
    assert started["idTag"] == OTHER_TAG and "reservationId" not in started


def test_tc_052_cancel_reservation_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = mark(csms)
    assert _reserve(csms) == "Accepted"
    wait_status(csms, "Reserved", start)
    assert csms.result("CancelReservation", {"reservationId": 8}) == {"status": "Rejected"}
    assert [r["id"] for r in evsed.status()["reservations"]] == [7]
    assert evsed.connector()["ocpp_status"] == "Reserved"


def test_tc_053_1_use_a_reserved_connector_with_parent_id_tag(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    csms.set_id_tag(MEMBER, "Accepted", parent_id_tag=GROUP)
    csms.set_id_tag(OTHER_TAG, "Accepted", parent_id_tag="ELSEWHERE")
    start = mark(csms)
    assert _reserve(csms, parent=GROUP) == "Accepted"
    wait_status(csms, "Reserved", start)
    # A card of another group is authorized by the CSMS, and still refused here.
    evsed.sim("swipe", OTHER_TAG)
    wait_for(lambda: "reserved for another group" in evsed.log(), what="refusal")
    assert evsed.connector()["id_tag"] is None
    evsed.charge(MEMBER)
    [started] = _starts(csms, start)
    assert (started["idTag"], started["reservationId"]) == (MEMBER, 7)


def test_tc_053_2_use_a_reserved_charge_point_with_parent_id_tag(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    csms.set_id_tag(MEMBER, "Accepted", parent_id_tag=GROUP)
    start = mark(csms)
    assert _reserve(csms, connector_id=0, parent=GROUP) == "Accepted"
    wait_status(csms, "Reserved", start)
    evsed.charge(MEMBER)
    [started] = _starts(csms, start)
    assert (started["idTag"], started["reservationId"]) == (MEMBER, 7)


def test_a_reservation_is_kept_across_a_restart(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    assert _reserve(csms) == "Accepted"
    assert evsed.stop() == 0
    again = Evsed.launch(evsed.config, evsed.log_path)
    try:
        again.wait_registered()
        wait_for(lambda: again.connector()["ocpp_status"] == "Reserved", what="Reserved again")
        assert [r["id"] for r in again.status()["reservations"]] == [7]
        _refused_locally(again, csms, OTHER_TAG)
    finally:
        assert again.stop() == 0


def test_twin_connectors_a_charge_point_reservation_keeps_one_connector_free(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = start_evsed(csms.ws_url, connectors=2)
    evsed.wait_registered()
    wait_status(csms, "Available", connector=2)
    start = mark(csms)
    assert _reserve(csms, connector_id=0) == "Accepted"
    # Two free connectors for one reservation: either may still be used by anyone.
    assert [evsed.connector(c)["ocpp_status"] for c in (1, 2)] == ["Available", "Available"]
    evsed.charge(OTHER_TAG, connector=1)
    # Connector 2 is now the one left for the reservation.
    wait_status(csms, "Reserved", start, connector=2)
    assert _reserve(csms, reservation_id=8, connector_id=2) == "Occupied"
    _refused_locally(evsed, csms, "SOMEONE", connector=2)
    evsed.charge(TAG, connector=2)
    starts = _starts(csms, start)
    assert [(s["connectorId"], s.get("reservationId")) for s in starts] == [(1, None), (2, 7)]
