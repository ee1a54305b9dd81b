"""Where a connector's limit comes from, and the charging profiles that set some of it.

The effective limit of a connector is the minimum of (DESIGN.md "Limits compose as a
minimum"): the installation (``max_current_a``), the cable (PP), its own charging profiles
(the transaction's, else the default: :mod:`evsed.charging.schedules`), and its share of what
the charger as a whole may draw: the supply (``charging.supply_max_current_a``), the charger
maximum profile and what local load management leaves (the site). This module keeps the
profiles (in memory and in the state database) and says, for a moment, each of those figures;
the charger turns them into limits on its connectors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from evsed.charging.schedules import (
    CompositePeriod,
    Electrical,
    Profile,
    Purpose,
    Situation,
    Unit,
    charger_limit_at,
    composite,
    connector_limit_at,
    next_change,
)
from evsed.config import Config
from evsed.store.profiles import ProfileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChargerCap:
    """What the charger as a whole may draw now (A per phase), and what sets it."""

    amps: float
    source: str  # "supply", "charging profile" or "site"


class ChargerLimits:
    def __init__(self, config: Config, store: ProfileStore) -> None:
        self._store = store
        self._supply_a = config.charging.supply_max_current_a
        voltage = config.charging.nominal_voltage_v
        self._electrical = {c.id: Electrical(voltage, c.phases) for c in config.connectors}
        self._charger = Electrical(voltage, 3)
        self._caps = {c.id: c.max_current_a for c in config.connectors}
        self.profiles: list[Profile] = []
        self.site_allowance_a: float | None = None  # local load management, when configured

    async def load(self) -> None:
        self.profiles = await asyncio.to_thread(self._store.all)
        if self.profiles:
            log.info("%d charging profile(s) installed", len(self.profiles))

    # -- figures for a moment -----------------------------------------------------------------

    def situation(
        self, connector_id: int, cable_a: float | None, transaction_start: float | None
    ) -> Situation:
        cap = self._caps[connector_id]
        if cable_a is not None:
            cap = min(cap, cable_a)
        return Situation(connector_id, cap, self._electrical[connector_id], transaction_start)

    def connector_cap(self, situation: Situation, t: float) -> float:
        """The connector's own limit at ``t``: its hardware and its profiles."""
        return connector_limit_at(self.profiles, situation, t)

    def has_connector_profiles(self, connector_id: int) -> bool:
        return any(
            p.purpose is not Purpose.CHARGER_MAX and p.connector_id in (0, connector_id)
            for p in self.profiles
        )

    def charger_cap(self, t: float) -> ChargerCap | None:
        """What all connectors together may draw at ``t``, None when nothing caps it."""
        caps: list[ChargerCap] = []
        if self._supply_a > 0:
            caps.append(ChargerCap(self._supply_a, "supply"))
        maximum = charger_limit_at(self.profiles, t, self._charger)
        if maximum is not None:
            caps.append(ChargerCap(maximum, "charging profile"))
        if self.site_allowance_a is not None:
            caps.append(ChargerCap(max(self.site_allowance_a, 0.0), "site"))
        return min(caps, key=lambda cap: cap.amps) if caps else None

    def next_change(self, situations: list[Situation], t: float) -> float | None:
        return next_change(self.profiles, situations, t)

    def composite(
        self, situations: list[Situation], start: float, duration_s: int, unit: Unit
    ) -> list[CompositePeriod]:
        """GetCompositeSchedule: one connector, or (several) the whole charger. The supply
        caps it too; the site allowance, which changes with every reading, does not."""
        return composite(
            self.profiles,
            situations,
            start,
            duration_s,
            unit=unit,
            charger=self._charger if len(situations) > 1 else None,
            supply_a=self._supply_a if self._supply_a > 0 else None,
        )

    # -- changing the profiles ----------------------------------------------------------------

    async def install(self, profile: Profile) -> list[int]:
        """Store ``profile`` (committed before it counts); the ids it replaced."""
        replaced = await asyncio.to_thread(self._store.install, profile)
        self.profiles = [p for p in self.profiles if p.id not in replaced] + [profile]
        return replaced

    async def remove(self, chosen: Callable[[Profile], bool]) -> list[int]:
        """Remove every profile ``chosen`` says; the ids removed."""
        ids = [p.id for p in self.profiles if chosen(p)]
        if ids:
            await asyncio.to_thread(self._store.remove, ids)
            self.profiles = [p for p in self.profiles if p.id not in ids]
        return ids
