"""Local load management: the site meter, read at its poll interval, says how much of the
site's main fuse the charger may use (no CSMS needed).

At every reading the allowance is worked out again (:func:`evsed.charging.budget.site_allowance`)
and handed to the charger, which shares it among its connectors: a household spike lowers the
PWM at the next reading. Until the first reading, and whenever the meter does not answer (or
answers nonsense), the charger may draw ``charging.site_fallback_current_a`` in all (0 allowed):
a charger that cannot see the site does not guess. A lost site meter is logged once, shown by
``evsectl status`` and reported to the CSMS (connector 0, PowerMeterFailure) until it answers
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from evsed.charging.budget import Phases, site_allowance
from evsed.charging.faults import Fault
from evsed.config import Config
from evsed.port import Connector
from hal.errors import MeterError
from hal.interfaces import Meter

log = logging.getLogger(__name__)


class SiteLoad:
    def __init__(
        self,
        meter: Meter,
        config: Config,
        *,
        own_draw: Callable[[], Phases],
        changed: Callable[[], None],
    ) -> None:
        """``own_draw``: what the charger's connectors draw now, per phase (A); ``changed``:
        called when the allowance or the meter's health changed."""
        self._meter = meter
        self._fuse_a = config.charging.site_fuse_a
        self._fallback_a = config.charging.site_fallback_current_a
        self._poll_s = config.site_meter.poll_interval_s
        self._own_draw = own_draw
        self._changed = changed
        self.allowance_a = self._fallback_a  # until the first reading
        self.lost = False
        self.error: str | None = None
        self._site_a: Phases | None = None
        self._others_a: Phases | None = None

    @property
    def source(self) -> str:
        """What a connector's limit says when the site sets it."""
        return "site meter lost: fallback" if self.lost or self._site_a is None else "site"

    async def run(self) -> None:
        await self._meter.start()
        try:
            while True:
                await self.poll()
                await asyncio.sleep(self._poll_s)
        finally:
            await self._meter.stop()

    async def poll(self) -> None:
        """One reading of the site meter, and the allowance it gives."""
        try:
            reading = await self._meter.read()
        except MeterError as exc:
            self._lost(str(exc))
            return
        except Exception as exc:  # a driver bug must not leave a stale allowance behind
            log.exception("site meter read failed")
            self._lost(f"{type(exc).__name__}: {exc}")
            return
        own = self._own_draw()
        site = reading.current_a
        allowance = site_allowance(self._fuse_a, site, own)
        self._site_a = site
        self._others_a = (
            max(site[0] - own[0], 0.0),
            max(site[1] - own[1], 0.0),
            max(site[2] - own[2], 0.0),
        )
        if self.lost:
            log.info("site meter answers again")
        changed = self.lost or allowance != self.allowance_a
        self.lost, self.error = False, None
        self.allowance_a = allowance
        if changed:
            self._changed()

    def _lost(self, error: str) -> None:
        if not self.lost:
            log.warning(
                "site meter lost (%s): the charger draws at most %g A until it answers",
                error,
                self._fallback_a,
            )
        changed = not self.lost or self.allowance_a != self._fallback_a
        self.lost, self.error = True, error
        self.allowance_a = self._fallback_a
        if changed:
            self._changed()

    def snapshot(self) -> dict[str, Any]:
        return {
            "fuse_a": self._fuse_a,
            "allowance_a": round(self.allowance_a, 1),
            "meter_ok": not self.lost,
            "error": self.error,
            "site_current_a": _rounded(self._site_a),
            "other_loads_a": _rounded(self._others_a),
            "fallback_current_a": self._fallback_a,
        }


def charger_draw(connectors: Iterable[Connector]) -> Phases:
    """What the connectors draw now per phase (A), by their meters. A connector whose
    contactor is open, or whose meter fails, counts 0: its current then shows as another
    load of the site, and the allowance errs low."""
    total = [0.0, 0.0, 0.0]
    for connector in connectors:
        reading = connector.meter_reading
        state = connector.state
        if reading is None or not state.contactor_closed or Fault.METER_FAILURE in state.faults:
            continue
        for phase, amps in enumerate(reading.current_a):
            total[phase] += amps
    return (total[0], total[1], total[2])


def _rounded(phases: Phases | None) -> list[float] | None:
    return None if phases is None else [round(a, 1) for a in phases]
