"""The supply's current shared among the connectors that want it, and what the site leaves
for the charger. Pure functions.

The feed's rating per phase (``supply_max_current_a``) caps the sum of what the connectors'
PWMs offer. Connectors whose transaction may draw current share it: equal shares, each capped
at what the connector may offer on its own (installation, cable), what a capped connector
leaves going to the others. Below the IEC 61851-1 minimum of 6 A no PWM can be offered, so when
the supply cannot give every one of them 6 A, the sessions that began first are served and the
latest wait (0 A, SuspendedEVSE) until current is given back. Connectors that want nothing get
0: nothing is held for them. Raising an offer at most every 5 s and lowering it at once is the
connector's rule (:func:`evsed.charging.limits.next_pwm`); who applies the shares lowers first.

A single-phase connector counts against every phase here (a conservative simplification: the
phase it is wired to is not modelled).
"""

from __future__ import annotations

from dataclasses import dataclass

from evsed.charging.limits import MIN_CURRENT_A


@dataclass(frozen=True, slots=True)
class Demand:
    connector_id: int
    wants: bool  # a transaction runs that may draw current now
    cap_a: float  # the most the connector may offer on its own
    order: int = 0  # when its session began (lower = earlier), to choose who waits


def share_supply(supply_a: float, demands: list[Demand]) -> dict[int, float]:
    """Each connector's share of ``supply_a`` (amps per phase, rounded down to 0.1 A)."""
    shares = {d.connector_id: 0.0 for d in demands}
    served = sorted(
        (d for d in demands if d.wants and d.cap_a >= MIN_CURRENT_A),
        key=lambda d: (d.order, d.connector_id),
    )
    while served and supply_a < MIN_CURRENT_A * len(served):
        served.pop()  # the latest session waits
    remaining = supply_a
    by_cap = sorted(served, key=lambda d: d.cap_a)
    for index, demand in enumerate(by_cap):
        fair = remaining / (len(by_cap) - index)
        given = _floor_tenth(min(demand.cap_a, fair))
        shares[demand.connector_id] = given
        remaining -= given
    return shares


def _floor_tenth(amps: float) -> float:
    return int(max(amps, 0.0) * 10 + 1e-9) / 10  # amps >= 0: int() rounds down


Phases = tuple[float, float, float]


def site_allowance(fuse_a: float, site_a: Phases, own_a: Phases) -> float:
    """Local load management: what the charger may draw per phase under the site's main fuse
    ``fuse_a``, given what the site meter measures (``site_a``, the charger included) and what
    the charger itself draws (``own_a``, from its connectors' meters). The other loads are the
    difference; the most loaded phase sets the allowance (a connector may be on any phase)."""
    others = [max(site - own, 0.0) for site, own in zip(site_a, own_a, strict=True)]
    return max(fuse_a - max(others), 0.0)
