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
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from evsed.charging.budget import Demand, share_supply
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
from evsed.charging.state import ConnectorState
from evsed.config import Config
from evsed.site import SiteLoad
from evsed.store.profiles import ProfileStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChargerCap:
    """What the charger as a whole may draw now (A per phase), and what sets it."""

    amps: float
    source: str  # "supply", "charging profile", "site" or "site meter lost: fallback"


class ChargerLimits:
    def __init__(self, config: Config, store: ProfileStore) -> None:
        self._store = store
        self._supply_a = config.charging.supply_max_current_a
        voltage = config.charging.nominal_voltage_v
        self._electrical = {c.id: Electrical(voltage, c.phases) for c in config.connectors}
        self._charger = Electrical(voltage, 3)
        self._caps = {c.id: c.max_current_a for c in config.connectors}
        self.profiles: list[Profile] = []
        self.site: SiteLoad | None = None  # local load management, when configured
        # Each connector's limit at the last reckoning, and what set it (evsectl status).
        self.sources: dict[int, tuple[float | None, str]] = {}
        self._tx_started: dict[int, float] = {}  # connector -> when its transaction began
        self._session_order: dict[int, int] = {}  # connector -> when its share was first asked
        self._next_order = 0

    async def load(self) -> None:
        self.profiles = await asyncio.to_thread(self._store.all)
        if self.profiles:
            log.info("%d charging profile(s) installed", len(self.profiles))

    def transaction_seen(self, connector_id: int, running: bool, now: float) -> None:
        """Relative schedules count from the start of the transaction."""
        if running:
            self._tx_started.setdefault(connector_id, now)
        else:
            self._tx_started.pop(connector_id, None)

    # -- the limits now ----------------------------------------------------------------------

    def targets(self, states: Mapping[int, ConnectorState], now: float) -> dict[int, float | None]:
        """Each connector's limit now (None: nothing limits it beyond its hardware); notes
        in :attr:`sources` what sets each."""
        situations = self.situations(states)
        own = {cid: connector_limit_at(self.profiles, situations[cid], now) for cid in states}
        cap = self.charger_cap(now)
        targets: dict[int, float | None] = {}
        if cap is None:
            for cid, state in states.items():
                targets[cid] = own[cid] if self.has_connector_profiles(cid) else None
                self.sources[cid] = _source(state, targets[cid], "charging profile")
            return targets
        shares = share_supply(cap.amps, self._demands(states, own))
        for cid, amps in shares.items():
            targets[cid] = amps
            source = cap.source if amps < own[cid] else "charging profile"
            self.sources[cid] = _source(states[cid], amps, source)
        return targets

    def situations(self, states: Mapping[int, ConnectorState]) -> dict[int, Situation]:
        return {cid: self._situation(cid, state.cable_a) for cid, state in states.items()}

    def _situation(self, connector_id: int, cable_a: float | None) -> Situation:
        cap = self._caps[connector_id]
        if cable_a is not None:
            cap = min(cap, cable_a)
        started = self._tx_started.get(connector_id)
        return Situation(connector_id, cap, self._electrical[connector_id], started)

    def _demands(self, states: Mapping[int, ConnectorState], own: dict[int, float]) -> list[Demand]:
        """Who wants a share now, and since when (who came first keeps current)."""
        demands = []
        for cid, state in states.items():
            wants = (
                state.tx_active
                and state.stop_reason is None
                and state.plugged
                and not state.blocking_faults
                and not state.delivery_revoked
            )
            if wants and cid not in self._session_order:
                self._next_order += 1
                self._session_order[cid] = self._next_order
            elif not wants:
                self._session_order.pop(cid, None)
            demands.append(Demand(cid, wants, own[cid], self._session_order.get(cid, 0)))
        return demands

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
        if self.site is not None:
            caps.append(ChargerCap(max(self.site.allowance_a, 0.0), self.site.source))
        return min(caps, key=lambda cap: cap.amps) if caps else None

    def next_change(self, states: Mapping[int, ConnectorState], t: float) -> float | None:
        """When a schedule period next begins or ends (None: not within a week)."""
        return next_change(self.profiles, list(self.situations(states).values()), t)

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


def _source(state: ConnectorState, amps: float | None, limited_by: str) -> tuple[float | None, str]:
    """What sets the connector's limit: the lowest of installation, cable and ``amps``."""
    candidates = [(state.settings.max_current_a, "installation")]
    if state.cable_a is not None:
        candidates.append((state.cable_a, "cable"))
    if amps is not None:
        candidates.append((amps, limited_by))
    return min(candidates, key=lambda candidate: candidate[0])
