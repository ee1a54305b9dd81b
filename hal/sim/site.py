"""The simulated site: the house or depot the charger is installed in, and its meter.

The site meter (a :class:`~hal.sim.meter.SimMeterDevice` on the charger's meter line, under a
device id of its own) measures per phase what the other loads of the site draw (set with
``evsectl sim site-load``) plus what every simulated car draws, as a meter at the site's
main fuse would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hal.sim.connector import SimCommandError
from hal.sim.meter import SimMeterDevice

Phases = tuple[float, float, float]
MAX_SITE_LOAD_A = 1000.0


class SimSite:
    def __init__(
        self, cars: Sequence[Callable[[], Phases]], *, device_id: int, voltage_v: float
    ) -> None:
        self._cars = list(cars)
        self.other_loads_a: Phases = (0.0, 0.0, 0.0)
        self.meter = SimMeterDevice(self.load, device_id=device_id, voltage_v=voltage_v)

    def load(self) -> Phases:
        """What flows through the site's main fuse now, per phase (A)."""
        l1, l2, l3 = self.other_loads_a
        for car in self._cars:
            c1, c2, c3 = car()
            l1, l2, l3 = l1 + c1, l2 + c2, l3 + c3
        return (l1, l2, l3)

    def command(self, words: list[str]) -> str:
        """``site-load AMPS [AMPS AMPS]`` (one figure: every phase) or ``site-meter
        offline|online``; SimCommandError with a message for the user."""
        match words:
            case ["site-load", *figures] if len(figures) in (1, 3):
                amps = [_amps(figure) for figure in figures]
                if len(amps) == 1:
                    amps *= 3
                self.other_loads_a = (amps[0], amps[1], amps[2])
                return "other site loads " + " / ".join(f"{a:g}" for a in amps) + " A"
            case ["site-meter", "offline" | "online" as state]:
                self.meter.set_offline(state == "offline")
                return f"site meter {state}"
        raise SimCommandError(
            f"malformed sim command: {' '.join(words)}"
            " (site-load AMPS [AMPS AMPS], site-meter offline|online)"
        )

    def snapshot(self) -> dict[str, object]:
        return {
            "meter_device_id": self.meter.device_id,
            "other_loads_a": list(self.other_loads_a),
            "measured_a": [round(a, 2) for a in self.load()],
            "meter_offline": self.meter.offline,
        }


def _amps(text: str) -> float:
    try:
        amps = float(text)
    except ValueError:
        raise SimCommandError(f"site-load needs amps, got {text!r}") from None
    if not 0.0 <= amps <= MAX_SITE_LOAD_A:
        raise SimCommandError(f"site-load must be between 0 and {MAX_SITE_LOAD_A:g} A")
    return amps
