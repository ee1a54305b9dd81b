"""The composite schedule, table-driven (OCPP 1.6 §3.13, §5.7, §5.16, §7.13-7.15).

Times are POSIX seconds; T0 is a Monday, 2030-01-07 00:00 UTC.
"""

from __future__ import annotations

import dataclasses

import pytest

from evsed.charging.schedules import (
    DAY_S,
    WEEK_S,
    CompositePeriod,
    Electrical,
    Kind,
    Period,
    Profile,
    Purpose,
    Recurrency,
    Schedule,
    Situation,
    Unit,
    composite,
    limit_at,
    next_change,
)

T0 = 1_894_060_800.0  # Monday 2030-01-07T00:00:00Z
HOUR = 3600


def sched(
    *periods: tuple[int, float],
    start: float | None = T0,
    duration: int | None = None,
    unit: Unit = Unit.AMPS,
    phases: int | None = None,
) -> Schedule:
    return Schedule(unit, tuple(Period(s, lim, phases) for s, lim in periods), duration, start)


def prof(
    pid: int,
    purpose: Purpose,
    schedule: Schedule,
    *,
    connector: int = 1,
    stack: int = 0,
    kind: Kind = Kind.ABSOLUTE,
    recurrency: Recurrency | None = None,
    valid_from: float | None = None,
    valid_to: float | None = None,
) -> Profile:
    return Profile(pid, connector, purpose, stack, kind, schedule, recurrency, valid_from, valid_to)


ONE = Situation(1, cap_a=32.0)
CHARGING = Situation(1, cap_a=32.0, transaction_start=T0 + 100)


def periods(*items: tuple[int, float]) -> list[CompositePeriod]:
    return [CompositePeriod(s, lim, 3) for s, lim in items]


CASES = [
    pytest.param([], ONE, T0, 600, periods((0, 32.0)), id="no profile: the hardware limit"),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6), (60, 8), (200, 10), duration=400))],
        ONE,
        T0,
        500,
        periods((0, 6), (60, 8), (200, 10), (400, 32.0)),
        id="periods in order, then back to the hardware limit after the duration",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6), (60, 8), (200, 10), duration=400))],
        ONE,
        T0 + 100,
        0,
        periods((0, 8)),
        id="duration 0: one period, the limit now",
    ),
    pytest.param(
        # Anchor bug: a period that starts inside the window, after its start, is kept.
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6), (300, 10), duration=600))],
        ONE,
        T0 + 120,
        400,
        periods((0, 6), (180, 10)),
        id="a period starting inside the window is reported",
    ),
    pytest.param(
        [
            prof(1, Purpose.TX_DEFAULT, sched((0, 16), duration=400)),
            prof(2, Purpose.TX_DEFAULT, sched((0, 10), duration=150), stack=1),
        ],
        ONE,
        T0,
        400,
        periods((0, 10), (150, 16)),
        id="stacking: the higher level while it lasts, then the lower (OCA TC_072)",
    ),
    pytest.param(
        [
            prof(1, Purpose.CHARGER_MAX, sched((0, 10), duration=86_400), connector=0),
            prof(2, Purpose.TX_DEFAULT, sched((0, 6), (60, 8), (200, 12), duration=400)),
        ],
        ONE,
        T0,
        400,
        periods((0, 6), (60, 8), (200, 10)),
        id="the minimum of the charger maximum and the default (OCA TC_066)",
    ),
    pytest.param(
        [prof(1, Purpose.CHARGER_MAX, sched((0, 10), duration=86_400), connector=0)],
        ONE,
        T0 + 50,
        0,
        periods((0, 10)),
        id="anchor bug: duration 0 reports the active charger maximum, not the hardware",
    ),
    pytest.param(
        [
            prof(1, Purpose.TX_DEFAULT, sched((0, 16))),
            prof(2, Purpose.TX, sched((0, 8), start=None), kind=Kind.RELATIVE),
        ],
        CHARGING,
        T0 + 200,
        300,
        periods((0, 8)),
        id="the transaction's profile overrules the default",
    ),
    pytest.param(
        [prof(2, Purpose.TX, sched((0, 8), start=None), kind=Kind.RELATIVE)],
        ONE,
        T0,
        300,
        periods((0, 32.0)),
        id="a transaction profile without a transaction does not apply",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6), (100, 12), start=None), kind=Kind.RELATIVE)],
        CHARGING,
        T0 + 150,
        200,
        periods((0, 6), (50, 12)),
        id="relative: from the transaction's start (50 s before the window)",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6), (100, 12), start=None), kind=Kind.RELATIVE)],
        ONE,
        T0,
        300,
        periods((0, 6), (100, 12)),
        id="relative without a transaction: as if it started now",
    ),
    pytest.param(
        [
            prof(1, Purpose.TX_DEFAULT, sched((0, 6)), connector=0),
            prof(2, Purpose.TX_DEFAULT, sched((0, 10)), connector=1),
        ],
        ONE,
        T0,
        60,
        periods((0, 10)),
        id="a connector's own default replaces the connector-0 one at the same level",
    ),
    pytest.param(
        [
            prof(1, Purpose.TX_DEFAULT, sched((0, 6)), connector=0, stack=2),
            prof(2, Purpose.TX_DEFAULT, sched((0, 10)), connector=1, stack=1),
        ],
        ONE,
        T0,
        60,
        periods((0, 6)),
        id="a higher connector-0 default still wins",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6)), connector=2)],
        ONE,
        T0,
        60,
        periods((0, 32.0)),
        id="another connector's default does not apply",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 6)), valid_from=T0 + 100, valid_to=T0 + 200)],
        ONE,
        T0,
        300,
        periods((0, 32.0), (100, 6), (200, 32.0)),
        id="validFrom and validTo",
    ),
    pytest.param(
        # Daily: 11 kW all day but 6 kW 08:00-20:00; asked at 19:00 for 6 h, across 20:00
        # and midnight (OCPP 1.6 §3.13.7).
        [
            prof(
                1,
                Purpose.TX_DEFAULT,
                sched(
                    (0, 11000),
                    (8 * HOUR, 6000),
                    (20 * HOUR, 11000),
                    duration=DAY_S,
                    unit=Unit.WATTS,
                    phases=3,
                ),
                kind=Kind.RECURRING,
                recurrency=Recurrency.DAILY,
            )
        ],
        ONE,
        T0 + 19 * HOUR,
        14 * HOUR,
        # 6000 W / (230 V x 3) = 8.69 A and 11000 W = 15.94 A, rounded down to 0.1 A.
        periods((0, 8.6), (HOUR, 15.9), (13 * HOUR, 8.6)),
        id="recurring daily, watts, across midnight",
    ),
    pytest.param(
        # Weekly from Monday 00:00: weekdays 10 A, the weekend (from Saturday) 16 A; asked on
        # Sunday 22:00 for 4 h: across the week boundary into Monday.
        [
            prof(
                1,
                Purpose.TX_DEFAULT,
                sched((0, 10), (5 * DAY_S, 16), duration=WEEK_S),
                kind=Kind.RECURRING,
                recurrency=Recurrency.WEEKLY,
            )
        ],
        ONE,
        T0 + 6 * DAY_S + 22 * HOUR,
        4 * HOUR,
        periods((0, 16), (2 * HOUR, 10)),
        id="recurring weekly across the week boundary",
    ),
    pytest.param(
        [
            prof(
                1,
                Purpose.TX_DEFAULT,
                sched((0, 10), (2 * HOUR, 16), duration=HOUR),
                kind=Kind.RECURRING,
                recurrency=Recurrency.DAILY,
            )
        ],
        ONE,
        T0 + 1800,
        2 * HOUR,
        periods((0, 10), (1800, 32.0)),
        id="recurring: periods after the duration are not executed",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 12), (100, 12), (200, 12)))],
        ONE,
        T0,
        300,
        periods((0, 12)),
        id="adjacent equal periods merged",
    ),
    pytest.param(
        [prof(1, Purpose.TX_DEFAULT, sched((0, 40)))],
        Situation(1, cap_a=16.0),
        T0,
        60,
        periods((0, 16)),
        id="capped by the hardware",
    ),
]


@pytest.mark.parametrize(("profiles", "situation", "start", "duration", "expected"), CASES)
def test_composite(
    profiles: list[Profile],
    situation: Situation,
    start: float,
    duration: int,
    expected: list[CompositePeriod],
) -> None:
    got = composite(profiles, [situation], start, duration)
    assert got == expected
    starts = [p.start_s for p in got]
    assert starts == sorted(set(starts))  # each start once, in order
    anchored = dataclasses.replace(situation, anchor=start)
    for period in got:  # the live limit says the same at each period's start (to 0.1 A, down)
        live = limit_at(profiles, anchored, start + period.start_s)
        assert period.limit <= live < period.limit + 0.1 + 1e-9


def test_composite_in_watts_and_for_the_whole_charger() -> None:
    profiles = [
        prof(1, Purpose.CHARGER_MAX, sched((0, 20), duration=3600), connector=0),
        prof(2, Purpose.TX_DEFAULT, sched((0, 16)), connector=0),
    ]
    two = [Situation(1, 16.0), Situation(2, 16.0)]
    # Both connectors may take 16 A: together 32, the maximum caps them at 20 for an hour.
    assert composite(profiles, two, T0, 7200) == periods((0, 20), (3600, 32))
    assert composite(profiles, two, T0, 600, supply_a=25.0) == periods((0, 20))
    watts = composite(profiles, [Situation(1, 16.0)], T0, 60, unit=Unit.WATTS)
    assert watts == [CompositePeriod(0, 16 * 230 * 3, 3)]
    single = Situation(1, 32.0, Electrical(230.0, 1))
    watts = composite(
        [prof(3, Purpose.TX_DEFAULT, sched((0, 7360), unit=Unit.WATTS))], [single], T0, 60
    )
    assert watts == [CompositePeriod(0, 32.0, 1)]  # 7360 W on one phase at 230 V


def test_next_change_finds_the_coming_period_boundary() -> None:
    profiles = [prof(1, Purpose.TX_DEFAULT, sched((0, 6), (300, 10), duration=600))]
    assert next_change(profiles, [ONE], T0 + 10) == T0 + 300
    assert next_change(profiles, [ONE], T0 + 300) == T0 + 600
    assert next_change(profiles, [ONE], T0 + 700) is None
    daily = [
        prof(
            2,
            Purpose.TX_DEFAULT,
            sched((0, 6), (HOUR, 10), duration=2 * HOUR),
            kind=Kind.RECURRING,
            recurrency=Recurrency.DAILY,
        )
    ]
    assert next_change(daily, [ONE], T0 + 3 * HOUR) == T0 + DAY_S
