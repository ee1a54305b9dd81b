"""Charging profiles and the composite schedule they make. Pure functions of data and time.

The smart charging model of OCPP (1.6 §3.13, the same in 2.0.1), in neutral words:

- Purposes: the charger's maximum (connector 0: the sum over all connectors), a default for
  transactions (connector 0: for every connector, or one connector), and the running
  transaction's own profile, which overrules the default while the transaction runs.
- Within a purpose the valid profile with the highest stack level prevails at any moment; at
  equal stack level a connector's own default wins over the one for every connector (installing
  one for a connector "replaces the connector-0 default for that connector only", §3.13.1).
- A profile is valid between ``valid_from`` and ``valid_to``. Its schedule starts at
  ``start`` (absolute, or the first occurrence of a daily or weekly recurrence), or when the
  transaction started (relative; now, without a transaction), lasts ``duration`` seconds if
  given (a recurring one at most one recurrence), and each period holds until the next.
- The composite at a moment is the minimum of the prevailing limits of each purpose and the
  hardware's own limit (§3.13.3). Without any profile, the hardware limit alone applies.

Times are POSIX seconds (UTC). Limits are amps per phase, or watts (converted through the
phases and the nominal voltage). The same functions give the live limit (:func:`limit_at`) and
GetCompositeSchedule (:func:`composite`), so the two cannot disagree.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field

DAY_S = 86_400
WEEK_S = 7 * DAY_S
DEFAULT_PHASES = 3  # OCPP: numberPhases absent means 3


class Purpose(enum.StrEnum):
    CHARGER_MAX = "charger-max"
    TX_DEFAULT = "tx-default"
    TX = "tx"


class Kind(enum.StrEnum):
    ABSOLUTE = "absolute"
    RECURRING = "recurring"
    RELATIVE = "relative"


class Recurrency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class Unit(enum.StrEnum):
    AMPS = "A"
    WATTS = "W"


@dataclass(frozen=True, slots=True)
class Period:
    start_s: int  # from the start of the schedule
    limit: float  # in the schedule's unit
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    unit: Unit
    periods: tuple[Period, ...]
    duration_s: int | None = None
    start: float | None = None  # absolute and recurring schedules
    min_rate: float | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    id: int
    connector_id: int  # 0: the charger (max) or every connector (default)
    purpose: Purpose
    stack_level: int
    kind: Kind
    schedule: Schedule
    recurrency: Recurrency | None = None
    valid_from: float | None = None
    valid_to: float | None = None
    transaction_id: int | None = None  # the transaction a TX profile belongs to, if known


@dataclass(frozen=True, slots=True)
class Electrical:
    """What converts watts to amps for one connector (or the whole charger)."""

    voltage_v: float = 230.0
    phases: int = DEFAULT_PHASES


@dataclass(frozen=True, slots=True)
class Situation:
    """What one connector's composite depends on besides its profiles."""

    connector_id: int
    cap_a: float  # the hardware's own limit (installation, cable)
    electrical: Electrical = field(default_factory=Electrical)
    transaction_start: float | None = None  # None: no transaction runs
    # Where a relative schedule starts without a transaction (a composite's start: "as if
    # charging started now"); None: at the moment asked about.
    anchor: float | None = None


# -- one profile ---------------------------------------------------------------------------------


def _schedule_start(profile: Profile, situation: Situation, t: float) -> float | None:
    """When the occurrence of ``profile``'s schedule that covers ``t`` began (None: none)."""
    schedule = profile.schedule
    if profile.kind is Kind.RELATIVE or schedule.start is None:
        for begin in (situation.transaction_start, situation.anchor):
            if begin is not None:
                return begin
        return t
    if profile.kind is Kind.RECURRING:
        cycle = WEEK_S if profile.recurrency is Recurrency.WEEKLY else DAY_S
        if t < schedule.start:
            return None
        return schedule.start + ((t - schedule.start) // cycle) * cycle
    return schedule.start


def _active_period(profile: Profile, situation: Situation, t: float) -> Period | None:
    """The period of ``profile`` that applies at ``t`` (None: not valid or not running)."""
    if profile.valid_from is not None and t < profile.valid_from:
        return None
    if profile.valid_to is not None and t >= profile.valid_to:
        return None
    begin = _schedule_start(profile, situation, t)
    if begin is None or t < begin:
        return None
    elapsed = t - begin
    schedule = profile.schedule
    length = schedule.duration_s
    if profile.kind is Kind.RECURRING:
        cycle = WEEK_S if profile.recurrency is Recurrency.WEEKLY else DAY_S
        length = cycle if length is None else min(length, cycle)
    if length is not None and elapsed >= length:
        return None
    current = None
    for period in schedule.periods:
        if period.start_s <= elapsed:
            current = period
        else:
            break
    return current


def _amps(period: Period, unit: Unit, electrical: Electrical) -> float:
    if unit is Unit.AMPS:
        return period.limit
    phases = period.phases or electrical.phases
    return period.limit / (electrical.voltage_v * phases)


def _prevailing(
    profiles: list[Profile], situation: Situation, t: float, electrical: Electrical
) -> float | None:
    """The limit (A) of the prevailing profile among ``profiles`` at ``t``, None if none runs:
    the highest stack level wins; at equal level the connector's own profile wins."""
    best: tuple[int, int, float] | None = None
    for profile in profiles:
        period = _active_period(profile, situation, t)
        if period is None:
            continue
        rank = (profile.stack_level, 1 if profile.connector_id else 0)
        if best is None or rank > best[:2]:
            best = (*rank, _amps(period, profile.schedule.unit, electrical))
    return None if best is None else best[2]


# -- the composite ---------------------------------------------------------------------------------


def _for_connector(profiles: list[Profile], situation: Situation) -> dict[Purpose, list[Profile]]:
    cid = situation.connector_id
    running = situation.transaction_start is not None
    return {
        Purpose.CHARGER_MAX: [p for p in profiles if p.purpose is Purpose.CHARGER_MAX],
        Purpose.TX_DEFAULT: [
            p for p in profiles if p.purpose is Purpose.TX_DEFAULT and p.connector_id in (0, cid)
        ],
        Purpose.TX: [
            p for p in profiles if p.purpose is Purpose.TX and p.connector_id == cid and running
        ],
    }


def connector_limit_at(profiles: list[Profile], situation: Situation, t: float) -> float:
    """The connector's own profile limit at ``t`` (A): its transaction's profile, else its
    default, capped by its hardware (the charger maximum is shared: :func:`charger_limit_at`)."""
    sets = _for_connector(profiles, situation)
    tx = _prevailing(sets[Purpose.TX], situation, t, situation.electrical)
    if tx is None:
        tx = _prevailing(sets[Purpose.TX_DEFAULT], situation, t, situation.electrical)
    return situation.cap_a if tx is None else min(situation.cap_a, max(tx, 0.0))


def charger_limit_at(profiles: list[Profile], t: float, electrical: Electrical) -> float | None:
    """The charger maximum profile's limit at ``t`` (A per phase for all connectors
    together), None if none applies. A relative one runs from ``t`` (it has no transaction)."""
    maxima = [p for p in profiles if p.purpose is Purpose.CHARGER_MAX]
    whole = Situation(0, float("inf"), electrical)
    limit = _prevailing(maxima, whole, t, electrical)
    return None if limit is None else max(limit, 0.0)


def limit_at(
    profiles: list[Profile], situation: Situation, t: float, charger: Electrical | None = None
) -> float:
    """What one connector may take at ``t`` on its own (A): its own limit and the charger
    maximum. With several connectors the maximum is shared (the supply budget does that)."""
    own = connector_limit_at(profiles, situation, t)
    maximum = charger_limit_at(profiles, t, charger or Electrical())
    return own if maximum is None else min(own, maximum)


def _breakpoints(
    profiles: list[Profile], situations: list[Situation], start: float, end: float
) -> list[float]:
    """Every moment in [start, end) at which some profile's limit may change."""
    times = {start}
    for profile in profiles:
        for edge in (profile.valid_from, profile.valid_to):
            if edge is not None and start < edge < end:
                times.add(edge)
        schedule = profile.schedule
        begins: list[float] = []
        for situation in situations:
            first = _schedule_start(profile, situation, start)
            if first is None and schedule.start is not None and start < schedule.start < end:
                first = schedule.start
            if first is None:
                continue
            if profile.kind is Kind.RECURRING:
                cycle = WEEK_S if profile.recurrency is Recurrency.WEEKLY else DAY_S
                occurrence = first
                while occurrence < end:
                    begins.append(occurrence)
                    occurrence += cycle
            else:
                begins.append(first)
        for begin in begins:
            marks = [period.start_s for period in schedule.periods]
            if schedule.duration_s is not None:
                marks.append(schedule.duration_s)
            if profile.kind is Kind.RECURRING:
                cycle = WEEK_S if profile.recurrency is Recurrency.WEEKLY else DAY_S
                marks = [m for m in marks if m < cycle] + [cycle]
            for mark in marks:
                moment = begin + mark
                if start < moment < end:
                    times.add(moment)
    return sorted(times)


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    start_s: int  # from the start of the composite
    limit: float  # in the unit asked for, rounded down to 0.1
    phases: int | None = None


def composite(
    profiles: list[Profile],
    situations: list[Situation],
    start: float,
    duration_s: int,
    *,
    unit: Unit = Unit.AMPS,
    charger: Electrical | None = None,
    supply_a: float | None = None,
) -> list[CompositePeriod]:
    """The composite schedule from ``start`` for ``duration_s`` seconds (at least one
    period, also for a duration of 0).

    One situation: that connector's limit (:func:`limit_at`, with ``supply_a`` as a further
    cap). Several (connector 0): what the whole charger may draw, the sum of what each
    connector may take, capped by the charger maximum and ``supply_a``. Adjacent periods with
    the same limit are merged."""
    charger = charger or Electrical()
    end = start + max(duration_s, 1)
    situations = [dataclasses.replace(s, anchor=start) for s in situations]
    periods: list[CompositePeriod] = []
    for moment in _breakpoints(profiles, situations, start, end):
        amps = _total_at(profiles, situations, moment, charger, supply_a)
        electrical = situations[0].electrical if len(situations) == 1 else charger
        value = amps if unit is Unit.AMPS else amps * electrical.voltage_v * electrical.phases
        limit = _tenth(value)
        if periods and periods[-1].limit == limit:
            continue
        periods.append(CompositePeriod(round(moment - start), limit, electrical.phases))
    return periods


def _total_at(
    profiles: list[Profile],
    situations: list[Situation],
    t: float,
    charger: Electrical,
    supply_a: float | None,
) -> float:
    if len(situations) == 1:
        total = limit_at(profiles, situations[0], t, charger)
    else:
        total = sum(connector_limit_at(profiles, s, t) for s in situations)
        maximum = charger_limit_at(profiles, t, charger)
        if maximum is not None:
            total = min(total, maximum)
    if supply_a is not None:
        total = min(total, supply_a)
    return total


def next_change(profiles: list[Profile], situations: list[Situation], t: float) -> float | None:
    """The first moment after ``t`` (within a week) at which a limit may change."""
    later = [m for m in _breakpoints(profiles, situations, t, t + WEEK_S) if m > t]
    return later[0] if later else None


def _tenth(value: float) -> float:
    """Down to a multiple of 0.1 (the schema's step): a reported limit never exceeds the
    real one. The small allowance keeps 6.0 from becoming 5.9 through float noise."""
    return int(max(value, 0.0) * 10 + 1e-6) / 10  # int() rounds down: value >= 0
