"""OCPP 1.6 Smart Charging (§3.13, §5.5, §5.7, §5.16), one test per OCA 1.6 test case, plus
connector 0, watts, recurring schedules, persistence and the bugs other stacks' users
reported. The daemon runs as a process against the development CSMS on simulated hardware;
what the car is offered is read from the duty cycle the simulated MCU received. Every frame
the charger sends passes the independent schema check (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from oca_support import TAG, answer_to, booted, charging, mark, since, wait_status
from tests_support import wait_offered

from evsed_devtools.harness import DevCsms, Evsed, wait_for

OTHER = "PARENT01"
INSTALLATION_A = 16.0  # the connector's max_current_a in the test config


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def profile(
    profile_id: int,
    purpose: str,
    periods: list[tuple[int, float]],
    *,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = None,
    duration: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A csChargingProfiles: Absolute from now unless told otherwise."""
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": limit} for s, limit in periods],
    }
    if kind != "Relative":
        schedule["startSchedule"] = _iso(start or _now())
    if duration is not None:
        schedule["duration"] = duration
    return {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
        **extra,
    }


def set_profile(csms: DevCsms, connector: int, body: dict[str, Any]) -> str:
    answer = csms.result(
        "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": body}
    )
    status: str = answer["status"]
    return status


def clear(csms: DevCsms, **criteria: Any) -> str:
    status: str = csms.result("ClearChargingProfile", criteria)["status"]
    return status


def composite(
    csms: DevCsms, connector: int, duration: int, unit: str | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {"connectorId": connector, "duration": duration}
    if unit is not None:
        request["chargingRateUnit"] = unit
    answer = csms.result("GetCompositeSchedule", request)
    if answer["status"] == "Accepted":
        periods = answer["chargingSchedule"]["chargingSchedulePeriod"]
        starts = [p["startPeriod"] for p in periods]
        # Each period once, in order, and no two adjacent ones with the same limit.
        assert starts == sorted(set(starts)) and starts[0] == 0, periods
        limits = [p["limit"] for p in periods]
        assert all(a != b for a, b in pairwise(limits)), periods
    return answer


def periods_of(answer: dict[str, Any]) -> list[tuple[int, float]]:
    return [
        (p["startPeriod"], p["limit"]) for p in answer["chargingSchedule"]["chargingSchedulePeriod"]
    ]


def close_to(
    got: list[tuple[int, float]], expected: list[tuple[int, float]], slack: int = 2
) -> bool:
    """Same limits, period starts within ``slack`` s (the request left a moment after the
    profiles' startSchedule)."""
    return len(got) == len(expected) and all(
        g[1] == e[1] and abs(g[0] - e[0]) <= slack for g, e in zip(got, expected, strict=True)
    )


# -- the OCA test cases -------------------------------------------------------------------------


def test_tc_056_tx_default_profile_limits_new_transactions(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(
        start_evsed,
        csms,
        keys={"MeterValuesSampledData": "Current.Offered", "MeterValueSampleInterval": "1"},
    )
    assert set_profile(csms, 1, profile(1, "TxDefaultProfile", [(0, 10.0)], stack=1)) == "Accepted"
    transaction_id = charging(evsed, csms)
    wait_offered(evsed, 10.0)
    assert evsed.connector()["limit"] == {"amps": 10.0, "source": "charging profile"}
    assert periods_of(composite(csms, 1, 300)) == [(0, 10.0)]

    # Current.Offered in the transaction's MeterValues is what the PWM offers: 10 A.
    def offered_values() -> list[float]:
        return [
            float(v["value"])
            for m in csms.calls("CP01", "MeterValues")
            if m["payload"].get("transactionId") == transaction_id
            for mv in m["payload"]["meterValue"]
            for v in mv["sampledValue"]
            if v.get("measurand") == "Current.Offered"
        ]

    wait_for(lambda: offered_values(), what="Current.Offered sampled")
    assert offered_values()[-1] == 10.0


def test_tc_057_tx_profile_for_the_running_transaction(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    wait_offered(evsed, INSTALLATION_A)
    now = _now()
    body = profile(
        7,
        "TxProfile",
        [(0, 8.0)],
        duration=3600,
        transactionId=transaction_id,
        validFrom=_iso(now - timedelta(minutes=1)),
        validTo=_iso(now + timedelta(hours=1)),
    )
    assert set_profile(csms, 1, body) == "Accepted"
    wait_offered(evsed, 8.0, timeout=2.0)  # lowering is at once
    # The profile is the transaction's: it goes when the transaction ends (§3.13.1).
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    csms.wait_for_calls("StopTransaction")
    wait_for(lambda: periods_of(composite(csms, 1, 60)) == [(0, INSTALLATION_A)], what="gone")
    assert clear(csms, id=7) == "Unknown"


def test_tc_058_1_tx_profile_without_a_transaction_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    body = profile(3, "TxProfile", [(0, 8.0)], transactionId=123)
    assert set_profile(csms, 1, body) == "Rejected"
    assert periods_of(composite(csms, 1, 60)) == [(0, INSTALLATION_A)]


def test_tc_058_2_tx_profile_for_another_transaction_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    """Also the reported bug "a TxProfile accepted for a transactionId that is not running"."""
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    body = profile(3, "TxProfile", [(0, 8.0)], transactionId=transaction_id + 1000)
    assert set_profile(csms, 1, body) == "Rejected"
    assert evsed.connector()["limit"]["source"] != "charging profile"
    wait_offered(evsed, INSTALLATION_A)


def test_tc_059_remote_start_with_a_tx_profile(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    evsed.sim("plug")
    body = profile(11, "TxProfile", [(0, 6.0), (20, 12.0)], kind="Relative")
    answer = csms.result(
        "RemoteStartTransaction", {"idTag": TAG, "connectorId": 1, "chargingProfile": body}
    )
    assert answer == {"status": "Accepted"}
    evsed.sim("ev-state", "C")
    start = csms.wait_for_calls("StartTransaction")[-1]
    wait_status(csms, "Charging", start["i"])
    wait_offered(evsed, 6.0)
    sent = datetime.now(UTC)
    reply = composite(csms, 1, 120, "A")
    assert reply["status"] == "Accepted" and reply["connectorId"] == 1
    schedule = reply["chargingSchedule"]
    assert schedule["duration"] == 120 and schedule["chargingRateUnit"] == "A"
    begun = datetime.fromisoformat(reply["scheduleStart"].replace("Z", "+00:00"))
    assert abs((begun - sent).total_seconds()) < 5
    # Relative to the start of the transaction: 6 A for 20 s, then 12 A.
    got = periods_of(reply)
    assert got[0] == (0, 6.0) and got[1][1] == 12.0 and 5 <= got[1][0] <= 20
    assert answer_to(csms, start)["transactionId"] > 0


def test_tc_060_remote_start_with_another_purpose_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    evsed.sim("plug")
    for purpose in ("TxDefaultProfile", "ChargePointMaxProfile"):
        body = profile(12, purpose, [(0, 6.0)])
        answer = csms.result(
            "RemoteStartTransaction", {"idTag": TAG, "connectorId": 1, "chargingProfile": body}
        )
        assert answer == {"status": "Rejected"}, purpose
    assert evsed.connector()["id_tag"] is None
    assert periods_of(composite(csms, 1, 60)) == [(0, INSTALLATION_A)]
    assert not csms.calls("CP01", "StartTransaction")


def test_tc_066_composite_of_three_purposes(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    start = _now()
    assert (
        set_profile(
            csms, 0, profile(1, "ChargePointMaxProfile", [(0, 12.0)], start=start, duration=86400)
        )
        == "Accepted"
    )
    assert (
        set_profile(
            csms,
            1,
            profile(2, "TxDefaultProfile", [(0, 6.0), (100, 14.0)], start=start, duration=400),
        )
        == "Accepted"
    )
    tx = profile(
        3,
        "TxProfile",
        [(0, 8.0), (50, 11.0), (140, 16.0)],
        start=start,
        duration=260,
        transactionId=transaction_id,
    )
    assert set_profile(csms, 1, tx) == "Accepted"
    # 0-50 the transaction's 8 A; 50-140 its 11 A; from 140 the charge point maximum of 12 A
    # (the transaction's 16 A, then from 260 the default's 14 A, both above it: one period).
    got = periods_of(composite(csms, 1, 400))
    assert close_to(got, [(0, 8.0), (50, 11.0), (140, 12.0)]), got
    wait_offered(evsed, 8.0)


def test_tc_067_clear_charging_profiles(csms: DevCsms, start_evsed: Callable[..., Evsed]) -> None:
    booted(start_evsed, csms)
    start = _now()
    stepped = profile(
        1,
        "TxDefaultProfile",
        [(0, 6.0), (60, 8.0), (200, 10.0)],
        stack=1,
        start=start,
        duration=400,
    )
    assert set_profile(csms, 1, stepped) == "Accepted"
    assert (
        set_profile(
            csms, 1, profile(2, "TxDefaultProfile", [(0, 7.0)], stack=2, start=start, duration=30)
        )
        == "Accepted"
    )
    assert (
        set_profile(csms, 0, profile(3, "ChargePointMaxProfile", [(0, 9.0)], start=start))
        == "Accepted"
    )
    assert close_to(
        periods_of(composite(csms, 1, 400)), [(0, 7.0), (30, 6.0), (60, 8.0), (200, 9.0)]
    )

    assert clear(csms, id=2) == "Accepted"  # by id
    assert close_to(periods_of(composite(csms, 1, 400)), [(0, 6.0), (60, 8.0), (200, 9.0)])
    # By criteria: all given must match.
    assert (
        clear(csms, connectorId=1, chargingProfilePurpose="TxDefaultProfile", stackLevel=5)
        == "Unknown"
    )
    assert (
        clear(csms, connectorId=1, chargingProfilePurpose="TxDefaultProfile", stackLevel=1)
        == "Accepted"
    )
    assert periods_of(composite(csms, 1, 400)) == [(0, 9.0)]
    assert clear(csms) == "Accepted"  # everything left
    assert periods_of(composite(csms, 1, 400)) == [(0, INSTALLATION_A)]
    assert clear(csms) == "Unknown"


def test_tc_072_stacked_profiles_higher_level_prevails_while_valid(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    start = _now()
    assert (
        set_profile(csms, 1, profile(1, "TxDefaultProfile", [(0, 10.0)], stack=1, start=start))
        == "Accepted"
    )
    assert (
        set_profile(
            csms, 1, profile(2, "TxDefaultProfile", [(0, 6.0)], stack=2, start=start, duration=10)
        )
        == "Accepted"
    )
    assert close_to(periods_of(composite(csms, 1, 60)), [(0, 6.0), (10, 10.0)])
    charging(evsed, csms)
    wait_offered(evsed, 6.0)
    # When the higher level's 10 s are over, the lower one applies (raised under the 5 s rule).
    wait_offered(evsed, 10.0, timeout=20.0)


def test_a_profile_with_the_same_id_or_purpose_and_stack_level_replaces(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    assert set_profile(csms, 1, profile(1, "TxDefaultProfile", [(0, 10.0)], stack=1)) == "Accepted"
    # The same id: replaced, wherever it was.
    assert set_profile(csms, 1, profile(1, "TxDefaultProfile", [(0, 9.0)], stack=3)) == "Accepted"
    assert periods_of(composite(csms, 1, 60)) == [(0, 9.0)]
    # Another id, the same connector, purpose and stack level: replaced too (§3.13.2).
    assert set_profile(csms, 1, profile(2, "TxDefaultProfile", [(0, 8.0)], stack=3)) == "Accepted"
    assert periods_of(composite(csms, 1, 60)) == [(0, 8.0)]
    assert clear(csms, id=1) == "Unknown"
    assert clear(csms, id=2) == "Accepted"
    assert periods_of(composite(csms, 1, 60)) == [(0, INSTALLATION_A)]


# -- connector 0, units, recurrence -----------------------------------------------------------


def _twin(start_evsed: Callable[..., Evsed], csms: DevCsms) -> Evsed:
    evsed = start_evsed(csms.ws_url, connectors=2)
    evsed.wait_registered()
    wait_for(
        lambda: (
            len({m["payload"]["connectorId"] for m in csms.calls("CP01", "StatusNotification")})
            == 3
        ),
        what="3 statuses",
    )
    return evsed


def test_charge_point_max_profile_caps_the_sum_over_two_charging_connectors(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    evsed.charge(TAG, connector=1)
    evsed.charge(OTHER, connector=2)
    wait_offered(evsed, INSTALLATION_A, 1)
    wait_offered(evsed, INSTALLATION_A, 2)
    assert set_profile(csms, 0, profile(1, "ChargePointMaxProfile", [(0, 20.0)])) == "Accepted"
    wait_offered(evsed, 10.0, 1, timeout=2.0)
    wait_offered(evsed, 10.0, 2, timeout=2.0)
    assert {c["limit"]["source"] for c in evsed.status()["connectors"]} == {"charging profile"}
    # Connector 0 is the whole charge point: what all connectors together may draw.
    whole = composite(csms, 0, 60)
    assert whole["connectorId"] == 0 and periods_of(whole) == [(0, 20.0)]
    assert periods_of(composite(csms, 1, 60)) == [(0, INSTALLATION_A)]
    # One car leaves: the other gets what the maximum allows, up to its installation.
    evsed.sim("ev-state", "B", connector=2)
    evsed.sim("unplug", connector=2)
    wait_offered(evsed, INSTALLATION_A, 1, timeout=15.0)


def test_tx_default_on_connector_0_applies_to_every_connector_and_purposes_are_checked(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = _twin(start_evsed, csms)
    assert set_profile(csms, 0, profile(1, "TxDefaultProfile", [(0, 12.0)])) == "Accepted"
    # A connector's own default wins over the connector-0 one at the same stack level.
    assert set_profile(csms, 2, profile(2, "TxDefaultProfile", [(0, 7.0)])) == "Accepted"
    assert periods_of(composite(csms, 1, 60)) == [(0, 12.0)]
    assert periods_of(composite(csms, 2, 60)) == [(0, 7.0)]
    assert periods_of(composite(csms, 0, 60)) == [(0, 19.0)]
    evsed.charge(TAG, connector=1)
    wait_offered(evsed, 12.0, 1)
    # A maximum profile is for connector 0; a transaction profile for a connector.
    assert set_profile(csms, 1, profile(3, "ChargePointMaxProfile", [(0, 10.0)])) == "Rejected"
    assert set_profile(csms, 0, profile(4, "TxProfile", [(0, 10.0)])) == "Rejected"
    assert set_profile(csms, 3, profile(5, "TxDefaultProfile", [(0, 10.0)])) == "Rejected"
    assert csms.result("GetCompositeSchedule", {"connectorId": 3, "duration": 60}) == {
        "status": "Rejected"
    }


@pytest.mark.parametrize(("phases", "watts", "amps"), [(3, 6900.0, 10.0), (1, 2300.0, 10.0)])
def test_a_profile_in_watts_becomes_amps_through_the_phases_and_voltage(
    csms: DevCsms, start_evsed: Callable[..., Evsed], phases: int, watts: float, amps: float
) -> None:
    evsed = booted(start_evsed, csms, connector={"phases": phases})
    assert (
        set_profile(csms, 1, profile(1, "TxDefaultProfile", [(0, watts)], unit="W")) == "Accepted"
    )
    assert periods_of(composite(csms, 1, 60, "A")) == [(0, amps)]
    in_watts = composite(csms, 1, 60, "W")
    assert in_watts["chargingSchedule"]["chargingRateUnit"] == "W"
    assert periods_of(in_watts) == [(0, watts)]
    charging(evsed, csms)
    wait_offered(evsed, amps)


def test_a_daily_recurring_profile_follows_the_clock(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    # Began yesterday, 5 s before this time of day: 8 A for 12 s, then 12 A, every day.
    began = _now() - timedelta(days=1, seconds=5)
    body = profile(
        1,
        "TxDefaultProfile",
        [(0, 8.0), (12, 12.0)],
        kind="Recurring",
        start=began,
        recurrencyKind="Daily",
    )
    assert set_profile(csms, 1, body) == "Accepted"
    assert close_to(periods_of(composite(csms, 1, 60)), [(0, 8.0), (7, 12.0)])
    # A day of it: 8 A again when the next day's occurrence begins.
    day = periods_of(composite(csms, 1, 86400))
    assert close_to(day, [(0, 8.0), (7, 12.0), (86395, 8.0)]), day
    charging(evsed, csms)
    wait_offered(evsed, 8.0)
    wait_offered(evsed, 12.0, timeout=20.0)


def test_profiles_persist_across_a_restart(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    assert set_profile(csms, 0, profile(1, "ChargePointMaxProfile", [(0, 11.0)])) == "Accepted"
    assert (
        set_profile(csms, 1, profile(2, "TxDefaultProfile", [(0, 9.0)], kind="Relative"))
        == "Accepted"
    )
    assert evsed.stop() == 0
    again = start_evsed(csms.ws_url)
    again.wait_registered()
    assert periods_of(composite(csms, 1, 60)) == [(0, 9.0)]
    assert periods_of(composite(csms, 0, 60)) == [(0, 9.0)]
    charging(again, csms)
    wait_offered(again, 9.0)
    assert clear(csms, chargingProfilePurpose="ChargePointMaxProfile") == "Accepted"


# -- reported bugs -------------------------------------------------------------------------------


def test_a_period_starting_inside_the_window_after_its_start_is_reported(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    later = _now() + timedelta(seconds=30)
    assert (
        set_profile(csms, 1, profile(1, "TxDefaultProfile", [(0, 8.0)], start=later, duration=60))
        == "Accepted"
    )
    got = periods_of(composite(csms, 1, 300))
    assert close_to(got, [(0, INSTALLATION_A), (30, 8.0), (90, INSTALLATION_A)]), got


def test_duration_0_reports_the_active_charge_point_maximum(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    assert set_profile(csms, 0, profile(1, "ChargePointMaxProfile", [(0, 10.0)])) == "Accepted"
    reply = composite(csms, 1, 0)
    assert reply["chargingSchedule"]["duration"] == 0
    assert periods_of(reply) == [(0, 10.0)]
    assert periods_of(composite(csms, 0, 0)) == [(0, 10.0)]


def test_charging_schedule_max_periods_is_enforced(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    keys = csms.result("GetConfiguration", {"key": ["ChargingScheduleMaxPeriods"]})
    most = int(keys["configurationKey"][0]["value"])
    too_many = [(60 * i, 6.0 + (i % 2)) for i in range(most + 1)]
    assert set_profile(csms, 1, profile(1, "TxDefaultProfile", too_many)) == "Rejected"
    assert set_profile(csms, 1, profile(1, "TxDefaultProfile", too_many[:most])) == "Accepted"


def test_max_charging_profiles_installed_is_counted(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    booted(start_evsed, csms)
    keys = csms.result(
        "GetConfiguration", {"key": ["MaxChargingProfilesInstalled", "ChargeProfileMaxStackLevel"]}
    )
    values = {k["key"]: int(k["value"]) for k in keys["configurationKey"]}
    most, top = values["MaxChargingProfilesInstalled"], values["ChargeProfileMaxStackLevel"]
    slots = [(connector, level) for connector in (0, 1) for level in range(top + 1)]
    assert len(slots) >= most
    for number, (connector, level) in enumerate(slots[:most], start=1):
        body = profile(number, "TxDefaultProfile", [(0, 10.0)], stack=level)
        assert set_profile(csms, connector, body) == "Accepted", number
    extra = slots[most] if len(slots) > most else None
    if extra is not None:
        body = profile(most + 1, "TxDefaultProfile", [(0, 10.0)], stack=extra[1])
        assert set_profile(csms, extra[0], body) == "Rejected"
    # Replacing one that is installed still works when full.
    assert set_profile(csms, 0, profile(1, "TxDefaultProfile", [(0, 9.0)], stack=0)) == "Accepted"
    # A stack level above the maximum is refused.
    assert clear(csms) == "Accepted"
    assert (
        set_profile(csms, 1, profile(99, "TxDefaultProfile", [(0, 9.0)], stack=top + 1))
        == "Rejected"
    )


def test_a_tx_profile_for_a_transaction_that_ended_is_rejected(
    csms: DevCsms, start_evsed: Callable[..., Evsed]
) -> None:
    evsed = booted(start_evsed, csms)
    transaction_id = charging(evsed, csms)
    evsed.sim("ev-state", "B")
    evsed.sim("unplug")
    csms.wait_for_calls("StopTransaction")
    start = mark(csms)
    evsed.sim("plug")
    wait_status(csms, "Preparing", start)
    body = profile(5, "TxProfile", [(0, 8.0)], transactionId=transaction_id)
    assert set_profile(csms, 1, body) == "Rejected"
    assert not [m for m in since(csms, start) if m["action"] == "StartTransaction"]
