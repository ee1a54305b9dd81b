"""How much current the connector may offer, and when the EV takes too much. Pure functions.

IEC 61851-1:2017 Annex A: the PWM never offers more than the installation, the cable (PP) or an
external limit; below 6 A there is no valid duty cycle, so the EVSE stops the PWM instead. Duty
changes at most every 5 s, except when lowering (that is always allowed at once). An EV that
draws more than it is offered, beyond a margin, for 7 s is stopped (DESIGN.md: over-current).
"""

from __future__ import annotations

MIN_CURRENT_A = 6.0
DUTY_CHANGE_INTERVAL_S = 5.0
OVERCURRENT_FACTOR = 1.1
OVERCURRENT_MARGIN_A = 0.5
OVERCURRENT_GRACE_S = 7.0


def offered_current(installation_a: float, cable_a: float | None, limit_a: float | None) -> float:
    """The current to offer; 0 when it is below the 6 A minimum (then: no PWM)."""
    amps = installation_a
    for bound in (cable_a, limit_a):
        if bound is not None:
            amps = min(amps, bound)
    return amps if amps >= MIN_CURRENT_A else 0.0


def next_pwm(current_a: float, target_a: float, changed_at: float | None, now: float) -> float:
    """Apply the 5 s rule: raise only 5 s after the last change; lower (or start) at once."""
    if current_a == 0.0 or target_a <= current_a or changed_at is None:
        return target_a
    if now - changed_at >= DUTY_CHANGE_INTERVAL_S:
        return target_a
    return current_a


def overcurrent_threshold(offered_a: float) -> float:
    """Current above which the EV is drawing more than offered (measurement tolerance aside)."""
    return offered_a * OVERCURRENT_FACTOR + OVERCURRENT_MARGIN_A
