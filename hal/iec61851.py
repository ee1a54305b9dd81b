"""Duty cycle <-> current, IEC 61851-1:2017 Table A.7 (EVSE side) and A.8 (EV side).

Duty values are in 0.01 % units, as on the MCU link.
"""

from __future__ import annotations

import math

MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 80.0
DUTY_DIGITAL = 500  # 5 %: digital communication required (ISO 15118 / DIN 70121)


def current_to_duty(current_a: float) -> int:
    """Duty (0.01 %) that signals ``current_a``; 6-51 A: d = I / 0.6, 51-80 A: d = I / 2.5 + 64.

    Raises ValueError outside 6..80 A: below 6 A the EVSE must stop PWM instead, and above
    80 A no duty cycle exists. Rounds down so the signalled current never exceeds the request.
    """
    if not MIN_CURRENT_A <= current_a <= MAX_CURRENT_A or math.isnan(current_a):
        raise ValueError(f"{current_a} A is outside the PWM range 6..80 A")
    percent = current_a / 0.6 if current_a <= 51.0 else current_a / 2.5 + 64.0
    return max(1000, math.floor(percent * 100 + 1e-9))


def duty_to_current(duty: int) -> float:
    """Current (A) an EV may draw for ``duty`` (0.01 %); 0 where the duty allows no charging.

    Table A.8: 8-10 % -> 6 A, 10-85 % -> d * 0.6, 85-96 % -> (d - 64) * 2.5, 96-97 % -> 80 A;
    below 8 % (other than 3-7 % digital) and above 97 % no charging.
    """
    percent = duty / 100
    if 8.0 <= percent < 10.0:
        return MIN_CURRENT_A
    if 10.0 <= percent <= 85.0:
        return percent * 0.6
    if 85.0 < percent <= 96.0:
        return (percent - 64.0) * 2.5
    if 96.0 < percent <= 97.0:
        return MAX_CURRENT_A
    return 0.0
