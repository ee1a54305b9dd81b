"""Smart Charging (OCPP 1.6 §3.13, §5.5, §5.7, §5.16): SetChargingProfile, ClearChargingProfile,
GetCompositeSchedule, and the chargingProfile of a RemoteStartTransaction.

The rules of 1.6 are checked here; the profiles, their persistence and the limits they make
are the charger's (:mod:`evsed.limits`, :mod:`evsed.charging.schedules`).

SetChargingProfile is Rejected when:
- the connector does not exist; a ChargePointMaxProfile is not for connector 0; a TxProfile is
  for connector 0 (§3.13.1);
- a TxProfile has no transaction running on its connector, or names another transactionId
  than the running one (§3.13.1, §5.16.4; OCA TC_058_1, TC_058_2);
- stackLevel exceeds ChargeProfileMaxStackLevel, the schedule has more periods than
  ChargingScheduleMaxPeriods, its unit is not allowed by ChargingScheduleAllowedChargingRateUnit,
  or it would make more profiles than MaxChargingProfilesInstalled (a replaced one does not
  count) (§9.4);
- the schedule is malformed: no periods, a first period not at 0, periods not in order, a
  Recurring profile without recurrencyKind or startSchedule, a negative limit.
ClearChargingProfile with an id clears that profile; without, every profile that matches all
the criteria given; Unknown when nothing matched (§5.5, §6.6).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from evsed.charging.schedules import (
    CompositePeriod,
    Kind,
    Period,
    Profile,
    Purpose,
    Recurrency,
    Schedule,
    Unit,
)
from evsed.clock import iso, parse_iso
from evsed.ocpp.v16.configuration import ConfigurationKeys
from evsed.ocpp.v16.transactions import V16Transactions
from evsed.port import Charger

log = logging.getLogger(__name__)

PURPOSES = {
    "ChargePointMaxProfile": Purpose.CHARGER_MAX,
    "TxDefaultProfile": Purpose.TX_DEFAULT,
    "TxProfile": Purpose.TX,
}
PURPOSE_NAMES = {purpose: name for name, purpose in PURPOSES.items()}
KINDS = {"Absolute": Kind.ABSOLUTE, "Recurring": Kind.RECURRING, "Relative": Kind.RELATIVE}
RECURRENCIES = {"Daily": Recurrency.DAILY, "Weekly": Recurrency.WEEKLY}
UNITS = {"A": Unit.AMPS, "W": Unit.WATTS}
UNIT_KEYS = {Unit.AMPS: "Current", Unit.WATTS: "Power"}


class ProfileRefused(ValueError):
    """A charging profile this charger does not take; the message says why (for the log)."""


class SmartCharging:
    def __init__(
        self,
        charger: Charger,
        keys: ConfigurationKeys,
        transactions: V16Transactions,
        *,
        now: Callable[[], float],
    ) -> None:
        self._charger = charger
        self._keys = keys
        self._tx = transactions
        self._now = now

    # -- SetChargingProfile (§5.16) -----------------------------------------------------------

    def check(self, connector_id: int, payload: dict[str, Any], *, remote_start: bool) -> Profile:
        """The neutral profile for ``payload``, or ProfileRefused. ``remote_start``: it came
        in a RemoteStartTransaction (a TxProfile for the transaction about to start)."""
        profile = to_profile(connector_id, payload)
        connectors = self._charger.connectors
        if connector_id != 0 and connector_id not in connectors:
            raise ProfileRefused(f"no connector {connector_id}")
        if profile.purpose is Purpose.CHARGER_MAX and connector_id != 0:
            raise ProfileRefused("a ChargePointMaxProfile is for connector 0 only")
        if profile.purpose is Purpose.TX:
            self._check_transaction(profile, remote_start)
        elif remote_start:
            raise ProfileRefused("a RemoteStartTransaction profile must be a TxProfile")
        self._check_limits(profile)
        return profile

    def _check_transaction(self, profile: Profile, remote_start: bool) -> None:
        if profile.connector_id == 0 and not remote_start:
            raise ProfileRefused("a TxProfile is for a connector > 0")
        if remote_start:
            if profile.transaction_id is not None:
                raise ProfileRefused("a RemoteStartTransaction profile has no transactionId")
            return
        connector = self._charger.connectors[profile.connector_id]
        if not connector.state.tx_active:
            raise ProfileRefused(f"no transaction runs on connector {profile.connector_id}")
        running = self._tx.csms_transaction_id(profile.connector_id)
        if profile.transaction_id is not None and profile.transaction_id != running:
            raise ProfileRefused(
                f"transaction {profile.transaction_id} is not the one running"
                f" on connector {profile.connector_id}"
            )

    def _check_limits(self, profile: Profile) -> None:
        keys = self._keys
        if profile.stack_level > keys.get_int("ChargeProfileMaxStackLevel"):
            raise ProfileRefused(f"stackLevel {profile.stack_level} is above the maximum")
        if len(profile.schedule.periods) > keys.get_int("ChargingScheduleMaxPeriods"):
            raise ProfileRefused(f"{len(profile.schedule.periods)} periods is too many")
        allowed = keys.get_csl("ChargingScheduleAllowedChargingRateUnit")
        if UNIT_KEYS[profile.schedule.unit] not in allowed:
            raise ProfileRefused(f"chargingRateUnit {profile.schedule.unit} is not allowed")
        installed = self._charger.profiles
        kept = [
            p
            for p in installed
            if p.id != profile.id
            and not (
                p.connector_id == profile.connector_id
                and p.purpose is profile.purpose
                and p.stack_level == profile.stack_level
            )
        ]
        if len(kept) + 1 > keys.get_int("MaxChargingProfilesInstalled"):
            raise ProfileRefused("MaxChargingProfilesInstalled reached")

    async def install(self, profile: Profile) -> None:
        await self._charger.install_profile(profile)

    # -- ClearChargingProfile (§5.5) ----------------------------------------------------------

    async def clear(
        self,
        profile_id: int | None,
        connector_id: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> str:
        wanted = PURPOSES.get(purpose) if purpose is not None else None

        def chosen(p: Profile) -> bool:
            if profile_id is not None:
                return p.id == profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (wanted is None or p.purpose is wanted)
                and (stack_level is None or p.stack_level == stack_level)
            )

        removed = await self._charger.clear_profiles(chosen)
        return "Accepted" if removed else "Unknown"

    # -- GetCompositeSchedule (§5.7) ----------------------------------------------------------

    def composite(self, connector_id: int, duration_s: int, unit_name: str | None) -> Any:
        unit = UNITS.get(unit_name or "A", Unit.AMPS)
        periods = self._charger.composite_schedule(connector_id, duration_s, unit)
        if periods is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=iso(_datetime(self._now())),
            charging_schedule={
                "duration": duration_s,
                "start_schedule": iso(_datetime(self._now())),
                "charging_rate_unit": str(unit),
                "charging_schedule_period": [_period(p) for p in periods],
            },
        )


def _period(period: CompositePeriod) -> dict[str, Any]:
    out: dict[str, Any] = {"start_period": period.start_s, "limit": period.limit}
    if period.phases is not None:
        out["number_phases"] = period.phases
    return out


def _datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _seconds(text: str | None) -> float | None:
    return parse_iso(text).timestamp() if text else None


def to_profile(connector_id: int, payload: dict[str, Any]) -> Profile:
    """A 1.6 csChargingProfiles / chargingProfile (snake_case, as the ocpp library hands it)
    in neutral terms; ProfileRefused when it is malformed."""
    try:
        schedule = payload["charging_schedule"]
        periods = tuple(
            Period(
                int(p["start_period"]),
                float(Decimal(str(p["limit"]))),
                int(p["number_phases"]) if p.get("number_phases") is not None else None,
            )
            for p in schedule["charging_schedule_period"]
        )
        kind = KINDS[payload["charging_profile_kind"]]
        recurrency_name = payload.get("recurrency_kind")
        profile = Profile(
            id=int(payload["charging_profile_id"]),
            connector_id=connector_id,
            purpose=PURPOSES[payload["charging_profile_purpose"]],
            stack_level=int(payload["stack_level"]),
            kind=kind,
            schedule=Schedule(
                unit=UNITS[schedule["charging_rate_unit"]],
                periods=periods,
                duration_s=int(schedule["duration"]) if schedule.get("duration") else None,
                start=_seconds(schedule.get("start_schedule")),
                min_rate=float(schedule["min_charging_rate"])
                if schedule.get("min_charging_rate") is not None
                else None,
            ),
            recurrency=RECURRENCIES[recurrency_name] if recurrency_name else None,
            valid_from=_seconds(payload.get("valid_from")),
            valid_to=_seconds(payload.get("valid_to")),
            transaction_id=payload.get("transaction_id"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ProfileRefused(f"malformed charging profile: {exc}") from None
    _check_schedule(profile)
    return profile


def _check_schedule(profile: Profile) -> None:
    periods = profile.schedule.periods
    if not periods:
        raise ProfileRefused("the schedule has no periods")
    if periods[0].start_s != 0:
        raise ProfileRefused("the first period must start at 0 (§5.16.4)")
    starts = [p.start_s for p in periods]
    if starts != sorted(set(starts)):
        raise ProfileRefused("periods must start in increasing order")
    if any(p.limit < 0 for p in periods):
        raise ProfileRefused("a negative limit")
    if any(p.phases is not None and p.phases not in (1, 2, 3) for p in periods):
        raise ProfileRefused("numberPhases must be 1, 2 or 3")
    if profile.kind is Kind.RECURRING and (
        profile.recurrency is None or profile.schedule.start is None
    ):
        raise ProfileRefused("a Recurring profile needs recurrencyKind and startSchedule")


class SmartChargingHandlers:
    """Mixed into :class:`evsed.ocpp.v16.charge_point.V16ChargePoint`."""

    _smart: SmartCharging

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> call_result.SetChargingProfile:
        try:
            profile = self._smart.check(connector_id, cs_charging_profiles, remote_start=False)
        except ProfileRefused as exc:
            log.info("SetChargingProfile refused: %s", exc)
            return call_result.SetChargingProfile(status="Rejected")
        # Committed before the answer: an Accepted profile survives a power cut.
        await self._smart.install(profile)
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> call_result.ClearChargingProfile:
        status = await self._smart.clear(id, connector_id, charging_profile_purpose, stack_level)
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> call_result.GetCompositeSchedule:
        return self._smart.composite(connector_id, duration, charging_rate_unit)
